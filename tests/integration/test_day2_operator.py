"""Day-2 behaviour of the whole operator (Kopf, the Kubernetes emulator, the Railway
emulator): pause and resume, Observe adoption then Full, a refused token and its
recovery, deletion of objects that never reached Railway, health while suspended."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from claw_emulators.kubernetes import KubernetesServer
from claw_emulators.railway.server import RailwayEmulator
from claw_operator.api.models import EXTERNAL_NAME_ANNOTATION, PAUSED_ANNOTATION
from claw_operator.railway.documents import READ_OPERATIONS
from tests.fixtures.cluster import (
    claw_manifest,
    condition_of,
    operator,
    phase_of,
    plan_manifest,
    secret_manifest,
    status_of,
)
from tests.fixtures.common import CANARY_PREFIX, canary
from tests.fixtures.kubernetes import eventually

# Long enough for several resync cycles (1 s each in tests) to have happened.
IDLE_CYCLES_SECONDS = 3.5


def mutations(emu: RailwayEmulator) -> list[str]:
    return [r.operation_name for r in emu.requests if r.operation_name not in READ_OPERATIONS]


def service_instance(emu: RailwayEmulator, k8s: KubernetesServer, name: str) -> Any:
    refs = status_of(k8s, name)["railway"]
    return emu.state.instances[(refs["serviceId"], refs["environmentId"])]


def annotate(k8s: KubernetesServer, name: str, annotations: dict[str, str | None]) -> None:
    k8s.patch("clawinstances", "tenant-a", name, {"metadata": {"annotations": annotations}})


def set_spec(k8s: KubernetesServer, name: str, spec: dict[str, Any]) -> None:
    k8s.patch("clawinstances", "tenant-a", name, {"spec": spec})


async def test_pause_stops_everything_and_resume_applies_the_change_with_one_upsert(
    k8s: KubernetesServer, railway_emulator: RailwayEmulator
) -> None:
    emu = railway_emulator
    k8s.apply(plan_manifest())
    k8s.apply(claw_manifest("bot", env=[{"name": "CUSTOM_VAR", "value": "x"}]))
    async with operator(k8s, emu):
        await eventually(lambda: phase_of(k8s, "bot") == "Running", within=30)
        annotate(k8s, "bot", {PAUSED_ANNOTATION: "true"})
        await eventually(
            lambda: condition_of(k8s, "bot", "Synced").get("reason") == "ReconcilePaused", within=10
        )
        requests = len(emu.requests)
        set_spec(k8s, "bot", {"env": [{"name": "CUSTOM_VAR", "value": "y"}]})
        await asyncio.sleep(IDLE_CYCLES_SECONDS)
        assert len(emu.requests) == requests, "a paused object causes no Railway call"
        assert service_instance(emu, k8s, "bot").variables["CUSTOM_VAR"] == "x"
        assert phase_of(k8s, "bot") == "Running", "pause changes nothing in status but Synced"
        paused_events = [
            e for e in k8s.events("tenant-a", involved_name="bot") if e["reason"] == "ReconcilePaused"
        ]
        assert len(paused_events) == 1 and paused_events[0]["type"] == "Normal"

        before = len(mutations(emu))
        annotate(k8s, "bot", {PAUSED_ANNOTATION: None})
        await eventually(lambda: service_instance(emu, k8s, "bot").variables["CUSTOM_VAR"] == "y", within=10)
        await eventually(lambda: condition_of(k8s, "bot", "Synced").get("reason") == "Applied", within=10)
        assert mutations(emu)[before:] == ["VariableCollectionUpsert"]


async def test_observe_adopts_reports_the_difference_then_full_changes_nothing(
    k8s: KubernetesServer, railway_emulator: RailwayEmulator
) -> None:
    emu = railway_emulator
    k8s.apply(plan_manifest())
    k8s.apply(claw_manifest("legacy", env=[{"name": "CUSTOM_VAR", "value": "x"}], deletionPolicy="Retain"))
    async with operator(k8s, emu):
        # What the old system left behind: a running project the cluster no longer knows.
        await eventually(lambda: phase_of(k8s, "legacy") == "Running", within=30)
        project_id = status_of(k8s, "legacy")["railway"]["projectId"]
        k8s.delete("clawinstances", "tenant-a", "legacy")
        await eventually(lambda: k8s.get("clawinstances", "tenant-a", "legacy") is None, within=20)
        assert project_id in emu.state.projects
        deployments = len(emu.state.deployments)

        # Migrating it: the annotation, Observe, and a spec whose variable differs.
        start = len(mutations(emu))
        manifest = claw_manifest(
            "legacy", managementPolicy="Observe", env=[{"name": "CUSTOM_VAR", "value": canary("observe")}]
        )
        manifest["metadata"]["annotations"] = {EXTERNAL_NAME_ANNOTATION: project_id}
        k8s.apply(manifest)
        await eventually(
            lambda: condition_of(k8s, "legacy", "Synced").get("reason") == "WouldChange", within=20
        )
        message = condition_of(k8s, "legacy", "Synced")["message"]
        assert "CUSTOM_VAR" in message and CANARY_PREFIX not in message
        assert condition_of(k8s, "legacy", "Ready")["status"] == "True"
        assert status_of(k8s, "legacy")["railway"]["projectId"] == project_id

        # Make Railway match the spec (what the migration guide says to do, or fix the spec).
        created = k8s.get("clawinstances", "tenant-a", "legacy")["metadata"]["creationTimestamp"]  # type: ignore[index]
        variables = service_instance(emu, k8s, "legacy").variables
        variables["CUSTOM_VAR"] = canary("observe")
        variables["OPENCLAW_CREATED_AT"] = created
        await eventually(lambda: condition_of(k8s, "legacy", "Synced").get("reason") == "InSync", within=20)

        set_spec(k8s, "legacy", {"managementPolicy": "Full"})
        await eventually(lambda: condition_of(k8s, "legacy", "Synced").get("reason") == "Applied", within=20)
        await asyncio.sleep(IDLE_CYCLES_SECONDS)
        assert mutations(emu)[start:] == [], "Observe, then Full on an in-sync object: no Railway write"
        assert len(emu.state.deployments) == deployments, "and no deploy"
        assert phase_of(k8s, "legacy") == "Running"

        k8s.patch("clawinstances", "tenant-a", "legacy", {"spec": {"managementPolicy": "Observe"}})
        await eventually(lambda: condition_of(k8s, "legacy", "Synced").get("reason") == "InSync", within=20)
        k8s.delete("clawinstances", "tenant-a", "legacy")
        await eventually(lambda: k8s.get("clawinstances", "tenant-a", "legacy") is None, within=20)
        assert project_id in emu.state.projects, "deleting an Observe object never deletes on Railway"


async def test_a_refused_token_sends_nothing_until_its_secret_changes_then_recovers(
    k8s: KubernetesServer, railway_emulator: RailwayEmulator
) -> None:
    emu = railway_emulator
    k8s.apply(plan_manifest())
    k8s.apply(secret_manifest("railway-token", "tenant-a", {"token": canary("refused-token")}))
    ref = {"name": "railway-token", "key": "token"}
    k8s.apply(claw_manifest("tenant", railway={"mode": "SelfHosted", "tokenSecretRef": ref}))
    async with operator(k8s, emu):
        await eventually(
            lambda: condition_of(k8s, "tenant", "Synced").get("reason") == "RailwayAuthFailed", within=20
        )
        message = condition_of(k8s, "tenant", "Synced")["message"]
        assert "tenant-a/railway-token" in message and "'token'" in message
        requests = len(emu.requests)
        await asyncio.sleep(IDLE_CYCLES_SECONDS)
        assert len(emu.requests) == requests, "no request with a refused token"

        emu.add_token("tenant-good-token", "ws-tenant", per_hour=10_000, per_second=100)
        k8s.apply(secret_manifest("railway-token", "tenant-a", {"token": "tenant-good-token"}))
        await eventually(lambda: phase_of(k8s, "tenant") == "Running", within=30)
        everything = json.dumps([k8s.get("clawinstances", "tenant-a", "tenant"), k8s.events("tenant-a")])
        assert CANARY_PREFIX not in everything


async def test_objects_that_never_reached_railway_are_deleted_at_once(
    k8s: KubernetesServer, railway_emulator: RailwayEmulator
) -> None:
    emu = railway_emulator
    k8s.apply(plan_manifest())
    ref = {"name": "does-not-exist", "key": "token"}
    k8s.apply(claw_manifest("no-token", railway={"mode": "SelfHosted", "tokenSecretRef": ref}))
    k8s.apply(claw_manifest("no-plan", planRef="missing"))
    async with operator(k8s, emu):
        await eventually(
            lambda: condition_of(k8s, "no-token", "Synced").get("reason") == "SecretNotFound", within=20
        )
        await eventually(
            lambda: condition_of(k8s, "no-plan", "Synced").get("reason") == "PlanNotFound", within=20
        )
        for name in ("no-token", "no-plan"):
            k8s.delete("clawinstances", "tenant-a", name)
        await eventually(
            lambda: all(k8s.get("clawinstances", "tenant-a", n) is None for n in ("no-token", "no-plan")),
            within=10,
            message="an object that never reached Railway must not stay in Deleting",
        )
        assert mutations(emu) == []
        assert not any(e["reason"] == "DeleteRetrying" for e in k8s.events("tenant-a"))


async def test_a_suspended_instance_is_not_probed_and_its_health_is_unknown(
    k8s: KubernetesServer, railway_emulator: RailwayEmulator
) -> None:
    emu = railway_emulator
    k8s.apply(plan_manifest())
    k8s.apply(claw_manifest("bot"))
    async with operator(k8s, emu):
        await eventually(
            lambda: (status_of(k8s, "bot").get("health") or {}).get("status") == "Healthy", within=30
        )
        set_spec(k8s, "bot", {"suspend": True})
        await eventually(lambda: phase_of(k8s, "bot") == "Suspended", within=20)
        await eventually(
            lambda: (status_of(k8s, "bot").get("health") or {}).get("status") == "Unknown", within=10
        )
        healthy = condition_of(k8s, "bot", "Healthy")
        assert healthy["status"] == "Unknown" and healthy["reason"] == "NotProbed"
