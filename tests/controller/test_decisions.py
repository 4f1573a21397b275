"""One row per decision of the reconciler, against the in-memory Railway port.

Each row brings the world into a state (`arrange`), runs one reconcile pass and checks the
Railway writes that pass made, in order, and what status and events say about it."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from claw_operator.api.models import (
    EXTERNAL_NAME_ANNOTATION,
    REDEPLOY_REQUESTED_AT_ANNOTATION,
    RESTARTED_AT_ANNOTATION,
    Usage,
)
from claw_operator.fleet.health import ProbeResult
from claw_operator.railway.errors import RailwayAuthError, RailwayInvalidError, RailwayRetryableError
from claw_operator.rules.naming import project_marker, project_name
from tests.controller.fakes import FakeProject, FakeService, World, plan_spec
from tests.fixtures.common import CANARY_PREFIX, canary

Arrange = Callable[[World], Awaitable[None]]


@dataclass(frozen=True)
class Row:
    arrange: Arrange
    writes: list[str]
    synced: str
    deployed: str
    phase: str
    event: str | None = None  # a reason some event of the pass carries


async def fresh(w: World) -> None:
    return None


async def running(w: World) -> None:
    await w.running()


def then(*steps: Callable[[World], None]) -> Arrange:
    async def arrange(w: World) -> None:
        await w.running()
        for step in steps:
            step(w)

    return arrange


def existing_project(with_service: bool) -> FakeProject:
    project = FakeProject(
        "prj-old",
        project_name("claw", "tenant-a", "bot"),
        project_marker("default", "tenant-a", "bot"),
        "env-old",
    )
    if with_service:
        project.services["svc-old"] = FakeService(
            "svc-old", "bot", "prj-old", "env-old", {}, image=None, healthcheck_path=None
        )
    return project


async def adopt_by_name(w: World) -> None:
    project = existing_project(with_service=False)
    w.railway.projects[project.id] = project


async def adopt_by_annotation(w: World) -> None:
    project = existing_project(with_service=False)
    project.name, project.description = "made-by-the-old-system", ""
    w.railway.projects[project.id] = project
    w.body["metadata"]["annotations"][EXTERNAL_NAME_ANNOTATION] = project.id


def set_env(w: World) -> None:
    w.body["spec"]["env"][0]["value"] = "y"
    w.body["metadata"]["generation"] += 1


def set_image(w: World) -> None:
    w.plans["pro"] = plan_spec(source={"image": "ghcr.io/openclaw/openclaw:2026.3.0"})


def set_health_path(w: World) -> None:
    w.plans["pro"] = plan_spec(
        healthCheck={"path": "/ready", "intervalSeconds": 30, "timeoutSeconds": 2, "failureThreshold": 2}
    )


def drift(w: World) -> None:
    w.railway.only_service().variables["CUSTOM_VAR"] = "changed-by-hand"


def suspend(w: World) -> None:
    w.body["spec"]["suspend"] = True


async def suspended(w: World) -> None:
    await w.running()
    suspend(w)
    await w.run()
    w.body["spec"]["suspend"] = False
    w.railway.calls.clear()


def annotate(key: str) -> Callable[[World], None]:
    return lambda w: w.body["metadata"]["annotations"].update({key: "2026-11-30T12:30:00Z"})


def deployment(status: str) -> Callable[[World], None]:
    return lambda w: w.railway.set_status(status)


def probe_fails(w: World) -> None:
    w.health.results.append(ProbeResult(False, "HTTP 503", 0.0))


async def stuck(w: World) -> None:
    await w.run()
    w.railway.set_status("BUILDING")
    await w.run()
    w.railway.calls.clear()
    w.shift(601)


def fail_next(error: Exception) -> Callable[[World], None]:
    return lambda w: w.railway.fail.append(error)  # type: ignore[arg-type]


ROWS = {
    "create": Row(
        fresh, ["create_project", "create_service", "configure_service"], "Applied", "Deploying", "Deploying"
    ),
    "adopt by name": Row(
        adopt_by_name,
        ["create_service", "configure_service"],
        "Applied",
        "Deploying",
        "Deploying",
        "Provisioning",
    ),
    "adopt by annotation": Row(
        adopt_by_annotation, ["create_service", "configure_service"], "Applied", "Deploying", "Deploying"
    ),
    "steady": Row(running, [], "Applied", "DeploymentSucceeded", "Running"),
    "variables changed": Row(
        then(set_env), ["upsert_variables"], "Applied", "Deploying", "Deploying", "Applied"
    ),
    "source changed": Row(then(set_image), ["configure_service"], "Applied", "Deploying", "Deploying"),
    "settings changed": Row(
        then(set_health_path), ["configure_service", "deploy"], "Applied", "Deploying", "Deploying"
    ),
    "drift": Row(then(drift), ["upsert_variables"], "Applied", "Deploying", "Deploying", "Applied"),
    "suspend": Row(then(suspend), ["stop"], "Applied", "Suspended", "Suspended", "Suspended"),
    "resume": Row(suspended, ["deploy"], "Applied", "Deploying", "Deploying"),
    "restart": Row(
        then(annotate(RESTARTED_AT_ANNOTATION)), ["restart"], "Applied", "DeploymentSucceeded", "Running"
    ),
    "redeploy": Row(
        then(annotate(REDEPLOY_REQUESTED_AT_ANNOTATION)), ["redeploy"], "Applied", "Deploying", "Deploying"
    ),
    "deploy failed": Row(then(deployment("FAILED")), [], "Applied", "DeployFailed", "Failed", "DeployFailed"),
    "crashed": Row(
        then(deployment("CRASHED"), probe_fails), [], "Applied", "DeployCrashed", "Failed", "DeployCrashed"
    ),
    "crashed, still answering": Row(
        then(deployment("CRASHED")), [], "Applied", "DeployCrashed", "Degraded", "DeployCrashed"
    ),
    "timeout": Row(stuck, [], "Applied", "DeployTimeout", "Failed", "DeployTimeout"),
    "railway unavailable": Row(
        then(fail_next(RailwayRetryableError("HTTP 503", status_code=503))),
        [],
        "RailwayUnavailable",
        "DeploymentSucceeded",
        "Degraded",
        "RailwayUnavailable",
    ),
    "auth refused": Row(
        then(fail_next(RailwayAuthError("Not Authorized"))),
        [],
        "RailwayAuthFailed",
        "DeploymentSucceeded",
        "Degraded",
        "RailwayAuthFailed",
    ),
}


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
async def test_decision(row: Row) -> None:
    w = World()
    await row.arrange(w)
    w.events.clear()
    await w.run()
    assert w.railway.writes == row.writes
    assert w.condition("Synced")["reason"] == row.synced
    assert w.condition("Deployed")["reason"] == row.deployed
    assert w.status["phase"] == row.phase
    if row.event is not None:
        assert row.event in {e.reason for e in w.events}, w.events


async def test_a_second_pass_after_any_write_writes_nothing_more() -> None:
    w = World()
    await w.running()
    set_env(w)
    await w.run()
    w.railway.set_status("SUCCESS")
    await w.run()
    writes, status_writes = list(w.railway.writes), w.status_writes
    await w.run()
    await w.run()
    assert w.railway.writes == writes
    assert w.status_writes == status_writes


async def test_drift_event_is_a_warning_naming_no_values() -> None:
    w = World()
    await w.running()
    drift(w)
    await w.run()
    [event] = [e for e in w.events if "by hand" in e.message]
    assert event.type == "Warning" and "changed-by-hand" not in event.message


async def test_adoption_records_the_project_id_at_once() -> None:
    w = World()
    await adopt_by_name(w)
    w.railway.fail = []
    await w.run()
    assert w.body["metadata"]["annotations"][EXTERNAL_NAME_ANNOTATION] == "prj-old"
    assert w.status["railway"]["projectId"] == "prj-old"
    assert len(w.railway.projects) == 1


async def test_a_refused_platform_token_is_not_used_again_even_for_a_new_generation() -> None:
    w = World()
    await w.running()
    w.railway.refuse = True
    await w.run()
    synced = w.condition("Synced")
    assert synced["reason"] == "RailwayAuthFailed" and "RAILWAY_TOKEN" in synced["message"]
    calls = len(w.railway.calls)
    set_env(w)
    for _ in range(3):
        await w.run()
    assert len(w.railway.calls) == calls, "a refused token must not be tried again"


def self_hosted(w: World, token: str, tier: str | None = None) -> None:
    data = {"token": token, **({"tier": tier} if tier else {})}
    w.secrets[("tenant-a", "railway-token")] = data
    w.body["spec"]["railway"] = {
        "mode": "SelfHosted",
        "tokenSecretRef": {"name": "railway-token", "key": "token"},
    }


async def test_a_refused_tenant_token_waits_for_its_secret_to_change() -> None:
    w = World()
    self_hosted(w, canary("tenant-token"))
    await w.running()
    w.railway.refuse = True
    await w.run()
    synced = w.condition("Synced")
    assert synced["reason"] == "RailwayAuthFailed"
    assert "tenant-a/railway-token" in synced["message"] and "'token'" in synced["message"]
    assert CANARY_PREFIX not in json.dumps(w.status) + json.dumps([e.message for e in w.events])
    calls = len(w.railway.calls)
    for _ in range(3):
        await w.run()
    assert len(w.railway.calls) == calls, "no request with the refused token until the Secret changes"
    w.railway.refuse = False
    w.secrets[("tenant-a", "railway-token")]["token"] = canary("new-tenant-token")
    await w.run()
    assert w.condition("Synced")["reason"] == "Applied"
    assert w.status["phase"] == "Running"


class RefreshProblems:
    """The token refresher's answers, set by the test."""

    def __init__(self) -> None:
        self.problems: dict[tuple[str, str], str] = {}

    def problem(self, namespace: str, name: str) -> str | None:
        return self.problems.get((namespace, name))


