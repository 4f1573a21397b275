"""The emulator's deployment state machine, driven by an explicit clock (no sleeping)."""

from __future__ import annotations

import pytest

from claw_emulators.railway.deploys import PhaseDurations
from claw_emulators.railway.faults import Fault, FaultBook, parse_fault_flag
from claw_emulators.railway.ratelimit import RateTier, TokenBudget, parse_tier
from claw_emulators.railway.state import ApiError, NotAuthorized, NotFound, RailwayState, Token


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> RailwayState:
    # Each phase lasts 10 "seconds" of the fake clock: QUEUED [0,10), INITIALIZING [10,20),
    # BUILDING [20,30), DEPLOYING [30,40), SUCCESS from 40.
    return RailwayState(clock=clock, phases=PhaseDurations.uniform(10))


@pytest.fixture
def token(state: RailwayState) -> Token:
    return state.add_token("unit-token", "ws-unit", tier="pro")


def _service(
    state: RailwayState, token: Token, *, image: str | None = "img:1", name: str = "web"
) -> tuple[str, str]:
    project = state.create_project(
        token, name="proj", description=None, workspace_id=None, default_environment_name=None
    )
    service = state.create_service(
        token,
        project_id=project.id,
        environment_id=None,
        name=name,
        image=image,
        repo=None,
        branch=None,
        variables={"SECRET": "s3cret"},
    )
    return project.environments[0].id, service.id


def _statuses(state: RailwayState, env: str, svc: str) -> list[str]:
    return [state.status(dep)[0] for dep in state.instances[(svc, env)].deployments]


@pytest.mark.parametrize(
    ("elapsed", "status"),
    [
        (0, "QUEUED"),
        (9.9, "QUEUED"),
        (10, "INITIALIZING"),
        (25, "BUILDING"),
        (35, "DEPLOYING"),
        (40, "SUCCESS"),
    ],
)
def test_a_deployment_walks_through_the_phases(
    state: RailwayState, token: Token, clock: Clock, elapsed: float, status: str
) -> None:
    env, svc = _service(state, token)
    clock.advance(elapsed)
    assert _statuses(state, env, svc) == [status]


def test_status_updated_at_names_the_phase_start(state: RailwayState, token: Token, clock: Clock) -> None:
    env, svc = _service(state, token)
    created = clock.now
    clock.advance(25)
    dep = state.instances[(svc, env)].deployments[0]
    assert state.status(dep) == ("BUILDING", created + 20)


def test_a_service_without_source_does_not_deploy(state: RailwayState, token: Token) -> None:
    env, svc = _service(state, token, image=None)
    assert _statuses(state, env, svc) == []
    with pytest.raises(ApiError, match="no source"):
        state.deploy(token, env, svc)


def test_settings_do_not_deploy_but_connect_does(state: RailwayState, token: Token) -> None:
    env, svc = _service(state, token, image=None)
    state.update_instance(token, env, svc, {"source": {"image": "img:2"}, "numReplicas": 2})
    assert _statuses(state, env, svc) == []
    assert state.instances[(svc, env)].num_replicas == 2
    state.connect(token, svc, "img:3", None, None)
    assert _statuses(state, env, svc) == ["QUEUED"]


def test_a_newer_deployment_skips_one_that_never_built(
    state: RailwayState, token: Token, clock: Clock
) -> None:
    env, svc = _service(state, token)
    clock.advance(5)
    state.deploy(token, env, svc)
    assert _statuses(state, env, svc) == ["SKIPPED", "QUEUED"]


def test_a_newer_deployment_removes_one_still_building(
    state: RailwayState, token: Token, clock: Clock
) -> None:
    env, svc = _service(state, token)
    clock.advance(25)
    state.deploy(token, env, svc)
    assert _statuses(state, env, svc) == ["REMOVED", "QUEUED"]


