"""Adoption through the project index, against the Railway emulator: one listing for many
lookups, the operator's own creates and deletes kept, a crash between create and record
still adopted, and re-listing only on a miss that matters."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from claw_emulators.railway.server import RailwayEmulator
from claw_operator.railway.budget import RateBudget
from claw_operator.railway.client import RailwayClient
from claw_operator.rules.naming import project_marker, project_name
from tests.fixtures.operator import Crash, Harness, instance
from tests.fixtures.railway import TEST_TOKEN, TEST_WORKSPACE


def running(status: dict[str, Any]) -> bool:
    return status.get("phase") == "Running"


def client(emu: RailwayEmulator) -> RailwayClient:
    return RailwayClient(url=emu.url, token=TEST_TOKEN, budget=RateBudget(rps=None, rph=None))


def projects_listings(emu: RailwayEmulator) -> int:
    return sum(1 for r in emu.requests if r.operation_name == "Projects")


async def test_many_lookups_one_listing_and_own_creates_are_known(railway_emulator: RailwayEmulator) -> None:
    emu = railway_emulator
    names = [
        (project_name("claw", "ns", f"i{n}"), project_marker("default", "ns", f"i{n}")) for n in range(30)
    ]
    async with client(emu) as rail:
        found = await asyncio.gather(*(rail.find_project(n, m, TEST_WORKSPACE) for n, m in names))
        assert found == [None] * 30
        created = [
            await rail.create_project(name=n, description=m, workspace_id=TEST_WORKSPACE)
            for n, m in names[:10]
        ]
        again = [await rail.find_project(n, m, TEST_WORKSPACE) for n, m in names[:10]]
        assert [p.id for p in again if p] == [p.id for p in created]
        await rail.delete_project(created[0].id)
        assert await rail.find_project(*names[0], TEST_WORKSPACE) is None
    assert projects_listings(emu) == 1, "listed once, however many lookups"


async def test_a_new_process_adopts_what_the_old_one_created_without_recording(
    railway_emulator: RailwayEmulator,
) -> None:
    emu = railway_emulator
    name, marker = project_name("claw", "ns", "bot"), project_marker("default", "ns", "bot")
    async with client(emu) as before_crash:
        assert await before_crash.find_project(name, marker, TEST_WORKSPACE) is None
        made = await before_crash.create_project(name=name, description=marker, workspace_id=TEST_WORKSPACE)
    async with client(emu) as after_restart:
        adopted = await after_restart.find_project(name, marker, TEST_WORKSPACE)
    assert adopted is not None and adopted.id == made.id


async def test_a_miss_relists_only_when_it_matters(railway_emulator: RailwayEmulator) -> None:
    emu = railway_emulator
    name, marker = project_name("claw", "ns", "bot"), project_marker("default", "ns", "bot")
    async with client(emu) as ours, client(emu) as other_replica:
        assert await ours.find_project(name, marker, TEST_WORKSPACE) is None
        made = await other_replica.create_project(name=name, description=marker, workspace_id=TEST_WORKSPACE)
        listings = projects_listings(emu)
        assert await ours.find_project(name, marker, TEST_WORKSPACE) is None
        assert projects_listings(emu) == listings, "a plain miss trusts the index"
        ours.project_index.invalidate()  # a shard was taken over from the other replica
        adopted = await ours.find_project(name, marker, TEST_WORKSPACE)
        assert adopted is not None and adopted.id == made.id
        assert projects_listings(emu) == listings + 1
        ours.project_index.create_uncertain("claw-ns-other", TEST_WORKSPACE)
        await ours.find_project("claw-ns-other", marker, TEST_WORKSPACE)
        assert projects_listings(emu) == listings + 2, "a create that may have happened is looked for"


async def test_crash_between_create_and_record_adopts_through_the_index(harness: Harness) -> None:
    h = harness
    body = h.apply(instance("bot"))
    h.crash_after_persists = 0  # the project exists on Railway, status never recorded it
    with contextlib.suppress(Crash):
        await h.reconcile("bot")
    h.crash_after_persists = None
    body.pop("status", None)
    await h.until("bot", running)
    assert len(h.projects()) == 1
    assert sum(1 for r in h.emu.requests if r.operation_name == "ProjectCreate") == 1