async def test_a_refused_oauth_token_tells_why_its_refresh_failed_and_keeps_it_current() -> None:
    w = World()
    refresher = RefreshProblems()
    w.runtime.token_refresh = refresher
    self_hosted(w, canary("oauth-access-token"))
    oauth = {"refreshToken": canary("oauth-refresh-token"), "clientSecret": canary("oauth-client-secret")}
    w.secrets[("tenant-a", "railway-token")].update(oauth)
    await w.running()
    refused = (
        "refreshing the OAuth token in Secret tenant-a/railway-token failed: the OAuth token endpoint "
        "refused the refresh token (invalid_grant), HTTP 400; sign in again"
    )
    refresher.problems[("tenant-a", "railway-token")] = refused
    w.railway.refuse = True
    await w.run()
    synced = w.condition("Synced")
    assert synced["reason"] == "RailwayAuthFailed"
    assert "tenant-a/railway-token" in synced["message"] and "'token'" in synced["message"]
    assert f"OAuth token refresh: {refused}." in synced["message"]
    assert any(refused in e.message for e in w.events if e.reason == "RailwayAuthFailed")
    calls = len(w.railway.calls)

    # The refresher's reason changes (or goes): status follows, still sending nothing.
    lost = "the OAuth refresh token in Secret tenant-a/railway-token may have been spent"
    refresher.problems[("tenant-a", "railway-token")] = lost
    await w.run()
    assert lost in w.condition("Synced")["message"] and refused not in w.condition("Synced")["message"]
    del refresher.problems[("tenant-a", "railway-token")]
    await w.run()
    synced = w.condition("Synced")
    assert synced["reason"] == "RailwayAuthFailed" and "OAuth token refresh" not in synced["message"]
    for _ in range(2):
        await w.run()
    assert len(w.railway.calls) == calls, "no request with the refused token until the Secret changes"

    # A secret the refresher's text would carry by mistake is redacted like the token.
    refresher.problems[("tenant-a", "railway-token")] = (
        f"refused {oauth['refreshToken']} {oauth['clientSecret']}"
    )
    await w.run()
    assert "OAuth token refresh: refused [REDACTED] [REDACTED]." in w.condition("Synced")["message"]
    assert CANARY_PREFIX not in json.dumps(w.status) + json.dumps([e.message for e in w.events])

    w.railway.refuse = False
    w.secrets[("tenant-a", "railway-token")]["token"] = canary("new-oauth-access-token")
    del refresher.problems[("tenant-a", "railway-token")]
    await w.run()
    assert w.condition("Synced")["reason"] == "Applied"
    assert "OAuth token refresh" not in json.dumps(w.status)


