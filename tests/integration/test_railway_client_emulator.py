"""The Railway client against the Railway emulator, over real HTTP."""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from claw_emulators.railway.app import RequestRecord
from claw_emulators.railway.faults import fingerprint
from claw_emulators.railway.server import RailwayEmulator
from claw_operator.railway.budget import RateBudget
from claw_operator.railway.client import RailwayClient
from claw_operator.railway.errors import RailwayNotFoundError
from claw_operator.railway.types import Deployment, Service, ServiceInstanceRef
from tests.fixtures.common import canary
from tests.fixtures.railway import TEST_TOKEN, TEST_WORKSPACE

MARKER = "claw-operator default/ns/a"
TERMINAL = {"SUCCESS", "FAILED", "CRASHED", "REMOVED", "SKIPPED"}


@pytest.fixture
async def client(railway_emulator: RailwayEmulator) -> AsyncIterator[RailwayClient]:
    # Its own budget, so tests never share the process-wide one of TEST_TOKEN.
    async with RailwayClient(
        url=railway_emulator.url, token=TEST_TOKEN, budget=RateBudget(rps=None, rph=None), backoff_base=0.05
    ) as client:
        yield client


async def settled(client: RailwayClient, deployment_id: str) -> Deployment:
    """Poll until the deployment ends (the emulator's phases are 0.1s each)."""
    for _ in range(400):
        deployment = await client.get_deployment(deployment_id)
        if deployment.status in TERMINAL:
            return deployment
        await asyncio.sleep(0.02)
    raise AssertionError(f"deployment {deployment_id} never settled")


class StampingTransport(httpx.AsyncBaseTransport):
    """Real HTTP, noting when each request leaves."""

    def __init__(self, sent_at: list[float]) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._sent_at = sent_at

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._sent_at.append(time.monotonic())
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def log_of(emulator: RailwayEmulator, token: str) -> list[RequestRecord]:
    return [r for r in emulator.requests if r.token == fingerprint(token)]


def max_in_any_window(times: list[float], length: float) -> int:
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, t + length) - i for i, t in enumerate(ordered)), default=0)


async def test_full_flow(railway_emulator: RailwayEmulator, client: RailwayClient) -> None:
    secret = canary("openai-key")
    project = await client.create_project(name="claw-ns-a", description=MARKER, workspace_id=TEST_WORKSPACE)
    environment = project.environment("production")
    assert environment is not None
    assert (await client.find_project("claw-ns-a", MARKER, TEST_WORKSPACE)) == await client.get_project(
        project.id
    )

    service = await client.create_service(
        project_id=project.id,
        environment_id=environment.id,
        name="openclaw",
        variables={"OPENAI_API_KEY": secret},
    )
    ref = ServiceInstanceRef(projectId=project.id, environmentId=environment.id, serviceId=service.id)
    # No source yet, so nothing deploys.
    assert (
        await client.list_deployments(
            project_id=project.id, environment_id=environment.id, service_id=service.id
        )
        == []
    )

    configured = await client.configure_service(
        environment_id=environment.id,
        service_id=service.id,
        settings={"healthcheckPath": "/healthz", "numReplicas": 1},
        limits={"vCPUs": 1.0, "memoryGB": 2.0},
        create_domain=True,
        source={"image": "ghcr.io/openclaw/openclaw:latest"},
    )
    assert configured.domain
    template = await client.get_template_service(
        project_id=project.id, environment_id=environment.id, service_id=service.id
    )
    assert template.source is not None and template.source.image == "ghcr.io/openclaw/openclaw:latest"
    assert template.healthcheckPath == "/healthz"
    assert template.variables == {"OPENAI_API_KEY": secret}

    await client.upsert_variables(
        project_id=project.id,
        environment_id=environment.id,
        service_id=service.id,
        variables={"MODEL": "gpt"},
        skip_deploys=True,
    )
    variables = await client.get_variables(
        project_id=project.id, environment_id=environment.id, service_id=service.id
    )
    assert variables["MODEL"] == "gpt" and variables["OPENAI_API_KEY"] == secret

    (first,) = await client.list_deployments(
        project_id=project.id, environment_id=environment.id, service_id=service.id
    )
    assert (await settled(client, first.id)).status == "SUCCESS"
    build, deploy = await client.deployment_logs(first.id, limit=10)
    assert build or deploy

    state = (await client.observe_fleet([ref], with_variables=True))[ref]
    assert state.found and state.latestDeployment is not None and state.latestDeployment.id == first.id
    assert configured.domain in state.domains
    assert state.variables is not None and state.variables["MODEL"] == "gpt"

    await client.restart(first.id)
    second_id = await client.deploy(environment_id=environment.id, service_id=service.id)
    assert (await settled(client, second_id)).status == "SUCCESS"
    third = await client.redeploy(second_id)
    assert (await settled(client, third.id)).status == "SUCCESS"
    await client.stop(third.id)
    extra_domain = await client.create_domain(environment_id=environment.id, service_id=service.id)
    assert extra_domain and extra_domain != configured.domain
    await client.update_service_instance(
        environment_id=environment.id, service_id=service.id, settings={"numReplicas": 2}
    )
    await client.update_limits(
        environment_id=environment.id, service_id=service.id, vcpus=2.0, memory_gb=None
    )
    await client.connect_source(service_id=service.id, image="ghcr.io/openclaw/openclaw:2")
    await client.metrics(
        project_id=project.id,
        environment_id=environment.id,
        service_id=service.id,
        start=datetime.now(UTC) - timedelta(hours=1),
        measurements=["CPU_USAGE", "MEMORY_USAGE_GB"],
    )

    assert await client.delete_project(project.id) is True
    assert await client.delete_project(project.id) is False
    with pytest.raises(RailwayNotFoundError):
        await client.get_project(project.id)
    gone = (await client.observe_fleet([ref], with_variables=False))[ref]
    assert not gone.found

    # Every request was answered cleanly, and the secret never reached the request log.
    outcomes = client.accounting.snapshot()["by_outcome"]
    assert {k: v for k, v in outcomes.items() if k != "ok" and v} == {"not_found": 2}  # the two "gone" reads
    assert secret not in repr(railway_emulator.requests)