def test_a_running_deployment_is_removed_once_the_newer_one_is_up(
    state: RailwayState, token: Token, clock: Clock
) -> None:
    env, svc = _service(state, token)
    clock.advance(45)
    state.deploy(token, env, svc)
    clock.advance(39)
    assert _statuses(state, env, svc) == ["SUCCESS", "DEPLOYING"]
    clock.advance(1)
    assert _statuses(state, env, svc) == ["REMOVED", "SUCCESS"]


def test_a_failed_newer_build_leaves_the_running_one_alone(
    state: RailwayState, token: Token, clock: Clock
) -> None:
    env, svc = _service(state, token)
    clock.advance(45)
    state.faults.add(Fault(kind="fail_build"))
    state.deploy(token, env, svc)
    clock.advance(100)
    assert _statuses(state, env, svc) == ["SUCCESS", "FAILED"]


def test_stop_removes_and_restart_keeps_success(state: RailwayState, token: Token, clock: Clock) -> None:
    env, svc = _service(state, token)
    clock.advance(45)
    dep = state.instances[(svc, env)].deployments[0]
    state.restart(token, dep.id)
    assert len(dep.restarts) == 1
    assert _statuses(state, env, svc) == ["SUCCESS"]
    state.stop(token, dep.id)
    assert _statuses(state, env, svc) == ["REMOVED"]
    with pytest.raises(ApiError, match="not running"):
        state.restart(token, dep.id)


def test_redeploy_copies_the_old_config(state: RailwayState, token: Token, clock: Clock) -> None:
    env, svc = _service(state, token)
    clock.advance(45)
    old = state.instances[(svc, env)].deployments[0]
    state.upsert_variables(
        token,
        project_id=old.project_id,
        environment_id=env,
        service_id=svc,
        variables={"SECRET": "new"},
        replace=False,
        skip_deploys=True,
    )
    new = state.redeploy(token, old.id)
    assert new.id != old.id
    assert new.variables["SECRET"] == "s3cret"
    assert state.deploy(token, env, svc).variables["SECRET"] == "new"


def test_variable_upsert_deploys_unless_skipped(state: RailwayState, token: Token) -> None:
    env, svc = _service(state, token)
    project_id = state.services[svc].project_id

    def upsert(variables: dict[str, str], *, skip: bool, replace: bool = False) -> None:
        state.upsert_variables(
            token,
            project_id=project_id,
            environment_id=env,
            service_id=svc,
            variables=variables,
            replace=replace,
            skip_deploys=skip,
        )

    upsert({"A": "1"}, skip=True)
    assert len(state.instances[(svc, env)].deployments) == 1
    upsert({"B": "2"}, skip=False)
    assert len(state.instances[(svc, env)].deployments) == 2
    assert state.instances[(svc, env)].variables == {"SECRET": "s3cret", "A": "1", "B": "2"}
    upsert({"ONLY": "x"}, skip=True, replace=True)
    assert state.instances[(svc, env)].variables == {"ONLY": "x"}


@pytest.mark.parametrize(
    ("kind", "elapsed", "status"),
    [("hang_deploy", 10_000, "BUILDING"), ("fail_build", 30, "FAILED"), ("fail_build", 29, "BUILDING")],
)
def test_deployment_faults(
    state: RailwayState, token: Token, clock: Clock, kind: str, elapsed: float, status: str
) -> None:
    state.faults.add(parse_fault_flag(kind))
    env, svc = _service(state, token)
    clock.advance(elapsed)
    assert _statuses(state, env, svc) == [status]


def test_crash_after_start_and_restart(state: RailwayState, token: Token, clock: Clock) -> None:
    state.faults.add(parse_fault_flag("crash_after_start:seconds=5"))
    env, svc = _service(state, token)
    clock.advance(44)
    assert _statuses(state, env, svc) == ["SUCCESS"]
    clock.advance(1)
    assert _statuses(state, env, svc) == ["CRASHED"]
    state.restart(token, state.instances[(svc, env)].deployments[0].id)
    assert _statuses(state, env, svc) == ["SUCCESS"]
    clock.advance(5)
    assert _statuses(state, env, svc) == ["CRASHED"]


