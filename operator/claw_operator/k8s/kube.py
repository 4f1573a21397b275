"""Kubernetes access Kopf does not give handlers: reading one Secret on demand, reading
the latest copy of an object, and writing status mid-reconcile (ids must be recorded the
moment Railway returns them). The `kubernetes` client is synchronous, so every call runs
in a worker thread and never blocks the event loop."""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any, cast

import kubernetes.client
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from claw_operator.api.models import GROUP, VERSION

INSTANCES = "clawinstances"
# A pooled connection the server closed while idle fails once; the retry opens a new one.
_CONNECTION_ERRORS = (
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.NewConnectionError,
    ConnectionError,
)


async def _in_thread(call: Any) -> Any:
    try:
        return await asyncio.to_thread(call)
    except _CONNECTION_ERRORS:
        return await asyncio.to_thread(call)


class KubeApi:
    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self._api = api_client
        self._core = kubernetes.client.CoreV1Api(api_client)
        self._custom = kubernetes.client.CustomObjectsApi(api_client)
        # Write counters for benchmarks and metrics.
        self.status_writes = 0
        self.metadata_writes = 0

    async def get_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """The Secret's data, decoded; None when it does not exist."""

        def call() -> Any:
            return self._core.read_namespaced_secret(name, namespace)

        try:
            secret = await _in_thread(call)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise KubeError(f"reading Secret {namespace}/{name} failed: HTTP {exc.status}") from None
        data: dict[str, str] = {}
        for key, value in (secret.data or {}).items():
            try:
                data[key] = base64.b64decode(value).decode()
            except (binascii.Error, UnicodeDecodeError):
                data[key] = ""
        for key, value in (getattr(secret, "string_data", None) or {}).items():
            data[key] = value
        return data

    async def get_instance(self, namespace: str, name: str) -> dict[str, Any] | None:
        def call() -> Any:
            return self._custom.get_namespaced_custom_object(GROUP, VERSION, namespace, INSTANCES, name)

        try:
            return cast(dict[str, Any], await _in_thread(call))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise KubeError(f"reading ClawInstance {namespace}/{name} failed: HTTP {exc.status}") from None

    async def patch_status(self, namespace: str, name: str, status_patch: dict[str, Any]) -> None:
        """A JSON merge patch of `.status` (None values delete keys)."""

        def call() -> Any:
            return self._custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, INSTANCES, name, {"status": status_patch}
            )

        await self._patch(call, f"status of ClawInstance {namespace}/{name}")
        self.status_writes += 1

    async def patch_annotations(self, namespace: str, name: str, annotations: dict[str, str]) -> None:
        def call() -> Any:
            return self._custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, INSTANCES, name, {"metadata": {"annotations": annotations}}
            )

        await self._patch(call, f"annotations of ClawInstance {namespace}/{name}")
        self.metadata_writes += 1

    async def _patch(self, call: Any, what: str) -> None:
        try:
            await _in_thread(call)
        except ApiException as exc:
            if exc.status == 404:
                return  # deleted meanwhile: nothing left to record
            raise KubeError(f"patching {what} failed: HTTP {exc.status}") from None


class KubeError(Exception):
    """A Kubernetes API call failed; the message names the object, never its content."""


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The RFC 7386 merge patch that turns `old` into `new` (keys gone from `new` -> None)."""
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif value != before:
            patch[key] = value
    return patch
