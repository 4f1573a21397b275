"""The per-token rate budget: windows, fairness, sharing, and Railway's own signals."""

from __future__ import annotations

import bisect
from collections.abc import Awaitable

import httpx
import pytest

from claw_operator.railway import budget as budget_module
from claw_operator.railway.budget import RateBudget, budget_for, token_fingerprint
from claw_operator.railway.errors import RailwayRateLimitedError
from tests.fixtures.common import canary
from tests.unit.railway_fakes import FakeRailway, VirtualTime, make_client, ok


def max_in_any_window(times: list[float], length: float) -> int:
    """The most send times inside any half-open window [t, t + length)."""
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, t + length) - i for i, t in enumerate(ordered)), default=0)


async def acquire_all(time: VirtualTime, budget: RateBudget, count: int) -> list[float]:
    sent: list[float] = []

    async def one() -> None:
        await budget.acquire()
        sent.append(time.now)

    await time.run(*(one() for _ in range(count)))
    return sent


async def test_per_second_window() -> None:
    time = VirtualTime()
    budget = RateBudget(rps=50, rph=None, slack=0.0, clock=time.clock, sleep=time.sleep)
    sent = await acquire_all(time, budget, 175)
    assert len(sent) == 175
    assert max_in_any_window(sent, 1.0) == 50
    assert sent.count(1_000.0) == 50, "a full second's worth goes at once"
    assert max(sent) == pytest.approx(1_003.0)


async def test_per_second_slack_spreads_a_little_more() -> None:
    time = VirtualTime()
    budget = RateBudget(rps=10, rph=None, slack=0.05, clock=time.clock, sleep=time.sleep)
    sent = await acquire_all(time, budget, 30)
    assert max_in_any_window(sent, 1.05) == 10


async def test_fractional_rates_never_exceed() -> None:
    time = VirtualTime()
    budget = RateBudget(rps=0.5, rph=None, slack=0.0, clock=time.clock, sleep=time.sleep)
    sent = await acquire_all(time, budget, 4)
    assert sent == [1_000.0, 1_002.0, 1_004.0, 1_006.0]
    budget = RateBudget(rps=2.7, rph=None, slack=0.0, clock=time.clock, sleep=time.sleep)
    sent = await acquire_all(time, budget, 20)
    assert max_in_any_window(sent, 1.0) <= 2


async def test_per_hour_window() -> None:
    time = VirtualTime()
    budget = RateBudget(rps=None, rph=10, clock=time.clock, sleep=time.sleep)
    sent = await acquire_all(time, budget, 25)
    assert sent[:10] == [1_000.0] * 10
    assert sent[10:20] == [4_600.0] * 10
    assert sent[20:] == [8_200.0] * 5
    # A token bucket would let 10 more through as it refills; the window never does.
    assert max_in_any_window(sent, 3600.0) == 10


async def test_both_windows_together() -> None:
    time = VirtualTime()
    budget = RateBudget(rps=5, rph=12, slack=0.0, clock=time.clock, sleep=time.sleep)
    sent = await acquire_all(time, budget, 20)
    assert max_in_any_window(sent, 1.0) == 5
    assert max_in_any_window(sent, 3600.0) == 12
    assert sent[:12] == [1_000.0] * 5 + [1_001.0] * 5 + [1_002.0] * 2
    assert sent[12] == 4_600.0


async def test_waiting_is_first_come_first_served() -> None:
    time = VirtualTime()
    budget = RateBudget(rps=2, rph=None, slack=0.0, clock=time.clock, sleep=time.sleep)
    order: list[int] = []

    async def caller(n: int) -> None:
        await budget.acquire()
        order.append(n)

    await time.run(*(caller(n) for n in range(12)))
    assert order == list(range(12))


async def test_pause_holds_everyone_including_those_already_waiting() -> None:
    time = VirtualTime()
    budget = RateBudget(rps=1, rph=None, slack=0.0, clock=time.clock, sleep=time.sleep)
    sent: list[float] = []

    async def caller() -> None:
        await budget.acquire()
        sent.append(time.now)

    async def pauser() -> None:
        await time.sleep(0.5)  # while three callers wait for their slots
        budget.pause(10.0)

    await time.run(pauser(), *(caller() for _ in range(4)))
    assert sent[0] == 1_000.0
    # Nobody sends during the pause, and after it the per-second limit still holds.
    assert all(t >= 1_010.5 for t in sent[1:])
    assert max_in_any_window(sent, 1.0) == 1


async def test_server_remaining_tightens_until_reset() -> None:
    time = VirtualTime()
    budget = RateBudget(rps=None, rph=10_000, clock=time.clock, sleep=time.sleep)
    budget.observe_server(remaining=2, reset_in=60.0)
    sent = await acquire_all(time, budget, 4)
    assert sent == [1_000.0, 1_000.0, 1_060.0, 1_060.0]


async def test_server_remaining_ignored_when_local_is_tighter() -> None:
    time = VirtualTime()
    budget = RateBudget(rps=None, rph=3, clock=time.clock, sleep=time.sleep)
    budget.observe_server(remaining=100, reset_in=60.0)
    sent = await acquire_all(time, budget, 4)
    assert sent == [1_000.0] * 3 + [4_600.0]


