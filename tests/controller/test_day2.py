"""Day-2 behaviour against the in-memory Railway port: pause, Observe, the finalizer rule,
health while suspended."""

from __future__ import annotations

import json

import pytest

from claw_operator.api.models import EXTERNAL_NAME_ANNOTATION, PAUSED_ANNOTATION
from claw_operator.controller import FinalizeRetry
from claw_operator.railway.types import Deployment
from tests.controller.fakes import FakeProject, FakeService, World, claw
from tests.fixtures.common import CANARY_PREFIX, canary


def pause(w: World) -> None:
    w.body["metadata"]["annotations"][PAUSED_ANNOTATION] = "true"


def unpause(w: World) -> None:
    w.body["metadata"]["annotations"].pop(PAUSED_ANNOTATION)


async def test_pause_calls_nothing_and_changes_only_synced() -> None:
    w = World()
    await w.running()
    before = w.status
    pause(w)
    w.body["spec"]["env"][0]["value"] = "changed-while-paused"
    w.body["metadata"]["generation"] += 1
    for _ in range(3):
        await w.run()
    assert w.railway.calls == []
    after = w.status
    synced = w.condition("Synced")
    assert synced["status"] == "False" and synced["reason"] == "ReconcilePaused"
    assert PAUSED_ANNOTATION in synced["message"]
    strip = lambda s: {**s, "conditions": [c for c in s["conditions"] if c["type"] != "Synced"]}  # noqa: E731
    assert strip(after) == strip(before)
    assert [e.reason for e in w.events] == ["ReconcilePaused"]
    assert w.events[0].type == "Normal"
    assert w.health.forgotten and set(w.health.forgotten) == {"uid-bot"}


async def test_resume_applies_what_changed_meanwhile_with_one_upsert() -> None:
    w = World()
    await w.running()
    pause(w)
    await w.run()
    w.body["spec"]["env"][0]["value"] = "y"
    w.body["spec"]["env"].append({"name": "SECOND", "value": "2"})
    w.body["metadata"]["generation"] += 1
    await w.run()
    unpause(w)
    await w.run()
    assert w.railway.writes == ["upsert_variables"]
    assert w.railway.only_service().variables["SECOND"] == "2"
    assert w.condition("Synced")["reason"] == "Applied"


def old_system_project(w: World, variables: dict[str, str]) -> FakeService:
    project = FakeProject("prj-legacy", "legacy-bot", "made by hand", "env-legacy")
    service = FakeService(
        "svc-legacy",
        "bot",
        project.id,
        project.environment_id,
        dict(variables),
        image="ghcr.io/openclaw/openclaw:2026.2.1",
        healthcheck_path="/health",
        replicas=1,
        domains=["bot-legacy.up.railway.app"],
    )
    service.deployments.append(Deployment(id="dep-legacy", status="SUCCESS", createdAt=w.now.isoformat()))
    project.services[service.id] = service
    w.railway.projects[project.id] = project
    return service


async def wanted_variables(w: World) -> dict[str, str]:
    """The variables the spec makes, as Full would apply them (from a throwaway world)."""
    other = World(json.loads(json.dumps(w.body)))
    other.body["spec"]["managementPolicy"] = "Full"
    other.body["metadata"]["annotations"] = {}
    other.plans = w.plans
    await other.run()
    return dict(other.railway.only_service().variables)


async def test_observe_adopts_names_what_differs_and_never_writes() -> None:
    w = World(claw(managementPolicy="Observe", env=[{"name": "API_KEY", "value": canary("observe")}]))
    w.body["metadata"]["annotations"][EXTERNAL_NAME_ANNOTATION] = "prj-legacy"
    wanted = await wanted_variables(w)
    service = old_system_project(w, {**wanted, "API_KEY": "old-value", "EXTRA": "1"})
    await w.run()
    assert w.railway.writes == []
    synced = w.condition("Synced")
    assert synced["status"] == "False" and synced["reason"] == "WouldChange"
    assert "API_KEY" in synced["message"] and "EXTRA" in synced["message"]
    assert CANARY_PREFIX not in synced["message"] and "old-value" not in synced["message"]
    assert w.condition("Ready")["status"] == "True", "Ready ignores WouldChange in Observe"
    assert w.status["phase"] == "Running"
    assert w.status["railway"]["projectId"] == "prj-legacy"

    # The person fixes Railway (or the spec) until nothing differs.
    service.variables = dict(wanted)
    await w.run()
    assert w.condition("Synced")["reason"] == "InSync" and w.condition("Synced")["status"] == "True"

    # Switching to Full: no Railway write, no deploy.
    w.body["spec"]["managementPolicy"] = "Full"
    w.body["metadata"]["generation"] += 1
    for _ in range(2):
        await w.run()
    assert w.railway.writes == []
    assert w.condition("Synced")["reason"] == "Applied"
    assert len(service.deployments) == 1


