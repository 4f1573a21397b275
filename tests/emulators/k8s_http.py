"""A tiny HTTP client for the Kubernetes emulator tests: one request, status and JSON back."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from claw_emulators.kubernetes import KubernetesServer

MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
CLAWS = "/apis/claw.io/v1alpha1/namespaces/tenant-a/clawinstances"


async def call(
    k8s: KubernetesServer, method: str, path: str, body: Any = None, **kwargs: Any
) -> tuple[int, Any, dict[str, Any]]:
    """Status, decoded JSON body and the response headers (all Warning headers as a list)."""
    headers = kwargs.pop("headers", {"Content-Type": "application/json"})
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method,
            k8s.url + path,
            data=json.dumps(body) if body is not None else None,
            headers=headers,
            **kwargs,
        ) as response,
    ):
        payload = await response.json(content_type=None)
        meta = {**response.headers, "Warning": response.headers.getall("Warning", [])}
        return response.status, payload, meta


def claw(name: str = "bot", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "claw.io/v1alpha1",
        "kind": "ClawInstance",
        "metadata": {"name": name},
        "spec": {"planRef": "pro", **spec},
    }