async def test_fleet_read_many_services_in_one_request(railway_emulator: RailwayEmulator) -> None:
    async with RailwayClient(
        url=railway_emulator.url, token=TEST_TOKEN, budget=RateBudget(rps=None, rph=None), batch_size=100
    ) as client:
        project = await client.create_project(
            name="claw-fleet", description=MARKER, workspace_id=TEST_WORKSPACE
        )
        environment = project.environment()
        assert environment is not None
        services = await asyncio.gather(
            *(
                client.create_service(
                    project_id=project.id,
                    environment_id=environment.id,
                    name=f"svc-{n}",
                    variables={"N": str(n)},
                )
                for n in range(80)
            )
        )
        refs = [
            ServiceInstanceRef(projectId=project.id, environmentId=environment.id, serviceId=s.id)
            for s in services
        ]
        before = len(railway_emulator.requests)
        states = await client.observe_fleet(refs, with_variables=True)
        fleet_requests = railway_emulator.requests[before:]
        assert len(fleet_requests) == 1
        assert fleet_requests[0].root_fields.count("serviceInstance") == 80
        assert fleet_requests[0].root_fields.count("variables") == 80
        assert all(states[ref].found for ref in refs)
        # Rendered variables: Railway adds its own (RAILWAY_*) beside ours.
        assert [(states[ref].variables or {}).get("N") for ref in refs[:3]] == ["0", "1", "2"]

        # Two instances that do not exist: found=False, the others still read.
        ghosts = [
            ServiceInstanceRef(projectId=project.id, environmentId=environment.id, serviceId=f"ghost-{n}")
            for n in range(2)
        ]
        states = await client.observe_fleet([*refs[:10], *ghosts], with_variables=False)
        assert [states[g].found for g in ghosts] == [False, False]
        assert all(states[ref].found for ref in refs[:10])


async def test_storm_and_burst_lose_nothing_and_keep_the_budget(railway_emulator: RailwayEmulator) -> None:
    token = canary("storm-token")
    rps, rph = 8, 400
    railway_emulator.add_token(token, TEST_WORKSPACE, per_hour=rph, per_second=rps)
    budget = RateBudget(rps=rps, rph=rph)
    sent_at: list[float] = []

    def storm_client() -> RailwayClient:
        return RailwayClient(
            url=railway_emulator.url,
            token=token,
            budget=budget,
            backoff_base=0.05,
            backoff_max=0.5,
            max_retries=30,
            transport=StampingTransport(sent_at),
        )

    # Two clients of one token: the budget is per token, not per client.
    async with storm_client() as client, storm_client() as other:
        project = await client.create_project(
            name="claw-storm", description=MARKER, workspace_id=TEST_WORKSPACE
        )
        environment = project.environment()
        assert environment is not None

        async def create_all(names: list[str]) -> list[Service]:
            return await asyncio.gather(
                *(
                    (client if n % 2 else other).create_service(
                        project_id=project.id, environment_id=environment.id, name=name, variables={}
                    )
                    for n, name in enumerate(names)
                )
            )

        # A 429 storm, HTTP then GraphQL flavoured (the emulator fires every matching
        # fault on one request, so one kind at a time): non-idempotent creates are retried,
        # because a throttled request never ran, and each service exists exactly once.
        railway_emulator.add_fault(kind="throttle", mode="http", seconds=1, count=3, token=token)
        services = await create_all([f"svc-{n}" for n in range(5)])
        railway_emulator.add_fault(kind="throttle", mode="graphql", count=3, token=token)
        services += await create_all([f"svc-{n}" for n in range(5, 10)])
        created = Counter(
            s.name for s in railway_emulator.state.services.values() if s.project_id == project.id
        )
        assert created == Counter(f"svc-{n}" for n in range(10))

        # A 5xx burst: idempotent upserts are retried until every one lands.
        railway_emulator.add_fault(kind="http_error", status=503, count=6, token=token)
        await asyncio.gather(
            *(
                (client if n % 2 else other).upsert_variables(
                    project_id=project.id,
                    environment_id=environment.id,
                    service_id=service.id,
                    variables={"INDEX": str(n)},
                    skip_deploys=True,
                )
                for n, service in enumerate(services)
            )
        )
        refs = [
            ServiceInstanceRef(projectId=project.id, environmentId=environment.id, serviceId=s.id)
            for s in services
        ]
        states = await client.observe_fleet(refs, with_variables=True)
        assert [(states[ref].variables or {}).get("INDEX") for ref in refs] == [str(n) for n in range(10)]

    log = log_of(railway_emulator, token)
    errors = Counter(r.error for r in log)
    assert errors["throttled"] == 6 and errors["http_error"] == 6
    # Railway's (the emulator's) own budget never had to refuse us...
    assert errors["rate_limited"] == 0
    assert len(log) <= rph
    # ...because every send kept to ours. Send times are taken as the request leaves the
    # client: the emulator's log stamps a request when it answers, and since it shares
    # this event loop, its answers can bunch up behind each other.
    assert len(sent_at) == len(log)
    assert max_in_any_window(sent_at, 1.0) <= rps
    retries = client.accounting.retries() + other.accounting.retries()
    assert retries >= 12
