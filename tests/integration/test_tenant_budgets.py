"""Each tenant token spends its own budget, sized by its Secret's `tier` and tightened by
Railway's headers; one tenant running dry never slows another."""

from __future__ import annotations

import asyncio

import pytest

from claw_emulators.railway.server import RailwayEmulator
from claw_operator.k8s.engine import Engine
from claw_operator.railway.budget import budget_for_tier, parse_tier
from claw_operator.railway.errors import RailwayAuthError
from tests.fixtures.common import canary
from tests.fixtures.operator import operator_settings

TENANT_A = canary("tenant-a-token")
TENANT_B = canary("tenant-b-token")


async def test_two_tenants_one_exhausted_the_other_unaffected(railway_emulator: RailwayEmulator) -> None:
    emu = railway_emulator
    # Railway gives tenant A only three requests this hour; B is on Pro.
    emu.add_token(TENANT_A, "ws-a", per_hour=3)
    emu.add_token(TENANT_B, "ws-b", tier="pro")
    state = Engine(settings=operator_settings(emu))
    try:
        a = state.handle_for(TENANT_A, "free")
        b = state.handle_for(TENANT_B, "pro")
        platform = state.handle_for(None)
        assert (a.client.budget.rps, a.client.budget.rph) == (None, 100)  # type: ignore[attr-defined]
        assert (b.client.budget.rps, b.client.budget.rph) == (50.0, 10_000)  # type: ignore[attr-defined]
        assert len({id(a.client.budget), id(b.client.budget), id(platform.client.budget)}) == 3  # type: ignore[attr-defined]
        # The same token asked again is the same handle: one scheduler batches its reads.
        assert state.handle_for(TENANT_A, "free") is a

        for _ in range(3):
            await a.client.list_projects("ws-a")
        # Railway's X-RateLimit-Remaining: 0 tightened A's budget below its Free tier.
        assert a.client.budget.available_now() == 0  # type: ignore[attr-defined]
        blocked = asyncio.create_task(a.client.list_projects("ws-a"))
        await asyncio.sleep(0)

        sent_before = len(emu.requests)
        for _ in range(5):
            await b.client.list_projects("ws-b")
        await platform.client.list_projects(None)
        assert len(emu.requests) == sent_before + 6
        assert all(r.status == 200 and r.error is None for r in emu.requests[sent_before:])
        assert b.client.budget.available_now() > 0  # type: ignore[attr-defined]
        # A's fourth request waits for Railway's reset instead of drawing a 429.
        assert not blocked.done()
        assert not any(r.status == 429 for r in emu.requests)
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked

        # A tenant token is never used for another tenant's workspace: B's token cannot see A's.
        with pytest.raises(RailwayAuthError):
            await b.client.list_projects("ws-a")
    finally:
        await state.aclose()


async def test_tier_change_resizes_the_same_budget_and_bad_tier_is_named() -> None:
    token = canary("tier-token")
    free = budget_for_tier(token, "free")
    assert (free.rps, free.rph) == (None, 100)
    assert budget_for_tier(token, " Hobby ") is free
    assert (free.rps, free.rph) == (10.0, 1000)
    assert budget_for_tier(token, None).rph == 1000
    assert parse_tier("") == "hobby"
    with pytest.raises(ValueError, match="tier 'gold' is not one of free, hobby, pro"):
        parse_tier("gold")
