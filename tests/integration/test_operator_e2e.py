"""The whole operator through Kopf, against the Kubernetes and Railway emulators."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

import kopf
import pytest

from claw_emulators.kubernetes import KubernetesServer
from claw_emulators.railway.server import RailwayEmulator
from claw_operator.k8s.engine import Engine
from claw_operator.k8s.handlers import build_registry
from tests.fixtures.cluster import claw_manifest as claw
from tests.fixtures.cluster import secret_manifest as secret
from tests.fixtures.common import CANARY_PREFIX, canary
from tests.fixtures.kubernetes import eventually, run_kopf
from tests.fixtures.operator import operator_settings, plan


@contextlib.asynccontextmanager
async def operator(k8s: KubernetesServer, emu: RailwayEmulator) -> AsyncIterator[Engine]:
    memo = kopf.Memo()
    registry = build_registry(lambda: Engine(settings=operator_settings(emu)), plan_status_interval=0.5)
    async with run_kopf(k8s, registry, memo=memo):
        yield memo.claw


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


def service_variables(emu: RailwayEmulator, name: str, namespace: str = "tenant-a") -> dict[str, str]:
    project = next(p for p in emu.state.projects.values() if p.name == f"claw-{namespace}-{name}")
    instance = next(iter(emu.state.iter_instances(project)))
    return dict(instance.variables)


async def test_labelled_secret_rotation_reaches_railway_without_a_resync(
    k8s: KubernetesServer, railway_emulator: RailwayEmulator
) -> None:
    emu = railway_emulator
    k8s.apply(
        {"apiVersion": "claw.io/v1alpha1", "kind": "ClawPlan", "metadata": {"name": "pro"}, "spec": plan()}
    )
    labelled = secret("feishu", "tenant-a", {"appId": "cli_app", "secret": canary("before")})
    labelled["metadata"]["labels"] = {"claw.io/watch": "true"}
    k8s.apply(labelled)
    k8s.apply(claw("bot", channels=[{"type": "feishu", "secretRef": {"name": "feishu"}}]))
    memo = kopf.Memo()
    # A resync far away: only the watch of labelled Secrets can bring the rotation.
    settings = operator_settings(emu, resync_seconds=3600.0)
    registry = build_registry(lambda: Engine(settings=settings), plan_status_interval=0.5)
    async with run_kopf(k8s, registry, memo=memo):
        await eventually(lambda: phase(k8s, "bot") == "Running", within=30)
        assert service_variables(emu, "bot")["FEISHU_SECRET"] == canary("before")
        reads = memo.claw.secrets.reads
        rotated = secret("feishu", "tenant-a", {"appId": "cli_app", "secret": canary("after")})
        rotated["metadata"]["labels"] = {"claw.io/watch": "true"}
        k8s.apply(rotated)
        await eventually(
            lambda: service_variables(emu, "bot").get("FEISHU_SECRET") == canary("after"),
            within=10,
            message="the rotated value did not reach Railway within 10 s",
        )
        assert memo.claw.secrets.reads == reads == 0, "labelled Secrets come from the watch, not reads"


async def test_unlabelled_secret_is_read_at_resync_and_said_so_once(
    k8s: KubernetesServer, railway_emulator: RailwayEmulator
) -> None:
    emu = railway_emulator
    k8s.apply(
        {"apiVersion": "claw.io/v1alpha1", "kind": "ClawPlan", "metadata": {"name": "pro"}, "spec": plan()}
    )
    k8s.apply(secret("feishu", "tenant-a", {"appId": "cli_app", "secret": canary("plain")}))
    k8s.apply(claw("bot", channels=[{"type": "feishu", "secretRef": {"name": "feishu"}}]))
    async with operator(k8s, emu):
        await eventually(lambda: phase(k8s, "bot") == "Running", within=30)
        await _sleep(2.5)  # a few resyncs (1 s in tests)
        notes = [e for e in k8s.events("tenant-a", involved_name="bot") if e["reason"] == "SecretNotWatched"]
        assert len(notes) == 1
        assert "claw.io/watch=true" in notes[0]["message"] and CANARY_PREFIX not in notes[0]["message"]


async def test_asyncio_tasks_do_not_grow_with_the_number_of_instances(
    k8s: KubernetesServer, railway_emulator: RailwayEmulator
) -> None:
    import asyncio

    emu = railway_emulator
    roomy = plan(limits={"maxInstances": 100, "maxChannels": 4, "bandwidthGB": 50})
    k8s.apply(
        {"apiVersion": "claw.io/v1alpha1", "kind": "ClawPlan", "metadata": {"name": "pro"}, "spec": roomy}
    )

    async def settled_tasks(names: list[str]) -> int:
        await eventually(lambda: all(phase(k8s, n) == "Running" for n in names), within=60)
        # Kopf's per-object workers end after its idle timeout (1 s in tests).
        await _sleep(2.5)
        # The emulators serve in this process too: their per-connection handlers follow the
        # clients' connection pools, not the operator's tasks.
        return sum(
            1
            for task in asyncio.all_tasks()
            if not getattr(task.get_coro(), "__qualname__", "").startswith("RequestHandler.")
        )

    async with operator(k8s, emu):
        few = [f"few-{n}" for n in range(3)]
        for name in few:
            k8s.apply(claw(name))
        with_few = await settled_tasks(few)
        many = [f"many-{n}" for n in range(30)]
        for name in many:
            k8s.apply(claw(name))
        with_many = await settled_tasks(few + many)
    assert with_many == with_few
