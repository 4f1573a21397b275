"""The Railway emulator over HTTP, with the operator's own GraphQL documents."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from claw_emulators.railway.server import RailwayEmulator
from claw_operator.railway import documents
from tests.fixtures.railway import TEST_TOKEN, TEST_WORKSPACE


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Api:
    """A tiny GraphQL caller for tests (the operator's real client is tested elsewhere)."""

    def __init__(self, http: httpx.AsyncClient, emu: RailwayEmulator, token: str = TEST_TOKEN) -> None:
        self.http, self.emu, self.token = http, emu, token

    async def post(self, query: str, token: str | None = None, **variables: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return await self.http.post(
            self.emu.url, json={"query": query, "variables": variables}, headers=headers
        )

    async def call(self, query: str, **variables: Any) -> dict[str, Any]:
        response = await self.post(query, **variables)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def data(self, query: str, **variables: Any) -> dict[str, Any]:
        body = await self.call(query, **variables)
        assert "errors" not in body, body["errors"]
        result: dict[str, Any] = body["data"]
        return result

    async def new_service(
        self,
        *,
        name: str = "gateway",
        project: str = "claw-demo",
        image: str | None = "ghcr.io/openclaw/openclaw:1",
    ) -> tuple[str, str, str]:
        created = await self.data(documents.PROJECT_CREATE, input={"name": project, "description": "d"})
        project_id = created["projectCreate"]["id"]
        env_id = created["projectCreate"]["environments"]["edges"][0]["node"]["id"]
        source = {"source": {"image": image}} if image else {}
        service = await self.data(
            documents.SERVICE_CREATE,
            input={"projectId": project_id, "name": name, "variables": {"API_KEY": "k-123"}, **source},
        )
        return project_id, env_id, service["serviceCreate"]["id"]

    async def latest(self, env_id: str, service_id: str) -> dict[str, Any] | None:
        data = await self.data(documents.fleet_observe(1, with_variables=False), e0=env_id, s0=service_id)
        latest: dict[str, Any] | None = data["i0"]["latestDeployment"]
        return latest


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@pytest.fixture
async def api(railway_emulator: RailwayEmulator, http: httpx.AsyncClient) -> Api:
    return Api(http, railway_emulator)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def clocked(clock: Clock, http: httpx.AsyncClient) -> AsyncIterator[Api]:
    """An emulator on a fake clock: phases last 10 fake seconds, time moves only when told."""
    async with RailwayEmulator(
        phase_seconds=10, clock=clock, tokens={TEST_TOKEN: (TEST_WORKSPACE, "100000/1000")}
    ) as emu:
        yield Api(http, emu)


# ---- the operator's flows --------------------------------------------------------------


async def test_create_configure_observe_and_delete(api: Api) -> None:
    created = await api.data(
        documents.PROJECT_CREATE,
        input={"name": "claw-a", "description": "claw.io/instance=ns/a", "workspaceId": TEST_WORKSPACE},
    )
    project = created["projectCreate"]
    assert project["workspaceId"] == TEST_WORKSPACE
    assert [e["node"]["name"] for e in project["environments"]["edges"]] == ["production"]
    env_id = project["environments"]["edges"][0]["node"]["id"]
    service = await api.data(documents.SERVICE_CREATE, input={"projectId": project["id"], "name": "gateway"})
    service_id = service["serviceCreate"]["id"]
    assert await api.latest(env_id, service_id) is None  # no source, no deployment

    configure = documents.service_configure(settings=True, limits=True, domain=True, connect=True)
    result = await api.data(
        configure,
        environmentId=env_id,
        serviceId=service_id,
        settings={"healthcheckPath": "/healthz", "numReplicas": 2, "restartPolicyType": "ALWAYS"},
        limits={"environmentId": env_id, "serviceId": service_id, "vCPUs": 2.0, "memoryGB": 4.0},
        source={"image": "ghcr.io/openclaw/openclaw:2"},
    )
    domain = result["domain"]["domain"]
    assert domain.startswith("gateway-production-") and domain.endswith(".up.railway.app")
    instance = api.emu.state.instances[(service_id, env_id)]
    assert (instance.vcpus, instance.memory_gb, instance.num_replicas) == (2.0, 4.0, 2)
    assert len(instance.deployments) == 1  # only serviceConnect deployed

    observed = await api.data(
        documents.fleet_observe(1, with_variables=True), p0=project["id"], e0=env_id, s0=service_id
    )
    assert observed["i0"]["source"] == {"image": "ghcr.io/openclaw/openclaw:2", "repo": None}
    assert observed["i0"]["domains"]["serviceDomains"] == [{"domain": domain}]
    assert observed["v0"]["RAILWAY_PUBLIC_DOMAIN"] == domain
    assert observed["v0"]["RAILWAY_PROJECT_ID"] == project["id"]

    assert (await api.data(documents.PROJECT_DELETE, id=project["id"])) == {"projectDelete": True}
    gone = await api.call(documents.PROJECT, id=project["id"])
    assert gone["data"] is None and "not found" in gone["errors"][0]["message"]


async def test_deployment_progresses_and_supersedes(clocked: Api, clock: Clock) -> None:
    _, env_id, service_id = await clocked.new_service()
    first = await clocked.latest(env_id, service_id)
    assert first is not None and first["status"] == "QUEUED"
    clock.advance(25)
    assert (await clocked.data(documents.DEPLOYMENT, id=first["id"]))["deployment"]["status"] == "BUILDING"
    clock.advance(20)
    assert (await clocked.data(documents.DEPLOYMENT, id=first["id"]))["deployment"]["status"] == "SUCCESS"

    new_id = (
        await clocked.data(documents.SERVICE_INSTANCE_DEPLOY, environmentId=env_id, serviceId=service_id)
    )["serviceInstanceDeployV2"]
    listed = await clocked.data(documents.DEPLOYMENTS, input={"serviceId": service_id}, first=10)
    assert [(e["node"]["id"], e["node"]["status"]) for e in listed["deployments"]["edges"]] == [
        (new_id, "QUEUED"),
        (first["id"], "SUCCESS"),
    ]
    clock.advance(40)
    listed = await clocked.data(documents.DEPLOYMENTS, input={"serviceId": service_id}, first=1)
    assert [e["node"]["status"] for e in listed["deployments"]["edges"]] == ["SUCCESS"]
    assert (await clocked.data(documents.DEPLOYMENT, id=first["id"]))["deployment"]["status"] == "REMOVED"

    redeployed = (await clocked.data(documents.DEPLOYMENT_REDEPLOY, id=new_id))["deploymentRedeploy"]
    assert redeployed["status"] == "QUEUED" and redeployed["id"] != new_id
    clock.advance(40)
    assert (await clocked.data(documents.DEPLOYMENT_RESTART, id=redeployed["id"])) == {
        "deploymentRestart": True
    }
    assert len(clocked.emu.state.deployments[redeployed["id"]].restarts) == 1
    assert (await clocked.data(documents.DEPLOYMENT_STOP, id=redeployed["id"])) == {"deploymentStop": True}
    stopped = await clocked.latest(env_id, service_id)
    assert stopped is not None and (stopped["id"], stopped["status"]) == (redeployed["id"], "REMOVED")


async def test_real_time_phases_with_the_fixture(api: Api) -> None:
    _, env_id, service_id = await api.new_service()
    deadline = time.monotonic() + 10
    while (latest := await api.latest(env_id, service_id)) and latest["status"] != "SUCCESS":
        assert time.monotonic() < deadline, latest
        await asyncio.sleep(0.05)


async def test_duplicate_names_and_pagination(api: Api) -> None:
    for _ in range(3):
        await api.data(documents.PROJECT_CREATE, input={"name": "same"})
    first = await api.data(documents.PROJECTS, first=2)
    page = first["projects"]
    assert [e["node"]["name"] for e in page["edges"]] == ["same", "same"]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = await api.data(documents.PROJECTS, first=2, after=page["pageInfo"]["endCursor"])
    assert len(rest["projects"]["edges"]) == 1 and rest["projects"]["pageInfo"]["hasNextPage"] is False
    ids = [e["node"]["id"] for e in page["edges"] + rest["projects"]["edges"]]
    assert ids == [p.id for p in api.emu.state.projects.values()]


async def test_variables_upsert_deploys_and_unrendered_keeps_references(api: Api) -> None:
    project_id, env_id, service_id = await api.new_service()
    base = {"projectId": project_id, "environmentId": env_id, "serviceId": service_id}
    await api.data(
        documents.VARIABLE_COLLECTION_UPSERT,
        input={**base, "variables": {"SELF": "${{RAILWAY_SERVICE_NAME}}"}},
    )
    await api.data(
        documents.VARIABLE_COLLECTION_UPSERT, input={**base, "variables": {"X": "1"}, "skipDeploys": True}
    )
    assert len(api.emu.state.instances[(service_id, env_id)].deployments) == 2
    rendered = await api.data(documents.VARIABLES, **base)
    assert rendered["variables"]["SELF"] == "gateway"
    assert rendered["variables"]["RAILWAY_ENVIRONMENT_NAME"] == "production"
    template = await api.data(documents.TEMPLATE_SERVICE, **base)
    assert template["variables"] == {"API_KEY": "k-123", "SELF": "${{RAILWAY_SERVICE_NAME}}", "X": "1"}
    assert template["serviceInstance"]["restartPolicyType"] == "ON_FAILURE"


async def test_logs_and_metrics(clocked: Api, clock: Clock) -> None:
    project_id, env_id, service_id = await clocked.new_service()
    clock.advance(45)
    latest = await clocked.latest(env_id, service_id)
    assert latest is not None
    logs = await clocked.data(documents.DEPLOYMENT_LOGS, deploymentId=latest["id"], limit=100)
    assert any("Build completed" in line["message"] for line in logs["buildLogs"])
    assert any("Listening" in line["message"] for line in logs["deploymentLogs"])
    assert all(line["timestamp"].endswith("Z") for line in logs["buildLogs"])
    assert "k-123" not in str(logs)
    metrics = await clocked.data(
        documents.METRICS,
        projectId=project_id,
        environmentId=env_id,
        serviceId=service_id,
        startDate="2027-01-15T07:00:00Z",
        measurements=["CPU_USAGE", "MEMORY_USAGE_GB", "NETWORK_TX_GB"],
    )
    series = metrics["metrics"]
    assert [s["measurement"] for s in series] == ["CPU_USAGE", "MEMORY_USAGE_GB", "NETWORK_TX_GB"]
    assert all(len(s["values"]) > 10 and all(v["value"] >= 0 for v in s["values"]) for s in series)


# ---- errors -------------------------------------------------------------------------------


async def test_not_found_names_the_alias_and_nulls_data_as_railway_does(api: Api) -> None:
    """Railway declares these root fields non-null, so GraphQL's null propagation turns
    `data` into null when one alias is not found; the error's path names that alias."""
    _, env_id, service_id = await api.new_service()
    body = await api.call(
        documents.fleet_observe(3, with_variables=False),
        e0=env_id,
        s0=service_id,
        e1=env_id,
        s1="00000000-0000-4000-8000-000000000000",
        e2=env_id,
        s2=service_id,
    )
    assert body["data"] is None
    assert [(e["path"], e["message"]) for e in body["errors"]] == [(["i1"], "Service not found")]
    for query, message in [
        ('query { d: deployment(id: "nope") { id } }', "Deployment not found"),
        ('query { p: project(id: "nope") { id } }', "Project not found"),
    ]:
        body = await api.call(query)
        assert body["errors"][0]["message"] == message and body["errors"][0]["path"] == [
            query.split()[2][:-1]
        ]
    assert api.emu.requests[-1].error == "not_found"


async def test_validation_errors_are_graphql_errors_in_a_200(api: Api, http: httpx.AsyncClient) -> None:
    body = await api.call("query { projects { edges { node { secretField } } } }")
    assert "data" not in body
    assert "secretField" in body["errors"][0]["message"]
    assert "errors" in await api.call("query {")
    bad = await http.post(
        api.emu.url, content=b"{not json", headers={"Authorization": f"Bearer {TEST_TOKEN}"}
    )
    assert bad.status_code == 400


async def test_unknown_or_missing_token_is_not_authorized(api: Api, http: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-token"}):
        response = await http.post(api.emu.url, json={"query": documents.PROJECTS}, headers=headers)
        assert response.status_code == 200
        assert response.json()["errors"][0]["message"] == "Not Authorized"
    assert api.emu.requests[-1].error == "auth"


async def test_another_workspace_is_not_authorized(api: Api) -> None:
    project_id, _, _ = await api.new_service()
    api.emu.add_token("other-token", "ws-other")
    response = await api.post(documents.PROJECT, token="other-token", id=project_id)
    assert response.json()["errors"][0]["message"] == "Not Authorized"
    mine = await api.post(documents.PROJECTS, token="other-token")
    assert mine.json()["data"]["projects"]["edges"] == []


# ---- rate limits --------------------------------------------------------------------------


async def test_rate_limit_headers_and_429(railway_emulator: RailwayEmulator, http: httpx.AsyncClient) -> None:
    railway_emulator.add_token("small-token", "ws-small", per_hour=3)
    api = Api(http, railway_emulator, token="small-token")
    many = documents.fleet_observe(3, with_variables=False).replace("query FleetObserve", "query Many")
    remaining = []
    for _ in range(3):
        response = await api.post(documents.PROJECTS)
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit"] == "3"
        assert int(response.headers["X-RateLimit-Reset"]) > time.time()
        remaining.append(int(response.headers["X-RateLimit-Remaining"]))
    assert remaining == [2, 1, 0]
    refused = await api.post(many, e0="a", s0="b", e1="a", s1="b", e2="a", s2="b")
    assert refused.status_code == 429
    assert 3000 < int(refused.headers["Retry-After"]) <= 3600
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert railway_emulator.requests[-1].error == "rate_limited"


async def test_many_aliases_count_once(railway_emulator: RailwayEmulator, http: httpx.AsyncClient) -> None:
    railway_emulator.add_token("alias-token", "ws-alias", per_hour=10)
    api = Api(http, railway_emulator, token="alias-token")
    variables = {f"{k}{n}": "x" for n in range(3) for k in "es"}
    response = await api.post(documents.fleet_observe(3, with_variables=False), **variables)
    assert response.headers["X-RateLimit-Remaining"] == "9"
    assert railway_emulator.requests[-1].root_fields == ["serviceInstance"] * 3


async def test_per_second_cap(clocked: Api) -> None:
    clocked.emu.add_token("hobby-token", "ws-hobby", tier="hobby")
    statuses = [(await clocked.post(documents.PROJECTS, token="hobby-token")).status_code for _ in range(11)]
    assert statuses == [200] * 10 + [429]


# ---- faults -------------------------------------------------------------------------------


async def test_http_error_fault_by_count(api: Api) -> None:
    await api.http.post(
        f"{api.emu.base_url}/_admin/faults", json={"kind": "http_error", "status": 502, "count": 2}
    )
    codes = [(await api.post(documents.PROJECTS)).status_code for _ in range(3)]
    assert codes == [502, 502, 200]
    assert [r.error for r in api.emu.requests] == ["http_error", "http_error", None]


async def test_http_error_fault_by_fraction_is_seeded(api: Api) -> None:
    api.emu.add_fault(kind="http_error", status=503, fraction=0.5)
    codes = [(await api.post(documents.PROJECTS)).status_code for _ in range(40)]
    assert 5 < codes.count(503) < 35 and set(codes) == {200, 503}


@pytest.mark.parametrize("mode", ["graphql", "http"])
async def test_throttle_fault(api: Api, mode: str) -> None:
    api.emu.add_fault(kind="throttle", mode=mode, count=1, seconds=7)
    response = await api.post(documents.PROJECTS)
    if mode == "http":
        assert response.status_code == 429 and response.headers["Retry-After"] == "7"
    else:
        assert response.status_code == 200
        assert "You're doing that too quickly" in response.json()["errors"][0]["message"]
    assert (await api.post(documents.PROJECTS)).status_code == 200


async def test_latency_fault(api: Api) -> None:
    api.emu.add_fault(kind="latency", seconds=0.3, count=1)
    started = time.monotonic()
    await api.post(documents.PROJECTS)
    assert time.monotonic() - started >= 0.3


async def test_invalid_token_fault_is_scoped_to_that_token(api: Api) -> None:
    api.emu.add_token("second-token", TEST_WORKSPACE)
    api.emu.add_fault(kind="invalid_token", token=TEST_TOKEN)
    assert (await api.post(documents.PROJECTS)).json()["errors"][0]["message"] == "Not Authorized"
    assert "errors" not in (await api.post(documents.PROJECTS, token="second-token")).json()


async def test_fail_build_fault_with_error_logs(clocked: Api, clock: Clock) -> None:
    clocked.emu.add_fault(kind="fail_build", project="broken")
    _, ok_env, ok_service = await clocked.new_service(project="claw-fine")
    _, env_id, service_id = await clocked.new_service(project="claw-broken")
    clock.advance(100)
    assert (await clocked.latest(ok_env, ok_service) or {})["status"] == "SUCCESS"
    latest = await clocked.latest(env_id, service_id)
    assert latest is not None and latest["status"] == "FAILED"
    logs = await clocked.data(documents.DEPLOYMENT_LOGS, deploymentId=latest["id"], limit=2)
    assert [line["severity"] for line in logs["buildLogs"]] == ["error", "error"]
    assert logs["deploymentLogs"] == []


async def test_crash_and_hang_faults(clocked: Api, clock: Clock) -> None:
    clocked.emu.set_faults(
        {"kind": "crash_after_start", "seconds": 30, "service": "crashy"},
        {"kind": "hang_deploy", "service": "stuck"},
    )
    _, env_a, crashy = await clocked.new_service(name="crashy")
    _, env_b, stuck = await clocked.new_service(name="stuck")
    clock.advance(45)
    assert (await clocked.latest(env_a, crashy) or {})["status"] == "SUCCESS"
    clock.advance(30)
    crashed = await clocked.latest(env_a, crashy)
    assert crashed is not None and crashed["status"] == "CRASHED"
    logs = await clocked.data(documents.DEPLOYMENT_LOGS, deploymentId=crashed["id"], limit=1)
    assert logs["deploymentLogs"][0]["severity"] == "error"
    clock.advance(10_000)
    assert (await clocked.latest(env_b, stuck) or {})["status"] == "BUILDING"


async def test_echo_variables_fault_prints_values_into_build_logs(clocked: Api, clock: Clock) -> None:
    clocked.emu.add_fault(kind="echo_variables")
    _, env_id, service_id = await clocked.new_service()
    clock.advance(25)
    latest = await clocked.latest(env_id, service_id)
    assert latest is not None
    logs = await clocked.data(documents.DEPLOYMENT_LOGS, deploymentId=latest["id"], limit=None)
    assert any(line["message"] == "ENV API_KEY=k-123" for line in logs["buildLogs"])


# ---- admin and domains --------------------------------------------------------------------


async def test_admin_endpoints(api: Api) -> None:
    admin = f"{api.emu.base_url}/_admin"
    project_id, env_id, service_id = await api.new_service()
    state = (await api.http.get(f"{admin}/state")).json()
    assert state["projects"][0]["id"] == project_id
    assert state["projects"][0]["serviceInstances"][0]["variables"] == ["API_KEY"]
    assert TEST_TOKEN not in str(state) and "k-123" not in str(state)
    revealed = (await api.http.get(f"{admin}/state", params={"reveal": "1"})).json()
    assert revealed["projects"][0]["serviceInstances"][0]["variables"] == {"API_KEY": "k-123"}

    requests = (await api.http.get(f"{admin}/requests")).json()["requests"]
    assert [r["root_fields"] for r in requests] == [["projectCreate"], ["serviceCreate"]]
    assert requests[0]["seq"] == 1 and requests[0]["status"] == 200 and requests[0]["operation_name"] is None
    assert TEST_TOKEN not in str(requests) and requests[0]["token"]

    added = await api.http.post(f"{admin}/faults", json={"faults": [{"kind": "latency", "seconds": 0}]})
    assert added.json()["faults"][0]["kind"] == "latency"
    assert (await api.http.post(f"{admin}/faults", json={"kind": "nope"})).status_code == 400
    assert len((await api.http.get(f"{admin}/faults")).json()["faults"]) == 1
    assert (await api.http.delete(f"{admin}/faults")).json() == {"removed": 1}

    token = await api.http.post(
        f"{admin}/tokens", json={"token": "admin-made", "workspace": "ws-x", "per_hour": 5}
    )
    assert token.json()["tier"]["perHour"] == 5 and "admin-made" not in token.text
    response = await api.post(documents.PROJECTS, token="admin-made")
    assert response.headers["X-RateLimit-Limit"] == "5"

    assert (await api.http.post(f"{admin}/reset")).json() == {"ok": True}
    assert api.emu.state.projects == {} and api.emu.requests == []
    assert (await api.http.get(f"{api.emu.base_url}/healthz")).status_code == 200
    assert (service_id, env_id) not in api.emu.state.instances


async def test_domain_health_endpoint(clocked: Api, clock: Clock) -> None:
    _, env_id, service_id = await clocked.new_service()
    created = await clocked.data(
        documents.SERVICE_DOMAIN_CREATE, input={"environmentId": env_id, "serviceId": service_id}
    )
    url = f"{clocked.emu.base_url}/_domains/{created['serviceDomainCreate']['domain']}/healthz"
    assert (await clocked.http.get(url)).status_code == 503
    clock.advance(45)
    assert (await clocked.http.get(url)).status_code == 200
    assert (
        await clocked.http.get(f"{clocked.emu.base_url}/_domains/nope.up.railway.app/")
    ).status_code == 404


async def test_cli_serves_until_sigterm(http: httpx.AsyncClient) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "claw_operator",
        "railway-emulator",
        "--port",
        "0",
        "--token",
        "cli-token:ws-cli:free",
        "--phase-seconds",
        "0.05",
        "--fault",
        "fail_build:service=nothing",
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=30)).decode()
        url = line.strip().rsplit(" ", 1)[-1]
        response = await http.post(
            url, json={"query": documents.PROJECTS}, headers={"Authorization": "Bearer cli-token"}
        )
        assert response.status_code == 200 and response.headers["X-RateLimit-Limit"] == "100"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
