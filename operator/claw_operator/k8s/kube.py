"""Kubernetes calls the engine makes beside Kopf's watches: status and annotation patches,
the rare read of an unlabelled Secret, and Leases. They go through Kopf's own async API
client (its session, credentials and retries), so nothing blocks the event loop and the
operator holds one set of connections. They work inside a running Kopf operator, which
provides the credentials through its context."""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any, cast

import kopf
from kopf._cogs.clients import api as kopf_api
from kopf._cogs.clients import errors as kopf_errors

from claw_operator.api.models import GROUP, VERSION

log = logging.getLogger(__name__)

INSTANCES = "clawinstances"
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


def instance_path(namespace: str, name: str, subresource: str = "") -> str:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{INSTANCES}/{name}"
    return f"{path}/{subresource}" if subresource else path


def decode_secret(secret: dict[str, Any]) -> dict[str, str]:
    """A Secret's data, decoded; values that are not UTF-8 text read as empty."""
    data: dict[str, str] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            data[key] = base64.b64decode(value).decode()
        except (binascii.Error, UnicodeDecodeError, TypeError):
            data[key] = ""
    for key, value in (secret.get("stringData") or {}).items():
        data[key] = str(value)
    return data


class KubeApi:
    """Async Kubernetes access through Kopf's client. Counts what it sends, by verb and
    resource, for the benchmark and metrics."""

    def __init__(self, settings: kopf.OperatorSettings) -> None:
        self._settings = settings
        self.requests: dict[tuple[str, str], int] = {}

    def _count(self, verb: str, resource: str) -> None:
        self.requests[(verb, resource)] = self.requests.get((verb, resource), 0) + 1

    @property
    def status_writes(self) -> int:
        return self.requests.get(("patch", "clawinstances/status"), 0)

    async def get(self, path: str, resource: str) -> dict[str, Any] | None:
        """The object at `path`, or None when it does not exist."""
        self._count("get", resource)
        try:
            return cast(dict[str, Any], await kopf_api.get(path, settings=self._settings, logger=log))
        except kopf_errors.APINotFoundError:
            return None
        except kopf_errors.APIError as exc:
            raise KubeError(f"reading {resource} failed: HTTP {exc.status}") from None

    async def get_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """The Secret's data, decoded; None when it does not exist."""
        secret = await self.get(f"/api/v1/namespaces/{namespace}/secrets/{name}", "secrets")
        return decode_secret(secret) if secret is not None else None

    async def patch_status(
        self, namespace: str, name: str, status_patch: dict[str, Any]
    ) -> dict[str, Any] | None:
        """A JSON merge patch of `.status` (None values delete keys); the object as it is
        now, or None when it is gone."""
        return await self._patch(
            instance_path(namespace, name, "status"),
            {"status": status_patch},
            "clawinstances/status",
            f"status of ClawInstance {namespace}/{name}",
        )

    async def patch_annotations(
        self, namespace: str, name: str, annotations: dict[str, str]
    ) -> dict[str, Any] | None:
        return await self._patch(
            instance_path(namespace, name),
            {"metadata": {"annotations": annotations}},
            "clawinstances",
            f"annotations of ClawInstance {namespace}/{name}",
        )

    async def patch(self, path: str, body: dict[str, Any], resource: str) -> dict[str, Any] | None:
        return await self._patch(path, body, resource, resource)

    async def create(self, path: str, body: dict[str, Any], resource: str) -> dict[str, Any]:
        """POST `body`; raises Conflict when it exists already."""
        self._count("create", resource)
        try:
            return cast(
                dict[str, Any],
                await kopf_api.post(path, settings=self._settings, payload=body, logger=log, backoffs=()),
            )
        except kopf_errors.APIConflictError:
            raise Conflict(f"{resource} exists already") from None
        except kopf_errors.APIError as exc:
            raise KubeError(f"creating {resource} failed: HTTP {exc.status}") from None

    async def replace(self, path: str, body: dict[str, Any], resource: str) -> dict[str, Any]:
        """PUT `body` (its resourceVersion is a precondition); raises Conflict when stale."""
        self._count("put", resource)
        try:
            response = await kopf_api.request(
                "put", path, settings=self._settings, payload=body, logger=log, backoffs=()
            )
            async with response:
                return cast(dict[str, Any], await response.json())
        except kopf_errors.APIConflictError:
            raise Conflict(f"{resource} changed meanwhile") from None
        except kopf_errors.APIError as exc:
            raise KubeError(f"replacing {resource} failed: HTTP {exc.status}") from None

    async def _patch(
        self, path: str, body: dict[str, Any], resource: str, what: str
    ) -> dict[str, Any] | None:
        self._count("patch", resource)
        try:
            return cast(
                dict[str, Any],
                await kopf_api.patch(
                    path, settings=self._settings, payload=body, headers=MERGE_PATCH, logger=log
                ),
            )
        except kopf_errors.APINotFoundError:
            return None  # deleted meanwhile: nothing left to record
        except kopf_errors.APIConflictError:
            # Only a patch naming a resourceVersion can conflict: the caller re-reads.
            raise Conflict(f"{what} changed meanwhile") from None
        except kopf_errors.APIError as exc:
            raise KubeError(f"patching {what} failed: HTTP {exc.status}") from None


class KubeError(Exception):
    """A Kubernetes API call failed; the message names the object, never its content."""


class Conflict(KubeError):
    """The object exists already, or changed since it was read."""


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