async def test_observe_without_a_project_says_so_and_creates_nothing() -> None:
    w = World(claw(managementPolicy="Observe"))
    await w.run()
    assert w.railway.writes == []
    synced = w.condition("Synced")
    assert synced["reason"] == "WouldChange" and "project" in synced["message"]
    assert w.status["phase"] == "Pending"


async def test_deleting_an_observe_object_retains_the_project() -> None:
    w = World(claw(managementPolicy="Observe"))
    w.body["metadata"]["annotations"][EXTERNAL_NAME_ANNOTATION] = "prj-legacy"
    old_system_project(w, {})
    await w.run()
    events = await w.finalize()
    assert [e.reason for e in events] == ["Retained"]
    assert "prj-legacy" in w.railway.projects
    assert w.railway.writes == []


@pytest.mark.parametrize(
    "arrange",
    [
        pytest.param(lambda w: w.body["spec"].update(planRef="missing"), id="failed validation"),
        pytest.param(
            lambda w: w.body["spec"].update(
                railway={"mode": "SelfHosted", "tokenSecretRef": {"name": "absent", "key": "token"}}
            ),
            id="token Secret missing",
        ),
    ],
)
async def test_an_object_that_never_reached_railway_is_released_at_once(arrange: object) -> None:
    w = World()
    arrange(w)  # type: ignore[operator]
    await w.run()
    assert w.railway.calls == []
    events = await w.finalize()
    assert [e.reason for e in events] == ["Deleted"]
    assert "never reached" in events[0].message
    assert w.railway.writes == []


async def test_a_refused_token_with_nothing_recorded_releases_at_once() -> None:
    w = World()
    w.railway.refuse = True
    await w.run()
    calls = len(w.railway.calls)
    events = await w.finalize()
    assert "never reached" in events[0].message
    assert len(w.railway.calls) == calls


async def test_a_project_that_exists_without_a_usable_token_keeps_the_finalizer() -> None:
    w = World()
    w.secrets[("tenant-a", "tok")] = {"token": "t"}
    w.body["spec"]["railway"] = {"mode": "SelfHosted", "tokenSecretRef": {"name": "tok", "key": "token"}}
    await w.running()
    del w.secrets[("tenant-a", "tok")]
    with pytest.raises(FinalizeRetry) as retry:
        await w.finalize()
    assert "tenant-a/tok" in str(retry.value) and "Retain" in str(retry.value)


async def test_a_crash_before_the_record_is_still_found_and_deleted() -> None:
    w = World()
    await w.running()
    w.body["status"] = {}
    w.body["metadata"]["annotations"] = {}
    events = await w.finalize()
    assert [e.reason for e in events] == ["Deleted"] and w.railway.projects == {}


async def test_suspended_instances_are_not_probed_and_health_is_unknown() -> None:
    w = World()
    await w.running()
    assert w.status["health"]["status"] == "Healthy"
    w.body["spec"]["suspend"] = True
    probes = len(w.health.probes)
    for _ in range(2):
        await w.run()
    assert len(w.health.probes) == probes
    assert "uid-bot" in w.health.forgotten
    assert w.status["health"]["status"] == "Unknown"
    healthy = w.condition("Healthy")
    assert healthy["status"] == "Unknown" and healthy["reason"] == "NotProbed"
    assert w.status["phase"] == "Suspended"


async def test_the_one_service_of_an_annotated_project_is_adopted_whatever_its_name() -> None:
    w = World(claw(managementPolicy="Observe"))
    w.body["metadata"]["annotations"][EXTERNAL_NAME_ANNOTATION] = "prj-legacy"
    service = old_system_project(w, {})
    service.name = "openclaw-web"
    await w.run()
    assert w.status["railway"]["serviceId"] == "svc-legacy"
    assert w.status["railway"]["serviceName"] == "openclaw-web"
    assert "service (does not exist)" not in w.condition("Synced")["message"]


async def test_deleting_a_paused_object_waits_for_the_pause_to_end() -> None:
    w = World()
    await w.running()
    pause(w)
    await w.run()
    with pytest.raises(FinalizeRetry) as retry:
        await w.finalize()
    assert PAUSED_ANNOTATION in str(retry.value)
    assert w.railway.calls == [] and len(w.railway.projects) == 1
    unpause(w)
    events = await w.finalize()
    assert [e.reason for e in events] == ["Deleted"] and w.railway.projects == {}
