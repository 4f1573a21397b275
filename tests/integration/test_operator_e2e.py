"""The whole operator through Kopf, against the Kubernetes and Railway emulators."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import kopf
import kubernetes.client
import pytest

from claw_emulators.kubernetes import KubernetesServer
from claw_emulators.railway.server import RailwayEmulator
from claw_operator.k8s.handlers import build_registry
from claw_operator.k8s.kube import KubeApi
from claw_operator.k8s.operator_state import OperatorState
from tests.fixtures.common import CANARY_PREFIX, canary
from tests.fixtures.kubernetes import eventually, run_kopf
from tests.fixtures.operator import operator_settings, plan


def secret(name: str, namespace: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def claw(name: str, namespace: str = "tenant-a", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "claw.io/v1alpha1",
        "kind": "ClawInstance",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"planRef": "pro", **spec},
    }


@contextlib.asynccontextmanager
async def operator(k8s: KubernetesServer, emu: RailwayEmulator) -> AsyncIterator[OperatorState]:
    configuration = kubernetes.client.Configuration()
    configuration.host = k8s.url
    state = OperatorState(
        settings=operator_settings(emu), kube=KubeApi(kubernetes.client.ApiClient(configuration))
    )
    async with run_kopf(k8s, build_registry(plan_status_interval=0.5), memo=kopf.Memo(claw=state)):
        yield state


def phase(k8s: KubernetesServer, name: str, namespace: str = "tenant-a") -> str | None:
    obj = k8s.get("clawinstances", namespace, name) or {}
    return (obj.get("status") or {}).get("phase")


async def test_apply_to_running_then_idle_then_delete(
    k8s: KubernetesServer, railway_emulator: RailwayEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    emu = railway_emulator
    k8s.apply(
        {"apiVersion": "claw.io/v1alpha1", "kind": "ClawPlan", "metadata": {"name": "pro"}, "spec": plan()}
    )
    k8s.apply(secret("feishu", "tenant-a", {"appId": "cli_app", "secret": canary("e2e-feishu")}))
    k8s.apply(claw("bot", channels=[{"type": "feishu", "secretRef": {"name": "feishu"}}]))
    async with operator(k8s, emu):
        await eventually(
            lambda: phase(k8s, "bot") == "Running", within=30, message="bot never reached Running"
        )
        obj = k8s.get("clawinstances", "tenant-a", "bot")
        assert obj is not None
        assert obj["status"]["url"].endswith(".up.railway.app")
        assert "claw.io/finalizer" in obj["metadata"]["finalizers"]
        assert (
            obj["metadata"]["annotations"]["claw.io/external-name"] == obj["status"]["railway"]["projectId"]
        )
        ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True" and ready["reason"] == "Available"

        def plan_counts_one() -> bool:
            status = (k8s.get("clawplans", None, "pro") or {}).get("status") or {}
            valid = [c for c in status.get("conditions", []) if c["type"] == "Valid"]
            return status.get("instances") == 1 and bool(valid) and valid[0]["status"] == "True"

        await eventually(plan_counts_one, within=10, message="plan status never counted the instance")

        # Idle: several resync cycles (1s each in tests) with no Kubernetes or Railway writes.
        writes = len(k8s.writes(resource="clawinstances"))
        mutations = [r for r in emu.requests if r.operation_name not in {"FleetObserve"}]
        await _sleep(3.5)
        assert len(k8s.writes(resource="clawinstances")) == writes
        assert [r for r in emu.requests if r.operation_name not in {"FleetObserve"}] == mutations
        assert any(r.operation_name == "FleetObserve" for r in emu.requests[-5:]), (
            "resync must keep observing"
        )

        events = k8s.events("tenant-a", involved_name="bot")
        reasons = {e["reason"] for e in events}
        assert {"Provisioning", "DeploymentSucceeded"} <= reasons
        everything = json.dumps([k8s.get("clawinstances", "tenant-a", "bot"), events])
        assert CANARY_PREFIX not in everything and CANARY_PREFIX not in caplog.text

        k8s.delete("clawinstances", "tenant-a", "bot")
        await eventually(lambda: k8s.get("clawinstances", "tenant-a", "bot") is None, within=20)
        assert emu.state.projects == {}


async def test_plan_created_later_unblocks_without_a_nudge(
    k8s: KubernetesServer, railway_emulator: RailwayEmulator
) -> None:
    k8s.apply(claw("late"))
    async with operator(k8s, railway_emulator):
        await eventually(lambda: phase(k8s, "late") == "Pending", within=20)
        obj = k8s.get("clawinstances", "tenant-a", "late") or {}
        synced = next(c for c in obj["status"]["conditions"] if c["type"] == "Synced")
        assert synced["reason"] == "PlanNotFound"
        assert railway_emulator.requests == []
        k8s.apply(
            {
                "apiVersion": "claw.io/v1alpha1",
                "kind": "ClawPlan",
                "metadata": {"name": "pro"},
                "spec": plan(),
            }
        )
        await eventually(lambda: phase(k8s, "late") == "Running", within=30)


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)
