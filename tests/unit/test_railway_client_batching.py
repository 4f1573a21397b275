"""Fleet reads: many service instances per request, and per-alias failures."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from claw_operator.railway.errors import RailwayAuthError, RailwayInvalidError
from claw_operator.railway.types import ServiceInstanceRef
from tests.unit.railway_fakes import FakeRailway, gql_error, make_client

NOT_FOUND = "ServiceInstance not found"


def refs(count: int) -> list[ServiceInstanceRef]:
    return [
        ServiceInstanceRef(projectId=f"p{n}", environmentId=f"e{n}", serviceId=f"s{n}") for n in range(count)
    ]


def instance(service_id: str) -> dict[str, Any]:
    return {
        "serviceId": service_id,
        "latestDeployment": {
            "id": f"d-{service_id}",
            "status": "SUCCESS",
            "createdAt": "2026-01-01T00:00:00Z",
        },
        "domains": {"serviceDomains": [{"domain": f"{service_id}.up.railway.app"}]},
        "source": {"image": "ghcr.io/openclaw/openclaw:1", "repo": None},
        "healthcheckPath": "/healthz",
        "numReplicas": 1,
        "region": "us-west2",
    }


def fleet_server(missing: frozenset[str] = frozenset(), *, null_propagation: bool = False) -> Any:
    """Answers FleetObserve like Railway: each alias from its own variables; a missing
    service is a "not found" error on its alias. With null propagation (what GraphQL
    does for non-null root fields), one error nulls the whole `data`."""

    def respond(body: dict[str, Any]) -> httpx.Response:
        variables = body["variables"]
        data: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        for alias in re.findall(r"\b([iv]\d+):", body["query"]):
            n = alias[1:]
            service_id = variables[f"s{n}"]
            if service_id in missing:
                data[alias] = None
                errors.append({"message": NOT_FOUND, "path": [alias]})
            elif alias[0] == "i":
                data[alias] = instance(service_id)
            else:
                data[alias] = {"SERVICE": service_id, "PROJECT": variables[f"p{n}"]}
        payload: dict[str, Any] = {"data": None if (errors and null_propagation) else data}
        if errors:
            payload["errors"] = errors
        return httpx.Response(200, json=payload)

    return respond


async def test_chunks_of_batch_size_one_request_each() -> None:
    fake = FakeRailway(default=fleet_server())
    wanted = refs(120)
    async with make_client(fake, batch_size=50) as client:
        states = await client.observe_fleet(wanted, with_variables=False)
    assert fake.operations == ["FleetObserve"] * 3
    sizes = [len(re.findall(r"\bi\d+:", s.query)) for s in fake.sent]
    assert sizes == [50, 50, 20]
    assert "variables(" not in fake.sent[0].query
    # Slot n of a request reads the n-th ref of its chunk.
    assert fake.sent[1].variables["e0"] == "e50" and fake.sent[1].variables["s49"] == "s99"
    assert set(states) == set(wanted)
    state = states[wanted[7]]
    assert state.found and state.variables is None
    assert state.latestDeployment is not None and state.latestDeployment.status == "SUCCESS"
    assert state.domains == ["s7.up.railway.app"]
    assert state.source is not None and state.source.image == "ghcr.io/openclaw/openclaw:1"
    assert (state.healthcheckPath, state.numReplicas, state.region) == ("/healthz", 1, "us-west2")
    assert client.accounting.count("FleetObserve") == 3


async def test_default_batch_is_fifty() -> None:
    fake = FakeRailway(default=fleet_server())
    async with make_client(fake) as client:
        await client.observe_fleet(refs(51), with_variables=True)
    assert len(fake.sent) == 2


async def test_with_variables_reads_both_aliases() -> None:
    fake = FakeRailway(default=fleet_server())
    wanted = refs(3)
    async with make_client(fake) as client:
        states = await client.observe_fleet(wanted, with_variables=True)
    (sent,) = fake.sent
    assert set(sent.variables) == {f"{k}{n}" for k in "pes" for n in range(3)}
    assert len(re.findall(r"\bv\d+: variables\(", sent.query)) == 3
    assert states[wanted[2]].variables == {"SERVICE": "s2", "PROJECT": "p2"}


async def test_duplicates_and_empty() -> None:
    fake = FakeRailway(default=fleet_server())
    async with make_client(fake) as client:
        assert await client.observe_fleet([], with_variables=False) == {}
        assert fake.sent == []
        states = await client.observe_fleet(refs(2) + refs(2), with_variables=False)
    assert len(states) == 2
    assert len(re.findall(r"\bi\d+:", fake.sent[0].query)) == 2


@pytest.mark.parametrize("null_propagation", [False, True], ids=["partial-data", "null-data"])
async def test_not_found_alias_is_found_false(null_propagation: bool) -> None:
    fake = FakeRailway(default=fleet_server(frozenset({"s3", "s5"}), null_propagation=null_propagation))
    wanted = refs(8)
    async with make_client(fake) as client:
        states = await client.observe_fleet(wanted, with_variables=True)
    assert {ref.serviceId for ref, state in states.items() if not state.found} == {"s3", "s5"}
    assert all(states[ref].found for ref in wanted if ref.serviceId not in {"s3", "s5"})
    assert states[wanted[4]].variables == {"SERVICE": "s4", "PROJECT": "p4"}
    # With null propagation the rest is asked for once more; otherwise one request does.
    assert len(fake.sent) == (2 if null_propagation else 1)
    if null_propagation:
        assert len(re.findall(r"\bi\d+:", fake.sent[1].query)) == 6


async def test_all_missing() -> None:
    fake = FakeRailway(default=fleet_server(frozenset({"s0", "s1"}), null_propagation=True))
    async with make_client(fake) as client:
        states = await client.observe_fleet(refs(2), with_variables=False)
    assert [state.found for state in states.values()] == [False, False]
    assert len(fake.sent) == 1


async def test_other_alias_error_is_raised() -> None:
    answer = gql_error("Problem processing request", path=["i1"], data={"i0": instance("s0"), "i1": None})
    async with make_client(FakeRailway(script=[answer])) as client:
        with pytest.raises(RailwayInvalidError):
            await client.observe_fleet(refs(2), with_variables=False)


async def test_auth_error_on_an_alias_fails_the_whole_read() -> None:
    answer = gql_error("Not Authorized", path=["i0"], data={"i0": None, "i1": instance("s1")})
    async with make_client(FakeRailway(script=[answer])) as client:
        with pytest.raises(RailwayAuthError):
            await client.observe_fleet(refs(2), with_variables=False)


async def test_throttled_alias_retries_the_whole_chunk() -> None:
    throttled = gql_error("You're doing that too quickly", path=["i0"], data=None)
    fake = FakeRailway(script=[throttled], default=fleet_server())
    async with make_client(fake) as client:
        states = await client.observe_fleet(refs(2), with_variables=False)
    assert len(fake.sent) == 2 and all(state.found for state in states.values())


async def test_silently_missing_data_is_invalid() -> None:
    answer = httpx.Response(200, json={"data": {"i0": instance("s0")}})
    async with make_client(FakeRailway(script=[answer])) as client:
        with pytest.raises(RailwayInvalidError):
            await client.observe_fleet(refs(2), with_variables=False)