async def test_server_remaining_counts_requests_in_flight() -> None:
    time = VirtualTime()
    budget = RateBudget(rps=None, rph=None, clock=time.clock, sleep=time.sleep)
    async with budget.slot(), budget.slot(), budget.slot():
        # Two other requests are out; Railway may not have counted them yet.
        budget.observe_server(remaining=3, reset_in=30.0)
    sent = await acquire_all(time, budget, 2)
    assert sent == [1_000.0, 1_030.0]


async def test_stale_server_report_does_not_loosen() -> None:
    time = VirtualTime()
    budget = RateBudget(rps=None, rph=None, clock=time.clock, sleep=time.sleep)
    budget.observe_server(remaining=1, reset_in=30.0)
    budget.observe_server(remaining=50, reset_in=30.0)  # an older response, arriving late
    sent = await acquire_all(time, budget, 2)
    assert sent == [1_000.0, 1_030.0]


async def test_configure_keeps_history() -> None:
    time = VirtualTime()
    budget = RateBudget(rps=None, rph=100, clock=time.clock, sleep=time.sleep)
    await acquire_all(time, budget, 5)
    budget.configure(rps=None, rph=5)
    sent = await acquire_all(time, budget, 1)
    assert sent == [4_600.0]


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RateBudget(rps=0, rph=None)
    with pytest.raises(ValueError):
        RateBudget(rps=None, rph=-1)


def test_registry_shares_one_budget_per_token_without_keeping_the_token() -> None:
    token = canary("registry-token")
    first = budget_for(token, rps=50, rph=10_000)
    assert budget_for(token, rps=50, rph=10_000) is first
    assert budget_for(canary("other-token"), rps=50, rph=10_000) is not first
    fingerprint = token_fingerprint(token)
    assert len(fingerprint) == 64 and token not in fingerprint
    assert all(token not in key for key in budget_module._registry)
    # A tier change reconfigures the shared budget rather than forking it.
    assert budget_for(token, rps=10, rph=1_000) is first
    assert (first.rps, first.rph) == (10, 1_000)


async def test_two_clients_share_one_budget() -> None:
    time = VirtualTime()
    budget = RateBudget(rps=5, rph=None, slack=0.0, clock=time.clock, sleep=time.sleep)
    sent_at: list[float] = []

    def answer(body: dict[str, object]) -> httpx.Response:
        sent_at.append(time.now)
        return ok({"projectDelete": True})

    fake = FakeRailway(default=answer)
    async with make_client(fake, time, budget=budget) as a, make_client(fake, time, budget=budget) as b:
        await time.run(*(client.delete_project(f"p{n}") for n in range(10) for client in (a, b)))
    assert len(sent_at) == 20
    assert max_in_any_window(sent_at, 1.0) == 5


async def test_client_feeds_rate_headers_to_the_budget() -> None:
    time = VirtualTime()
    budget = RateBudget(rps=None, rph=10_000, clock=time.clock, sleep=time.sleep)
    sent_at: list[float] = []
    # make_client's wall clock is 1_700_000_000; the reset is given as a Unix time.
    headers = {"X-RateLimit-Limit": "10000", "X-RateLimit-Remaining": "1", "X-RateLimit-Reset": "1700000045"}

    def answer(body: dict[str, object]) -> httpx.Response:
        sent_at.append(time.now)
        return ok({"projectDelete": True}, headers=headers)

    async with make_client(FakeRailway(default=answer), time, budget=budget) as client:
        await time.run(*(client.delete_project(f"p{n}") for n in range(3)))
    assert sent_at == [1_000.0, 1_000.0, 1_045.0]


async def test_429_pauses_every_client_of_the_token() -> None:
    time = VirtualTime()
    budget = RateBudget(rps=None, rph=None, clock=time.clock, sleep=time.sleep)
    sent_at: list[tuple[str, float]] = []
    throttled = FakeRailway(script=[httpx.Response(429, headers={"Retry-After": "20"})])
    throttled.default = ok({"projectDelete": True})
    other = FakeRailway(default=ok({"projectDelete": True}))

    async def later(client_name: str, call: Awaitable[object]) -> None:
        await time.sleep(1.0)
        await call
        sent_at.append((client_name, time.now))

    async with (
        make_client(throttled, time, budget=budget, max_retries=0) as a,
        make_client(other, time, budget=budget) as b,
    ):

        async def first() -> None:
            with pytest.raises(RailwayRateLimitedError):
                await a.delete_project("p")

        await time.run(first(), later("b", b.delete_project("q")))
    assert sent_at == [("b", 1_020.0)]


async def test_spread_bounds_arrivals_however_late_they_land() -> None:
    """Railway counts a request when it arrives, anywhere between its send and its answer.
    With slow answers (a stalled Railway) evenly spaced sends could still land bunched;
    the arrival gate keeps every second's possible arrivals within the limit."""
    time = VirtualTime()
    budget = RateBudget(rps=10, rph=None, slack=0.0, spread=True, clock=time.clock, sleep=time.sleep)
    spans: list[tuple[float, float]] = []

    async def one(latency: float) -> None:
        async with budget.slot():
            sent = time.now
            await time.sleep(latency)
        spans.append((sent, time.now))

    await time.run(*(one(0.5 if n % 3 else 0.05) for n in range(40)))
    assert len(spans) == 40

    def could_arrive_within(start: float) -> int:
        return sum(1 for sent, answered in spans if sent < start + 1.0 and answered >= start)

    starts = [answered for _, answered in spans] + [sent for sent, _ in spans]
    assert max(could_arrive_within(start) for start in starts) <= 10