async def test_a_refresh_problem_is_not_blamed_for_one_object_the_token_may_not_see() -> None:
    w = World()
    refresher = RefreshProblems()
    w.runtime.token_refresh = refresher
    self_hosted(w, "tenant-token")
    await w.running()
    refresher.problems[("tenant-a", "railway-token")] = "the refresh token was refused"
    w.railway.fail.append(RailwayAuthError("Not Authorized", operation="Project"))
    await w.run()
    synced = w.condition("Synced")
    assert synced["reason"] == "RailwayAuthFailed" and "OAuth token refresh" not in synced["message"]


@pytest.mark.parametrize(("tier", "expected"), [(None, "hobby"), ("free", "free"), ("pro", "pro")])
async def test_the_token_tier_comes_from_the_secret(tier: str | None, expected: str) -> None:
    w = World()
    self_hosted(w, "tenant-token", tier)
    await w.run()
    assert w.handles[-1] == ("tenant-token", expected)


async def test_an_unknown_token_tier_names_the_secret_and_key() -> None:
    w = World()
    self_hosted(w, "tenant-token", "gold")
    await w.run()
    synced = w.condition("Synced")
    assert synced["reason"] == "InvalidSpec"
    assert "tenant-a/railway-token" in synced["message"] and "'tier'" in synced["message"]
    assert w.railway.calls == []


