"""Sharding with Leases: one holder per shard, standby takeover once the Lease expires,
a replica that cannot renew stops acting before its Lease can pass, and live replicas
divide the shards among themselves."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from claw_operator.k8s.kube import Conflict
from claw_operator.k8s.leases import REPLICA_LABEL, ShardGuard, shard_of


class Clock:
    def __init__(self) -> None:
        self.seconds = 1000.0

    def monotonic(self) -> float:
        return self.seconds

    def wall(self) -> datetime:
        return datetime(2026, 11, 30, tzinfo=UTC) + timedelta(seconds=self.seconds)


class FakeLeases:
    """The Lease API as the API server answers it: creates conflict on an existing name,
    updates conflict on a stale resourceVersion."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.rv = 0
        self.down = False  # the API server unreachable for this replica

    def _check(self) -> None:
        if self.down:
            raise Conflict("unreachable")

    async def get(self, path: str, resource: str) -> dict[str, Any] | None:
        self._check()
        if "?labelSelector=" in path:
            label = path.split("?labelSelector=")[1].split("%3D")[0].replace("%2F", "/")
            items = [o for o in self.objects.values() if label in (o["metadata"].get("labels") or {})]
            return {"items": copy.deepcopy(items)}
        found = self.objects.get(path.rsplit("/", 1)[1])
        return copy.deepcopy(found) if found else None

    async def create(self, path: str, body: dict[str, Any], resource: str) -> dict[str, Any]:
        self._check()
        name = body["metadata"]["name"]
        if name in self.objects:
            raise Conflict("exists")
        self.rv += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[name] = stored
        return copy.deepcopy(stored)

    async def replace(self, path: str, body: dict[str, Any], resource: str) -> dict[str, Any]:
        self._check()
        name = path.rsplit("/", 1)[1]
        if self.objects[name]["metadata"]["resourceVersion"] != body["metadata"]["resourceVersion"]:
            raise Conflict("stale")
        self.rv += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[name] = stored
        return copy.deepcopy(stored)


class Api:
    """One replica's view of the shared API server (it can lose its connection alone)."""

    def __init__(self, server: FakeLeases) -> None:
        self.server = server
        self.down = False

    async def get(self, path: str, resource: str) -> dict[str, Any] | None:
        self._check()
        return await self.server.get(path, resource)

    async def create(self, path: str, body: dict[str, Any], resource: str) -> dict[str, Any]:
        self._check()
        return await self.server.create(path, body, resource)

    async def replace(self, path: str, body: dict[str, Any], resource: str) -> dict[str, Any]:
        self._check()
        return await self.server.replace(path, body, resource)

    def _check(self) -> None:
        if self.down:
            raise Conflict("connection refused")


def guard(
    server: FakeLeases, clock: Clock, identity: str, **options: Any
) -> tuple[ShardGuard, Api, list[str]]:
    api = Api(server)
    log: list[str] = []
    g = ShardGuard(
        kube=api,  # type: ignore[arg-type]
        namespace="claw-system",
        identity=identity,
        lease_seconds=15.0,
        on_acquired=lambda shard: log.append(f"+{shard}"),
        on_lost=lambda shard: log.append(f"-{shard}"),
        clock=clock.monotonic,
        wall=clock.wall,
        **options,
    )
    return g, api, log


KEYS = [f"ns/bot-{n}" for n in range(200)]


async def test_each_object_has_exactly_one_acting_replica() -> None:
    server, clock = FakeLeases(), Clock()
    a, _, _ = guard(server, clock, "a", shards=2, shard_id=0)
    b, _, _ = guard(server, clock, "b", shards=2, shard_id=1)
    standby, _, _ = guard(server, clock, "c", shards=2, shard_id=0)
    for g in (a, b, standby):
        await g.tick()
    for key in KEYS:
        assert [g.owns(key) for g in (a, b, standby)].count(True) == 1
        assert (a if shard_of(key, 2) == 0 else b).owns(key)
    assert {shard_of(k, 2) for k in KEYS} == {0, 1}


async def test_a_standby_takes_over_after_the_lease_expires_never_before() -> None:
    server, clock = FakeLeases(), Clock()
    holder, holder_api, holder_log = guard(server, clock, "holder", shards=2, shard_id=0)
    standby, _, standby_log = guard(server, clock, "standby", shards=2, shard_id=0)
    await holder.tick()
    await standby.tick()
    assert holder_log == ["+0"] and standby_log == []
    key = next(k for k in KEYS if shard_of(k, 2) == 0)

    holder_api.down = True  # the holder dies, or loses the API server
    for step in range(1, 31):
        clock.seconds += 1
        await standby.tick()
        # Never two replicas acting at once: the holder stops before the standby starts.
        assert not (holder.owns(key) and standby.owns(key)), f"both act at +{step}s"
    assert standby.owns(key) and standby_log == ["+0"]
    assert not holder.owns(key), "a holder that cannot renew stops acting on its own"
    lease = server.objects["claw-operator-shard-0"]["spec"]
    assert lease["holderIdentity"] == "standby" and lease["leaseTransitions"] == 1


async def test_renewing_keeps_the_shard_and_racing_replicas_cannot_both_win() -> None:
    server, clock = FakeLeases(), Clock()
    a, _, a_log = guard(server, clock, "a", shards=1, shard_id=0)
    b, _, b_log = guard(server, clock, "b", shards=1, shard_id=0)
    await a.tick()
    for _ in range(10):
        clock.seconds += 5
        await a.tick()
        await b.tick()
    assert a.owns("ns/x") and not b.owns("ns/x")
    assert a_log == ["+0"] and b_log == []


async def test_replicas_without_a_shard_id_divide_the_shards_and_take_over_a_dead_ones() -> None:
    server, clock = FakeLeases(), Clock()
    one, _, _ = guard(server, clock, "one", shards=4)
    two, two_api, _ = guard(server, clock, "two", shards=4)
    await one.tick()
    await two.tick()
    await one.tick()  # sees two, gives up two's share
    await two.tick()  # takes its share, now released
    assert sorted(one.held) == [0, 2] and sorted(two.held) == [1, 3]
    assert set(server.objects) >= {"claw-operator-replica-one", "claw-operator-replica-two"}
    assert all(
        o["metadata"]["labels"] == {REPLICA_LABEL: "true"}
        for n, o in server.objects.items()
        if "replica" in n
    )
    for key in KEYS:
        assert [one.owns(key), two.owns(key)].count(True) == 1

    two_api.down = True
    for _ in range(40):
        clock.seconds += 1
        await one.tick()
    assert sorted(one.held) == [0, 1, 2, 3]
    assert all(one.owns(key) for key in KEYS) and not any(two.owns(key) for key in KEYS)


def test_shard_settings_are_checked() -> None:
    server, clock = FakeLeases(), Clock()
    with pytest.raises(ValueError, match="CLAW_SHARD_ID"):
        guard(server, clock, "x", shards=2, shard_id=2)
    with pytest.raises(ValueError, match="CLAW_SHARDS"):
        guard(server, clock, "x", shards=0)
