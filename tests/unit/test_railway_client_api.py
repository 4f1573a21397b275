"""Each client method: the document and variables it sends, and the typed result."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from claw_operator.railway.accounting import Accounting, Outcome
from claw_operator.railway.errors import RailwayNotFoundError
from tests.unit.railway_fakes import FakeRailway, gql_error, make_client, ok


def project_node(
    pid: str, name: str = "claw-a", description: str = "", created: str | None = None
) -> dict[str, Any]:
    return {
        "id": pid,
        "name": name,
        "description": description,
        "workspaceId": "ws",
        "createdAt": created,
        "environments": {"edges": [{"node": {"id": f"env-{pid}", "name": "production"}}]},
        "services": {"edges": [{"node": {"id": f"svc-{pid}", "name": "openclaw"}}]},
    }


def page(nodes: list[dict[str, Any]], cursor: str | None, more: bool) -> httpx.Response:
    return ok(
        {
            "projects": {
                "edges": [{"node": n} for n in nodes],
                "pageInfo": {"hasNextPage": more, "endCursor": cursor},
            }
        }
    )


async def test_list_projects_follows_pages() -> None:
    fake = FakeRailway(
        script=[page([project_node("p1")], "c1", True), page([project_node("p2")], "c2", False)]
    )
    async with make_client(fake) as client:
        projects = await client.list_projects("ws")
    assert [p.id for p in projects] == ["p1", "p2"]
    assert projects[0].environment("production") is not None
    assert projects[0].environment() == projects[0].environments[0]
    assert [s.name for s in projects[0].services] == ["openclaw"]
    assert [s.variables for s in fake.sent] == [
        {"workspaceId": "ws", "first": 100, "after": None},
        {"workspaceId": "ws", "first": 100, "after": "c1"},
    ]


async def test_list_projects_stops_on_a_repeated_cursor() -> None:
    fake = FakeRailway(default=page([project_node("p1")], "same", True))
    async with make_client(fake) as client:
        await client.list_projects(None)
    assert len(fake.sent) == 2


async def test_find_project_oldest_match_by_name_and_marker() -> None:
    marker = "claw-operator default/ns/a"
    nodes = [
        project_node("p9", description=f"x {marker} y", created="2026-03-01T00:00:00Z"),
        project_node("p5", description=marker, created="2026-01-01T00:00:00.000Z"),
        project_node("p4", description=marker, created="2026-01-01T00:00:00Z"),  # same time, smaller id
        project_node("p1", description="someone else's", created="2025-01-01T00:00:00Z"),
        project_node("p0", name="claw-b", description=marker, created="2024-01-01T00:00:00Z"),
        project_node("p2", description=marker, created=None),
    ]
    by_id = {node["id"]: node for node in nodes}

    def answer(body: dict[str, Any]) -> httpx.Response:
        # The index lists once; a hit is read again by id for its current services.
        if body["operationName"] == "Project":
            return ok({"project": by_id.get(body["variables"]["id"])})
        return page(nodes, None, False)

    async with make_client(FakeRailway(default=answer)) as client:
        found = await client.find_project("claw-a", marker, None)
        assert found is not None and found.id == "p4"
        assert await client.find_project("claw-z", marker, None) is None


async def test_get_project_not_found() -> None:
    async with make_client(FakeRailway(script=[gql_error("Project not found", path=["project"])])) as client:
        with pytest.raises(RailwayNotFoundError):
            await client.get_project("gone")


async def test_create_project() -> None:
    fake = FakeRailway(
        script=[ok({"projectCreate": project_node("p1")}), ok({"projectCreate": project_node("p2")})]
    )
    async with make_client(fake) as client:
        project = await client.create_project(name="claw-a", description="marker", workspace_id="ws")
        await client.create_project(name="claw-b", description="marker", workspace_id=None)
    assert project.id == "p1" and project.environment() is not None
    assert fake.sent[0].variables == {
        "input": {
            "name": "claw-a",
            "description": "marker",
            "workspaceId": "ws",
            "defaultEnvironmentName": "production",
        }
    }
    assert "workspaceId" not in fake.sent[1].variables["input"]


async def test_delete_project_reports_already_gone() -> None:
    fake = FakeRailway(script=[ok({"projectDelete": True}), gql_error("Project not found")])
    async with make_client(fake) as client:
        assert await client.delete_project("p1") is True
        assert await client.delete_project("p1") is False


async def test_create_service_has_no_source() -> None:
    fake = FakeRailway(script=[ok({"serviceCreate": {"id": "s1", "name": "openclaw", "projectId": "p1"}})])
    async with make_client(fake) as client:
        service = await client.create_service(
            project_id="p1", environment_id="e1", name="openclaw", variables={"A": "1"}, branch="main"
        )
    assert (service.id, service.projectId) == ("s1", "p1")
    assert fake.sent[0].variables == {
        "input": {
            "projectId": "p1",
            "environmentId": "e1",
            "name": "openclaw",
            "variables": {"A": "1"},
            "branch": "main",
        }
    }


async def test_get_template_service_one_request() -> None:
    instance = {
        "serviceId": "s1",
        "serviceName": "openclaw",
        "source": {"image": "ghcr.io/openclaw/openclaw:2", "repo": None},
        "startCommand": "node server.js",
        "healthcheckPath": "/healthz",
        "healthcheckTimeout": 100,
        "numReplicas": 1,
        "region": "us-west2",
        "restartPolicyType": "ON_FAILURE",
        "restartPolicyMaxRetries": 10,
    }
    fake = FakeRailway(script=[ok({"serviceInstance": instance, "variables": {"REF": "${{shared.KEY}}"}})])
    async with make_client(fake) as client:
        template = await client.get_template_service(project_id="p", environment_id="e", service_id="s1")
    assert len(fake.sent) == 1 and fake.sent[0].operation == "TemplateService"
    assert template.source is not None and template.source.image == "ghcr.io/openclaw/openclaw:2"
    assert template.variables == {"REF": "${{shared.KEY}}"}
    assert template.restartPolicyMaxRetries == 10


async def test_configure_service_everything_in_one_request() -> None:
    answer = ok(
        {
            "settings": True,
            "limits": True,
            "domain": {"id": "d", "domain": "a.up.railway.app"},
            "connect": {"id": "s"},
        }
    )
    fake = FakeRailway(script=[answer])
    async with make_client(fake) as client:
        result = await client.configure_service(
            environment_id="e",
            service_id="s",
            settings={"healthcheckPath": "/healthz", "numReplicas": 1},
            limits={"vCPUs": 2.0, "memoryGB": 4.0},
            create_domain=True,
            source={"image": "ghcr.io/openclaw/openclaw:2"},
        )
    assert result.domain == "a.up.railway.app"
    (sent,) = fake.sent
    assert sent.operation == "ServiceConfigure"
    assert sent.variables == {
        "environmentId": "e",
        "serviceId": "s",
        "settings": {"healthcheckPath": "/healthz", "numReplicas": 1},
        "limits": {"vCPUs": 2.0, "memoryGB": 4.0, "environmentId": "e", "serviceId": "s"},
        "source": {"image": "ghcr.io/openclaw/openclaw:2"},
    }
    # The source (which deploys) is connected last.
    assert sent.query.index("connect:") > sent.query.index("domain:") > sent.query.index("settings:")


async def test_configure_service_partial_and_empty() -> None:
    fake = FakeRailway(script=[ok({"connect": {"id": "s"}})])
    async with make_client(fake) as client:
        assert (
            await client.configure_service(
                environment_id="e",
                service_id="s",
                settings=None,
                limits=None,
                create_domain=False,
                source=None,
            )
        ).domain is None
        assert fake.sent == []
        result = await client.configure_service(
            environment_id="e",
            service_id="s",
            settings={},
            limits=None,
            create_domain=False,
            source={"repo": "openclaw/openclaw", "branch": "main"},
        )
    assert result.domain is None
    assert fake.sent[0].variables == {
        "environmentId": "e",
        "serviceId": "s",
        "source": {"repo": "openclaw/openclaw", "branch": "main"},
    }
    assert "settings:" not in fake.sent[0].query


async def test_settings_limits_connect() -> None:
    fake = FakeRailway(default=ok({"ok": True}))
    async with make_client(fake) as client:
        await client.update_service_instance(environment_id="e", service_id="s", settings={"numReplicas": 2})
        await client.update_limits(environment_id="e", service_id="s", vcpus=None, memory_gb=8.0)
        await client.update_limits(environment_id="e", service_id="s", vcpus=None, memory_gb=None)
        await client.connect_source(service_id="s", image="img:1")
    assert fake.operations == ["ServiceInstanceUpdate", "ServiceInstanceLimitsUpdate", "ServiceConnect"]
    assert fake.sent[0].variables == {"environmentId": "e", "serviceId": "s", "input": {"numReplicas": 2}}
    assert fake.sent[1].variables == {"input": {"environmentId": "e", "serviceId": "s", "memoryGB": 8.0}}
    assert fake.sent[2].variables == {"id": "s", "input": {"image": "img:1"}}


async def test_variables_and_domain() -> None:
    fake = FakeRailway(
        script=[
            ok({"variables": {"A": "1", "B": "two"}}),
            ok({"variableCollectionUpsert": True}),
            ok({"serviceDomainCreate": {"id": "d", "domain": "x.up.railway.app"}}),
        ]
    )
    async with make_client(fake) as client:
        assert await client.get_variables(project_id="p", environment_id="e", service_id="s") == {
            "A": "1",
            "B": "two",
        }
        await client.upsert_variables(
            project_id="p",
            environment_id="e",
            service_id="s",
            variables={"A": "2"},
            replace=True,
            skip_deploys=True,
        )
        assert await client.create_domain(environment_id="e", service_id="s") == "x.up.railway.app"
    assert fake.sent[1].variables == {
        "input": {
            "projectId": "p",
            "environmentId": "e",
            "serviceId": "s",
            "variables": {"A": "2"},
            "replace": True,
            "skipDeploys": True,
        }
    }
    assert fake.sent[2].variables == {"input": {"environmentId": "e", "serviceId": "s"}}


async def test_deployments() -> None:
    deployment = {"id": "d2", "status": "QUEUED", "createdAt": "2026-01-01T00:00:00Z"}
    log = {"message": "hello", "severity": "info", "timestamp": "2026-01-01T00:00:00Z"}
    fake = FakeRailway(
        script=[
            ok({"serviceInstanceDeployV2": "d1"}),
            ok({"deploymentRedeploy": deployment}),
            ok({"deploymentRestart": True}),
            ok({"deploymentStop": True}),
            ok({"deployment": {**deployment, "status": "SUCCESS"}}),
            ok(
                {
                    "deployments": {
                        "edges": [{"node": deployment}, {"node": {"id": "d1", "status": "REMOVED"}}]
                    }
                }
            ),
            ok({"buildLogs": [log], "deploymentLogs": [log, log]}),
        ]
    )
    async with make_client(fake) as client:
        assert await client.deploy(environment_id="e", service_id="s") == "d1"
        assert (await client.redeploy("d1")).id == "d2"
        await client.restart("d2")
        await client.stop("d2")
        assert (await client.get_deployment("d2")).status == "SUCCESS"
        listed = await client.list_deployments(project_id="p", environment_id="e", service_id="s", first=5)
        build, deploy = await client.deployment_logs("d2", limit=20)
    assert [d.id for d in listed] == ["d2", "d1"]
    assert len(build) == 1 and len(deploy) == 2 and build[0].message == "hello"
    assert fake.sent[5].variables == {
        "input": {"projectId": "p", "environmentId": "e", "serviceId": "s"},
        "first": 5,
    }
    assert fake.sent[6].variables == {"deploymentId": "d2", "limit": 20}


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05Z"),
        (datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))), "2026-01-02T03:04:05Z"),
        (datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05Z"),
    ],
    ids=["utc", "offset", "naive"],
)
async def test_metrics(start: datetime, expected: str) -> None:
    series = [{"measurement": "CPU_USAGE", "values": [{"ts": 1, "value": 0.5}]}]
    fake = FakeRailway(script=[ok({"metrics": series})])
    async with make_client(fake) as client:
        result = await client.metrics(
            project_id="p", environment_id="e", service_id="s", start=start, measurements=["CPU_USAGE"]
        )
    assert result[0].values[0].value == 0.5
    assert fake.sent[0].variables["startDate"] == expected
    assert fake.sent[0].variables["measurements"] == ["CPU_USAGE"]


async def test_accounting_snapshot() -> None:
    fake = FakeRailway(
        script=[
            httpx.Response(503),
            ok({"projectDelete": True}),
            gql_error("Project not found"),
            gql_error("Not Authorized"),
        ]
    )
    accounting = Accounting()
    async with make_client(fake, accounting=accounting) as client:
        assert client.accounting is accounting
        await client.delete_project("p1")
        await client.delete_project("p2")
        with pytest.raises(Exception):  # noqa: B017 - the kind is covered elsewhere
            await client.get_project("p3")
    snapshot = accounting.snapshot()
    assert snapshot["total"] == 4
    assert snapshot["retries"] == 1
    assert snapshot["by_outcome"] == {
        "ok": 1,
        "retryable": 1,
        "rate_limited": 0,
        "auth": 1,
        "not_found": 1,
        "invalid": 0,
    }
    assert snapshot["by_operation"]["ProjectDelete"] == {"ok": 1, "retryable": 1, "not_found": 1}
    assert snapshot["retries_by_operation"] == {"ProjectDelete": 1}
    assert accounting.count(outcome=Outcome.AUTH) == 1
    accounting.reset()
    assert accounting.total == 0


def usage_answer(services: int) -> dict[str, Any]:
    def series(measurement: str, n: int, samples: int) -> dict[str, Any]:
        values = [{"ts": 60 * i, "value": 0.25} for i in range(samples)]
        return {"measurement": measurement, "tags": {"serviceId": f"s{n}"}, "values": values}

    return {
        "usage": [series(m, n, 10) for n in range(services) for m in ("CPU_USAGE", "MEMORY_USAGE_GB")],
        "egress": [series("NETWORK_TX_GB", n, 30) for n in range(services)],
        "estimated": [
            {"projectId": f"p{n}", "measurement": "CPU_USAGE", "estimatedValue": 1.0} for n in range(services)
        ],
    }


async def test_workspace_usage_of_a_large_workspace_lets_the_event_loop_run() -> None:
    import asyncio

    from claw_operator.railway.client import USAGE_SLICE

    services = 4 * USAGE_SLICE
    fake = FakeRailway(script=[ok(usage_answer(services))])
    turns = 0

    async def other_work() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    when = datetime(2026, 1, 2, tzinfo=UTC)
    async with make_client(fake) as client:
        ticker = asyncio.create_task(other_work())
        await asyncio.sleep(0)
        before = turns
        answer = await client.workspace_usage(
            "ws", since=when, sample_rate_seconds=60, egress_since=when, egress_sample_rate_seconds=86400
        )
        during = turns - before
        ticker.cancel()
    assert len(answer.usage) == 2 * services and len(answer.egress) == services
    assert answer.usage[-1].tags is not None and answer.usage[-1].tags.serviceId == f"s{services - 1}"
    assert len(answer.estimated) == services and answer.egress[0].values[29].value == 0.25
    # Parsed a slice at a time: other tasks ran between slices (once per slice at least).
    assert during >= (3 * services) // USAGE_SLICE


async def test_workspace_usage_of_the_wrong_shape_names_the_part() -> None:
    from claw_operator.railway.errors import RailwayInvalidError

    broken = usage_answer(3)
    broken["egress"][1]["values"] = [{"ts": "yesterday", "value": "canary-value"}]
    fake = FakeRailway(script=[ok(broken)])
    when = datetime(2026, 1, 2, tzinfo=UTC)
    async with make_client(fake) as client:
        with pytest.raises(RailwayInvalidError) as caught:
            await client.workspace_usage(
                "ws", since=when, sample_rate_seconds=60, egress_since=when, egress_sample_rate_seconds=86400
            )
    assert "egress" in str(caught.value) and "canary" not in str(caught.value)