def test_faults_scope_by_name_and_count(state: RailwayState, token: Token, clock: Clock) -> None:
    state.faults.add(parse_fault_flag("fail_build:service=api,count=1"))
    env_web, web = _service(state, token, name="web")
    env_api, api = _service(state, token, name="api")
    clock.advance(35)
    state.deploy(token, env_api, api)
    clock.advance(100)
    assert _statuses(state, env_web, web) == ["SUCCESS"]
    assert _statuses(state, env_api, api) == ["FAILED", "SUCCESS"]
    assert state.faults.faults == []


def test_delete_project_removes_everything(state: RailwayState, token: Token) -> None:
    env, svc = _service(state, token)
    state.create_domain(token, env, svc, None)
    project_id = state.services[svc].project_id
    state.delete_project(token, project_id)
    assert not state.projects and not state.services and not state.instances
    assert not state.deployments and not state.domains
    with pytest.raises(NotFound, match="Project not found"):
        state.delete_project(token, project_id)


def test_other_workspaces_are_not_authorized(state: RailwayState, token: Token) -> None:
    env, svc = _service(state, token)
    stranger = state.add_token("stranger", "ws-other")
    with pytest.raises(NotAuthorized):
        state.instance(stranger, env, svc)
    with pytest.raises(NotAuthorized):
        state.create_project(
            stranger, name="x", description=None, workspace_id="ws-unit", default_environment_name=None
        )


def test_rendered_variables_resolve_references(state: RailwayState, token: Token) -> None:
    env, svc = _service(state, token)
    instance = state.instances[(svc, env)]
    instance.variables.update(
        {"URL": "https://${{RAILWAY_PUBLIC_DOMAIN}}", "S": "${{shared.K}}", "M": "${{nope}}"}
    )
    domain = state.create_domain(token, env, svc, 8080)
    state.environment(token, env)[1].shared_variables["K"] = "shared-value"
    rendered = state.rendered_variables(instance)
    assert rendered["URL"] == f"https://{domain.domain}"
    assert rendered["S"] == "shared-value"
    assert rendered["M"] == ""
    assert rendered["RAILWAY_SERVICE_NAME"] == "web"
    assert rendered["RAILWAY_ENVIRONMENT_NAME"] == "production"
    assert domain.domain.startswith("web-production-") and domain.domain.endswith(".up.railway.app")


def test_rate_budget_hour_and_second_windows() -> None:
    budget = TokenBudget(RateTier("custom", 3, 2))
    assert [budget.take(0.0).allowed for _ in range(3)] == [True, True, False]
    refused = budget.take(0.5)
    assert refused.headers()["Retry-After"] == "1"
    assert budget.take(1.0).allowed
    hourly = budget.take(1.1)
    assert not hourly.allowed and hourly.remaining == 0
    assert hourly.headers()["Retry-After"] == str(3600 - 1)
    assert budget.take(3600.0).allowed


def test_tiers_parse() -> None:
    assert parse_tier("free") == RateTier("free", 100, None)
    assert parse_tier("Hobby") == RateTier("hobby", 1000, 10)
    assert parse_tier("pro") == RateTier("pro", 10000, 50)
    assert parse_tier("60/2") == RateTier("custom", 60, 2)
    with pytest.raises(ValueError):
        parse_tier("gold")


def test_fault_flags_parse_and_never_keep_a_raw_token() -> None:
    fault = parse_fault_flag("http_error:status=502,fraction=0.5,count=3")
    assert (fault.kind, fault.status, fault.fraction, fault.count) == ("http_error", 502, 0.5, 3)
    book = FaultBook()
    book.add(parse_fault_flag("invalid_token:token=secret-token-value"))
    assert "secret-token-value" not in repr(book.faults)
    with pytest.raises(ValueError, match="unknown fault kind"):
        parse_fault_flag("explode")
    with pytest.raises(ValueError, match="unknown fault parameters"):
        parse_fault_flag("latency:bogus=1")
