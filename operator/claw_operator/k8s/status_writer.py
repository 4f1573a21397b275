"""Status writes of one reconcile pass: only what differs, as merge patches.

Ids Railway just returned are recorded at once (`persist`, mid-pass: a crash must find
them); everything else goes out in one patch at the end of the pass (`write`), and an
unchanged status costs nothing. The object each patch returns feeds the watch cache, so
the next pass starts from what was written even before the watch event arrives."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from claw_operator.k8s.kube import KubeApi, merge_patch


class StatusWriter:
    def __init__(
        self,
        kube: KubeApi,
        namespace: str,
        name: str,
        current: dict[str, Any],
        on_written: Callable[[Mapping[str, Any]], object] | None = None,
    ) -> None:
        self._kube, self._namespace, self._name = kube, namespace, name
        self._written = current
        self._on_written = on_written
        self.patches = 0

    async def write(self, status: dict[str, Any]) -> None:
        patch = merge_patch(self._written, status)
        if patch:
            body = await self._kube.patch_status(self._namespace, self._name, patch)
            self.patches += 1
            self._written = status
            if body is not None and self._on_written is not None:
                self._on_written(body)

    async def persist(self, partial: dict[str, Any], annotations: dict[str, str] | None) -> None:
        """Record part of the status (and annotations) at once, mid-reconcile."""
        await self.write({**self._written, **partial})
        if annotations:
            body = await self._kube.patch_annotations(self._namespace, self._name, annotations)
            if body is not None and self._on_written is not None:
                self._on_written(body)
