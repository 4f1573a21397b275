"""Two replicas splitting the fleet with Leases, through Kopf against both emulators:
every object is acted on by exactly one replica, no project is made twice, and when one
replica goes its objects are served by the other."""

from __future__ import annotations

import contextlib
from typing import Any

import kopf

from claw_emulators.kubernetes import KubernetesServer
from claw_emulators.railway.server import RailwayEmulator
from claw_operator.k8s.engine import Engine
from claw_operator.k8s.handlers import build_registry
from claw_operator.k8s.leases import shard_of
from tests.fixtures.cluster import claw_manifest, phase_of, plan_manifest
from tests.fixtures.kubernetes import eventually, run_kopf
from tests.fixtures.operator import operator_settings


@contextlib.asynccontextmanager
async def replica(k8s: KubernetesServer, emu: RailwayEmulator, identity: str) -> Any:
    settings = operator_settings(emu, shards=2, lease_seconds=3.0, operator_namespace="claw-system")
    memo = kopf.Memo()
    registry = build_registry(lambda: Engine(settings=settings, identity=identity), plan_status_interval=0.5)
    async with run_kopf(k8s, registry, memo=memo):
        await eventually(lambda: getattr(memo, "claw", None) is not None and memo.claw.started.is_set())
        yield memo.claw


async def test_two_replicas_split_the_fleet_and_one_takes_over_when_the_other_goes(
    k8s: KubernetesServer, railway_emulator: RailwayEmulator
) -> None:
    emu = railway_emulator
    k8s.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "claw-system"}})
    k8s.apply(plan_manifest(limits={"maxInstances": 50, "maxChannels": 4, "bandwidthGB": 50}))
    names = [f"bot-{n}" for n in range(8)]
    assert {shard_of(f"tenant-a/{n}", 2) for n in names} == {0, 1}
    async with replica(k8s, emu, "replica-a") as a, replica(k8s, emu, "replica-b") as b:
        await eventually(lambda: len(a.shards.held) == 1 and len(b.shards.held) == 1, within=20)
        for name in names:
            k8s.apply(claw_manifest(name))
        await eventually(lambda: all(phase_of(k8s, n) == "Running" for n in names), within=60)
        by_a, by_b = set(a.passes), set(b.passes)
        assert by_a.isdisjoint(by_b), "an object was acted on by both replicas"
        assert by_a | by_b == {f"tenant-a/{n}" for n in names}

        # replica-b dies: it stops renewing (its Lease is not released) and stops acting.
        assert b.shards is not None
        await b.shards.aclose(release=False)
        await b.queue.stop()
        # Its shard is served again once the Lease expires (3 s here) and is taken over.
        await eventually(lambda: sorted(a.shards.held) == [0, 1], within=3.0 + 15)
        was_b = {shard_of(key, 2) for key in by_b}
        late = next(f"late-{n}" for n in range(100) if shard_of(f"tenant-a/late-{n}", 2) in was_b)
        k8s.apply(claw_manifest(late))
        await eventually(lambda: phase_of(k8s, late) == "Running", within=30)
        assert f"tenant-a/{late}" in a.passes and f"tenant-a/{late}" not in b.passes
    assert len(emu.state.projects) == len(names) + 1, "no project was made twice"
