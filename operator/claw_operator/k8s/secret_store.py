"""Reading and writing one Secret with optimistic concurrency, for the operator's own
writes into Secrets (OAuth token refresh): every write names the resourceVersion it was
based on, so a concurrent writer makes it fail with a conflict instead of being lost.
It goes through the engine's async KubeApi (Kopf's session), so no call blocks the loop."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from claw_operator.k8s.kube import Conflict, KubeApi, KubeError, decode_secret


@dataclass(frozen=True)
class SecretCopy:
    """One Secret as read: decoded data (never printed), annotations, resourceVersion."""

    data: dict[str, str] = field(repr=False)
    annotations: dict[str, str]
    resource_version: str


class SecretConflict(Exception):
    """The Secret changed since the resourceVersion the write was based on (HTTP 409)."""


class SecretStoreError(Exception):
    """A Kubernetes call failed; the message names the Secret, never its content."""


class KubeApiSecretStore:
    """One Secret's reads, guarded writes and Warning events, through the engine's KubeApi."""

    def __init__(self, kube: KubeApi) -> None:
        self._kube = kube

    async def read(self, namespace: str, name: str) -> SecretCopy | None:
        try:
            secret = await self._kube.get(_secret_path(namespace, name), "secrets")
        except KubeError:
            raise SecretStoreError(f"reading Secret {namespace}/{name} failed") from None
        if secret is None:
            return None
        meta = secret.get("metadata") or {}
        return SecretCopy(
            data=decode_secret(secret),
            annotations={str(k): str(v) for k, v in (meta.get("annotations") or {}).items()},
            resource_version=str(meta.get("resourceVersion") or ""),
        )

    async def patch(
        self,
        namespace: str,
        name: str,
        *,
        resource_version: str,
        data: dict[str, str] | None = None,
        annotations: dict[str, str | None] | None = None,
    ) -> str:
        """A merge patch that succeeds only if the Secret is still at `resource_version`;
        returns the new resourceVersion. A None annotation value removes it."""
        body = _guarded_patch(resource_version, data, annotations)
        try:
            result = await self._kube.patch(_secret_path(namespace, name), body, "secrets")
        except Conflict:
            raise SecretConflict(f"Secret {namespace}/{name} changed meanwhile") from None
        except KubeError:
            # Whether the write landed is unknown; the caller re-reads and sees.
            raise SecretStoreError(f"writing Secret {namespace}/{name} failed") from None
        if result is None:
            raise SecretStoreError(f"writing Secret {namespace}/{name} failed: it is gone")
        return str((result.get("metadata") or {}).get("resourceVersion") or "")

    async def warn(self, namespace: str, name: str, reason: str, message: str) -> None:
        """A Warning event on the Secret, where `kubectl describe secret` shows it."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{name}.", "namespace": namespace},
            "involvedObject": {"apiVersion": "v1", "kind": "Secret", "name": name, "namespace": namespace},
            "reason": reason,
            "message": message,
            "type": "Warning",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": "claw-operator"},
        }
        try:
            await self._kube.create(f"/api/v1/namespaces/{namespace}/events", event, "events")
        except KubeError:
            raise SecretStoreError(f"recording an event on Secret {namespace}/{name} failed") from None


def _secret_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/secrets/{name}"


def _guarded_patch(
    resource_version: str, data: dict[str, str] | None, annotations: dict[str, str | None] | None
) -> dict[str, Any]:
    """The merge patch body of a guarded write: the resourceVersion makes it conditional."""
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if annotations:
        metadata["annotations"] = annotations
    body: dict[str, Any] = {"metadata": metadata}
    if data:
        body["data"] = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    return body
