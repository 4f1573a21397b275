"""Kopf against the Kubernetes emulator: create -> status -> delete with a finalizer.

A tiny handler set in its own registry exercises what the real operator relies on: the
status subresource, merge- and JSON-patches with resourceVersion tests, finalizers, events.
"""

from __future__ import annotations

from typing import Any

import kopf

from claw_emulators.kubernetes import KubernetesServer
from tests.fixtures.kubernetes import eventually, run_kopf

FINALIZER = "claw.io/finalizer"


def smoke_registry(cleaned: list[str]) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.create("claw.io", "v1alpha1", "clawinstances", registry=registry)
    def created(patch: kopf.Patch, body: kopf.Body, **_: Any) -> None:
        kopf.info(body, reason="Provisioning", message="Creating the Railway project.")
        patch.status["phase"] = "Running"
        # The CRD requires lastTransitionTime, and the emulator refuses a status without it.
        ready = {
            "type": "Ready",
            "status": "True",
            "reason": "Available",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }
        patch.status["conditions"] = [ready]

    @kopf.on.delete("claw.io", "v1alpha1", "clawinstances", registry=registry)
    def deleted(name: str, **_: Any) -> None:
        cleaned.append(name)

    return registry


def instance(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "claw.io/v1alpha1",
        "kind": "ClawInstance",
        "metadata": {"name": name},
        "spec": {"planRef": "pro"},
    }


async def test_create_status_finalize(no_leaked_tasks: None, k8s: KubernetesServer) -> None:
    cleaned: list[str] = []
    async with run_kopf(k8s, smoke_registry(cleaned)):
        created = k8s.create("clawinstances", instance("bot"), namespace="tenant-a")
        assert created["metadata"]["generation"] == 1
        uid = created["metadata"]["uid"]

        def running() -> dict[str, Any] | None:
            obj = k8s.get("claw", "tenant-a", "bot")
            return obj if obj and obj.get("status", {}).get("phase") == "Running" else None

        obj = await eventually(running, message="Kopf never wrote status.phase=Running")
        assert FINALIZER not in obj["metadata"].get("finalizers", [])  # Kopf's own name below
        assert obj["metadata"]["finalizers"] == ["kopf.zalando.org/KopfFinalizerMarker"]
        assert obj["metadata"]["uid"] == uid
        assert obj["metadata"]["generation"] == 1, "status and finalizer writes must not bump generation"
        assert int(obj["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])

        # Kopf split its writes: status through /status, finalizers through the main resource.
        counts = k8s.write_counts(resource="clawinstances", name="bot")
        assert counts.get("patch/status", 0) >= 1
        assert counts.get("patch", 0) >= 1

        # A spec change bumps generation; Kopf's bookkeeping writes after it do not.
        k8s.patch("claw", "tenant-a", "bot", {"spec": {"planRef": "basic"}})
        assert k8s.get("claw", "tenant-a", "bot")["metadata"]["generation"] == 2  # type: ignore[index]

        # Deletion waits for the finalizer: Kopf runs the delete handler, then releases it.
        marked = k8s.delete("claw", "tenant-a", "bot")
        assert marked is not None and marked["metadata"].get("deletionTimestamp")
        await eventually(lambda: k8s.get("claw", "tenant-a", "bot") is None, message="never finalized")
        assert cleaned == ["bot"]

        # Kopf posted its handler events as core v1 Events in the object's namespace.
        events = await eventually(lambda: k8s.events("tenant-a", involved_name="bot"))
        assert all(e["involvedObject"]["uid"] == uid for e in events)