async def test_unknown_deployment_status_counts_as_in_progress() -> None:
    w = World()
    await w.running()
    w.railway.set_status("SOMETHING_NEW")
    await w.run()
    assert w.condition("Deployed")["reason"] == "Deploying"


class FixedUsage:
    def __init__(self, cpu: float) -> None:
        self.cpu = cpu

    def usage_for(self, service_id: str) -> Usage | None:
        return Usage(cpu=self.cpu, memoryGB=0.5, sampledAt="2026-11-30T12:00:00Z")


async def test_usage_is_written_only_when_a_figure_moved_by_five_percent() -> None:
    w = World()
    usage = FixedUsage(1.0)
    w.runtime.usage = usage
    await w.running()
    assert w.status["usage"]["cpu"] == 1.0
    writes = w.status_writes
    usage.cpu = 1.04
    await w.run()
    assert w.status_writes == writes and w.status["usage"]["cpu"] == 1.0
    usage.cpu = 1.2
    await w.run()
    assert w.status["usage"]["cpu"] == 1.2


async def test_a_request_railway_rejects_waits_for_a_new_generation() -> None:
    w = World()
    await w.running()
    w.railway.fail.append(RailwayInvalidError("Invalid input", operation="ServiceConfigure"))
    await w.run()
    assert w.condition("Synced")["reason"] == "InvalidSpec"
    calls = len(w.railway.calls)
    for _ in range(3):
        await w.run()
    assert len(w.railway.calls) == calls, "a terminal error is not retried unchanged"
    set_env(w)
    await w.run()
    assert w.condition("Synced")["reason"] == "Applied"


async def test_an_unreadable_status_field_does_not_stop_the_pass() -> None:
    w = World()
    await w.running()
    w.body["status"]["deployment"]["progress"] = "lots"
    await w.run()
    assert w.status["phase"] == "Running" and w.railway.writes == []


async def test_not_authorized_for_one_object_does_not_shut_off_a_working_token() -> None:
    w = World()
    await w.running()
    w.railway.fail.append(RailwayAuthError("Not Authorized", operation="Project"))
    await w.run()
    assert w.condition("Synced")["reason"] == "RailwayAuthFailed"
    assert "refusedToken" not in w.status.get("applied", {})
    assert w.runtime.refused_tokens == set(), "a token-wide read succeeded: the token is fine"
    calls = len(w.railway.calls)
    await w.run()
    assert len(w.railway.calls) == calls, "this object still waits for a change"
    set_env(w)
    await w.run()
    assert w.condition("Synced")["reason"] == "Applied"
