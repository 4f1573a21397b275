"""Retries: backoff with full jitter, Retry-After, and the idempotency rule."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import httpx
import pytest

from claw_operator.railway.client import RailwayClient
from claw_operator.railway.errors import (
    RailwayAuthError,
    RailwayInvalidError,
    RailwayNotFoundError,
    RailwayRateLimitedError,
    RailwayRetryableError,
)
from claw_operator.railway.retry import Backoff, should_retry
from tests.unit.railway_fakes import FakeRailway, VirtualTime, gql_error, make_client, ok

PROJECT = {"id": "p1", "name": "claw-a", "environments": {"edges": []}, "services": {"edges": []}}


def test_backoff_ceiling_doubles_up_to_the_maximum() -> None:
    backoff = Backoff(base=0.5, maximum=30.0)
    assert [backoff.ceiling(n) for n in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff.ceiling(10_000) == 30.0


def test_full_jitter_stays_within_bounds_and_spreads() -> None:
    backoff = Backoff(base=0.5, maximum=30.0)
    rng = random.Random(1)
    for retry_number in range(10):
        delays = [backoff.delay(retry_number, rng) for _ in range(500)]
        ceiling = backoff.ceiling(retry_number)
        assert all(0.0 <= d <= ceiling for d in delays)
        # Full jitter, not "ceiling minus a little": the draws cover the whole range.
        assert min(delays) < ceiling * 0.1 and max(delays) > ceiling * 0.9


def test_retry_after_is_a_floor_even_above_the_maximum() -> None:
    backoff = Backoff(base=0.5, maximum=2.0)
    rng = random.Random(1)
    assert all(backoff.delay(n, rng, retry_after=12.0) == 12.0 for n in range(5))
    assert all(0.0 <= backoff.delay(3, rng, retry_after=0.0) <= 2.0 for _ in range(50))


def test_should_retry_table() -> None:
    retryable = RailwayRetryableError("boom")
    throttled = RailwayRateLimitedError("slow")
    assert should_retry(retryable, idempotent=True, provably_unexecuted=False)
    assert not should_retry(retryable, idempotent=False, provably_unexecuted=False)
    assert should_retry(retryable, idempotent=False, provably_unexecuted=True)
    assert should_retry(throttled, idempotent=False, provably_unexecuted=False)
    for permanent in (RailwayAuthError("x"), RailwayNotFoundError("x"), RailwayInvalidError("x")):
        assert not should_retry(permanent, idempotent=True, provably_unexecuted=True)


async def test_retries_until_success_with_jittered_waits() -> None:
    time = VirtualTime()
    fake = FakeRailway(script=[*[httpx.Response(503)] * 4, ok({"project": PROJECT})])
    async with make_client(fake, time, backoff_base=0.5, backoff_max=3.0) as client:
        project = await client.get_project("p1")
    assert project.id == "p1"
    assert len(fake.sent) == 5
    assert len(time.sleeps) == 4
    for n, slept in enumerate(time.sleeps):
        assert 0.0 <= slept <= min(3.0, 0.5 * 2**n)
    assert client.accounting.retries("Project") == 4
    assert client.accounting.count("Project", None) == 5


async def test_same_seed_same_waits() -> None:
    async def waits(seed: int) -> list[float]:
        time = VirtualTime()
        fake = FakeRailway(script=[*[httpx.Response(502)] * 3, ok({"project": PROJECT})])
        async with make_client(fake, time, seed=seed) as client:
            await client.get_project("p1")
        return time.sleeps

    assert await waits(3) == await waits(3)
    assert await waits(3) != await waits(4)


async def test_gives_up_after_max_retries() -> None:
    time = VirtualTime()
    fake = FakeRailway(default=httpx.Response(504))
    async with make_client(fake, time, max_retries=3) as client:
        with pytest.raises(RailwayRetryableError) as caught:
            await client.get_project("p1")
    assert len(fake.sent) == 4
    assert caught.value.status_code == 504


async def test_retry_after_honoured() -> None:
    time = VirtualTime()
    fake = FakeRailway(script=[httpx.Response(429, headers={"Retry-After": "12"}), ok({"project": PROJECT})])
    async with make_client(fake, time, backoff_max=1.0) as client:
        await client.get_project("p1")
    assert time.sleeps and max(time.sleeps) >= 12.0
    assert time.now >= 1_000.0 + 12.0


@pytest.mark.parametrize(
    "permanent",
    [
        gql_error("Not Authorized"),
        gql_error("Project not found"),
        gql_error('Unknown argument "x"', status=400),
    ],
    ids=["auth", "not-found", "invalid"],
)
async def test_permanent_errors_are_not_retried(permanent: httpx.Response) -> None:
    fake = FakeRailway(script=[permanent, ok({"project": PROJECT})])
    async with make_client(fake) as client:
        with pytest.raises((RailwayAuthError, RailwayNotFoundError, RailwayInvalidError)):
            await client.get_project("p1")
    assert len(fake.sent) == 1


Call = Callable[[RailwayClient], Awaitable[object]]

PROJECT_CREATE: Call = lambda c: c.create_project(name="n", description="d", workspace_id=None)  # noqa: E731
SERVICE_CREATE: Call = lambda c: c.create_service(project_id="p", environment_id="e", name="n", variables={})  # noqa: E731
DOMAIN_CREATE: Call = lambda c: c.create_domain(environment_id="e", service_id="s")  # noqa: E731
DEPLOY: Call = lambda c: c.deploy(environment_id="e", service_id="s")  # noqa: E731
REDEPLOY: Call = lambda c: c.redeploy("d1")  # noqa: E731
CONFIGURE: Call = lambda c: c.configure_service(  # noqa: E731
    environment_id="e", service_id="s", settings=None, limits=None, create_domain=True, source={"image": "x"}
)

NON_IDEMPOTENT: dict[str, Call] = {
    "projectCreate": PROJECT_CREATE,
    "serviceCreate": SERVICE_CREATE,
    "serviceDomainCreate": DOMAIN_CREATE,
    "serviceInstanceDeployV2": DEPLOY,
    "deploymentRedeploy": REDEPLOY,
    "ServiceConfigure": CONFIGURE,
}

IDEMPOTENT: dict[str, Call] = {
    "serviceInstanceUpdate": lambda c: c.update_service_instance(
        environment_id="e", service_id="s", settings={"numReplicas": 1}
    ),
    "limits": lambda c: c.update_limits(environment_id="e", service_id="s", vcpus=1.0, memory_gb=None),
    "variableCollectionUpsert": lambda c: c.upsert_variables(
        project_id="p", environment_id="e", service_id="s", variables={"A": "b"}
    ),
    "serviceConnect": lambda c: c.connect_source(service_id="s", image="img"),
    "deploymentRestart": lambda c: c.restart("d1"),
    "deploymentStop": lambda c: c.stop("d1"),
    "projectDelete": lambda c: c.delete_project("p1"),
    "query": lambda c: c.get_variables(project_id="p", environment_id="e", service_id="s"),
}

AMBIGUOUS = {
    "http-502": httpx.Response(502),
    "http-503": httpx.Response(503),
    "read-timeout": httpx.ReadTimeout("slow"),
    "dropped": httpx.RemoteProtocolError("closed"),
}
UNEXECUTED = {
    "http-429": httpx.Response(429, headers={"Retry-After": "1"}),
    "throttled-200": gql_error("You're doing that too quickly"),
    "connect-error": httpx.ConnectError("refused"),
    "connect-timeout": httpx.ConnectTimeout("slow"),
}


def _catch_all(body: dict[str, object]) -> httpx.Response:
    """A success for whichever operation is asked (shape is irrelevant here except for
    the ones parsed)."""
    deployment = {"id": "d2", "status": "QUEUED"}
    return ok(
        {
            "projectCreate": PROJECT,
            "serviceCreate": {"id": "s", "name": "n", "projectId": "p"},
            "serviceDomainCreate": {"id": "dm", "domain": "x.up.railway.app"},
            "domain": {"id": "dm", "domain": "x.up.railway.app"},
            "serviceInstanceDeployV2": "d2",
            "deploymentRedeploy": deployment,
            "variables": {},
        }
    )


@pytest.mark.parametrize("failure", AMBIGUOUS.values(), ids=AMBIGUOUS.keys())
@pytest.mark.parametrize("call", NON_IDEMPOTENT.values(), ids=NON_IDEMPOTENT.keys())
async def test_non_idempotent_not_retried_when_it_may_have_run(
    call: Call, failure: httpx.Response | Exception
) -> None:
    fake = FakeRailway(script=[failure], default=_catch_all)
    async with make_client(fake) as client:
        with pytest.raises(RailwayRetryableError) as caught:
            await call(client)
    assert len(fake.sent) == 1, "a create that may have run must be observed, not repeated"
    assert "observe" in str(caught.value)


@pytest.mark.parametrize("failure", UNEXECUTED.values(), ids=UNEXECUTED.keys())
@pytest.mark.parametrize("call", NON_IDEMPOTENT.values(), ids=NON_IDEMPOTENT.keys())
async def test_non_idempotent_retried_when_it_provably_did_not_run(
    call: Call, failure: httpx.Response | Exception
) -> None:
    fake = FakeRailway(script=[failure], default=_catch_all)
    async with make_client(fake) as client:
        await call(client)
    assert len(fake.sent) == 2


@pytest.mark.parametrize(
    "failure", [*AMBIGUOUS.values(), *UNEXECUTED.values()], ids=[*AMBIGUOUS, *UNEXECUTED]
)
@pytest.mark.parametrize("call", IDEMPOTENT.values(), ids=IDEMPOTENT.keys())
async def test_idempotent_retried_on_every_retryable_error(
    call: Call, failure: httpx.Response | Exception
) -> None:
    fake = FakeRailway(script=[failure], default=_catch_all)
    async with make_client(fake) as client:
        await call(client)
    assert len(fake.sent) == 2
    assert client.accounting.retries() == 1
