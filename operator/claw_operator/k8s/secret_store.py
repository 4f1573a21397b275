"""Reading and writing one Secret with optimistic concurrency, for the operator's own
writes into Secrets (OAuth token refresh): every write names the resourceVersion it was
based on, so a concurrent writer makes it fail with a conflict instead of being lost.
`KubeApiSecretStore` goes through the engine's async KubeApi; `KubeSecretStore`, for
tools and tests with a `kubernetes` ApiClient, runs the synchronous client in a worker thread."""

from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kubernetes.client
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from claw_operator.k8s.kube import Conflict, KubeApi, KubeError, decode_secret

# The API server unreachable (refused, reset, timed out): no HTTP status to report.
_TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, ConnectionError)


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


class KubeSecretStore:
    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self._core = kubernetes.client.CoreV1Api(api_client)

    async def read(self, namespace: str, name: str) -> SecretCopy | None:
        try:
            secret = await asyncio.to_thread(self._core.read_namespaced_secret, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise SecretStoreError(f"reading Secret {namespace}/{name} failed: HTTP {exc.status}") from None
        except _TRANSPORT_ERRORS as exc:
            raise SecretStoreError(
                f"reading Secret {namespace}/{name} failed: {type(exc).__name__}"
            ) from None
        data: dict[str, str] = {}
        for key, value in (secret.data or {}).items():
            try:
                data[key] = base64.b64decode(value).decode()
            except (binascii.Error, UnicodeDecodeError):
                data[key] = ""
        meta = secret.metadata or kubernetes.client.V1ObjectMeta()
        return SecretCopy(
            data=data,
            annotations=dict(meta.annotations or {}),
            resource_version=str(meta.resource_version or ""),
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
            result = await asyncio.to_thread(self._core.patch_namespaced_secret, name, namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                raise SecretConflict(f"Secret {namespace}/{name} changed meanwhile") from None
            raise SecretStoreError(f"writing Secret {namespace}/{name} failed: HTTP {exc.status}") from None
        except _TRANSPORT_ERRORS as exc:
            # Whether the write landed is unknown; the caller re-reads and sees.
            raise SecretStoreError(
                f"writing Secret {namespace}/{name} failed: {type(exc).__name__}"
            ) from None
        meta = result.metadata or kubernetes.client.V1ObjectMeta()
        return str(meta.resource_version or "")

    async def warn(self, namespace: str, name: str, reason: str, message: str) -> None:
        """A Warning event on the Secret, where `kubectl describe secret` shows it."""
        now = datetime.now(UTC)
        event = kubernetes.client.CoreV1Event(
            metadata=kubernetes.client.V1ObjectMeta(generate_name=f"{name}.", namespace=namespace),
            involved_object=kubernetes.client.V1ObjectReference(
                api_version="v1", kind="Secret", name=name, namespace=namespace
            ),
            reason=reason,
            message=message,
            type="Warning",
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=kubernetes.client.V1EventSource(component="claw-operator"),
        )
        try:
            await asyncio.to_thread(self._core.create_namespaced_event, namespace, event)
        except (ApiException, *_TRANSPORT_ERRORS) as exc:
            raise SecretStoreError(
                f"recording an event on Secret {namespace}/{name} failed: {type(exc).__name__}"
            ) from None


class KubeApiSecretStore:
    """The same reads and writes through the engine's async KubeApi (Kopf's session): no
    worker thread per call and no second client. What the running operator uses."""

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
    """The merge patch body both stores send: the resourceVersion makes it conditional."""
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if annotations:
        metadata["annotations"] = annotations
    body: dict[str, Any] = {"metadata": metadata}
    if data:
        body["data"] = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    return body
