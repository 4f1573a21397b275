"""The per-token scheduler: batched observation, change-only enqueueing, freshness of
answers after mutations, even degradation, and request priorities in the budget."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from claw_operator.fleet.scheduler import CURRENT_OBJECT, TokenScheduler
from claw_operator.railway.budget import Priority, RateBudget
from claw_operator.railway.types import Deployment, ServiceInstanceRef, ServiceInstanceState
from tests.unit.railway_fakes import VirtualTime


def ref(n: int) -> ServiceInstanceRef:
    return ServiceInstanceRef(projectId=f"p{n}", environmentId=f"e{n}", serviceId=f"s{n}")


async def until(condition: Callable[[], bool]) -> None:
    """Let the event loop run until `condition` holds."""
    for _ in range(100_000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never met")


class FakeFleet:
    """Railway's view of many service instances, answering batched reads."""

    def __init__(self) -> None:
        self.status: dict[ServiceInstanceRef, str] = {}
        self.requests: list[tuple[int, bool, Priority]] = []

    async def observe_fleet(
        self, refs: list[ServiceInstanceRef], *, with_variables: bool, priority: Priority = Priority.URGENT
    ) -> dict[ServiceInstanceRef, ServiceInstanceState]:
        self.requests.append((len(refs), with_variables, priority))
        await asyncio.sleep(0)
        return {
            r: ServiceInstanceState(
                ref=r,
                latestDeployment=Deployment(id=f"d-{r.serviceId}", status=self.status.get(r, "SUCCESS")),
                variables={"A": "1"} if with_variables else None,
            )
            for r in refs
        }


async def observe_as(scheduler: TokenScheduler, key: str, target: ServiceInstanceRef) -> ServiceInstanceState:
    token = CURRENT_OBJECT.set(key)
    try:
        return await scheduler.observe(target, with_variables=True)
    finally:
        CURRENT_OBJECT.reset(token)


async def test_concurrent_observes_become_few_batched_requests() -> None:
    fleet = FakeFleet()
    changed: list[str] = []
    scheduler = TokenScheduler(
        fleet, on_change=changed.append, batch_size=100, window=0.01, steady_seconds=3600
    )
    states = await asyncio.gather(*(observe_as(scheduler, f"ns/o{n}", ref(n)) for n in range(250)))
    await scheduler.aclose()
    assert all(s.found for s in states)
    assert [count for count, _, _ in fleet.requests] == [100, 100, 50]
    assert changed == [], "the reconciles that asked consume what they read"


async def test_answers_from_observations_until_a_mutation() -> None:
    fleet = FakeFleet()
    scheduler = TokenScheduler(fleet, on_change=lambda key: None, window=0.0, steady_seconds=3600)
    await observe_as(scheduler, "ns/a", ref(1))
    await observe_as(scheduler, "ns/a", ref(1))
    assert len(fleet.requests) == 1, "a fresh observation answers without a request"
    scheduler.mutated("ns/a")
    await observe_as(scheduler, "ns/a", ref(1))
    assert len(fleet.requests) == 2, "after a mutation only a new read can tell"
    await scheduler.aclose()


async def test_the_steady_tick_enqueues_only_what_changed() -> None:
    fleet = FakeFleet()
    changed: list[str] = []
    scheduler = TokenScheduler(
        fleet,
        on_change=changed.append,
        batch_size=10,
        window=0.0,
        steady_seconds=0.2,
        fast_seconds=0.05,
        drift_laps=1,  # every lap reads variables too (drift laps: the test below)
    )
    for n in range(30):
        await observe_as(scheduler, f"ns/o{n}", ref(n))
    reads = len(fleet.requests)
    fleet.status[ref(7)] = "CRASHED"
    await until(lambda: "ns/o7" in changed)
    await asyncio.sleep(0.3)  # more rounds: nothing else changed
    await scheduler.aclose()
    assert set(changed) == {"ns/o7"}
    steady = fleet.requests[reads:]
    assert steady and all(count <= 10 and with_vars for count, with_vars, _ in steady)
    assert all(priority == Priority.STEADY_POLL for _, _, priority in steady)


async def test_deploying_instances_are_polled_together_and_fast() -> None:
    fleet = FakeFleet()
    changed: list[str] = []
    scheduler = TokenScheduler(
        fleet, on_change=changed.append, batch_size=100, window=0.0, steady_seconds=3600, fast_seconds=0.05
    )
    for n in range(20):
        fleet.status[ref(n)] = "BUILDING" if n < 5 else "SUCCESS"
        await observe_as(scheduler, f"ns/o{n}", ref(n))
    reads = len(fleet.requests)
    for n in range(5):
        fleet.status[ref(n)] = "SUCCESS"
    await until(lambda: len(changed) >= 5)
    await scheduler.aclose()
    assert sorted(changed) == [f"ns/o{n}" for n in range(5)]
    polls = fleet.requests[reads:]
    assert polls[0] == (5, False, Priority.DEPLOYING_POLL), "one request for all deploying ones"


def test_the_steady_period_stretches_evenly_when_the_budget_is_short() -> None:
    class Budget:
        rph: int | None = 10_000

    scheduler = TokenScheduler(FakeFleet(), on_change=lambda key: None, batch_size=100, budget=Budget())
    for n in range(1000):
        scheduler._track(ref(n))
    assert scheduler.steady_period() == 15.0, "1,000 instances fit a Pro token at 15 s"
    for n in range(1000, 20_000):
        scheduler._track(ref(n))
    period = scheduler.steady_period()
    # 200 requests per round within 60% of 10,000/h: every instance waits alike.
    assert period == 200 / (10_000 * 0.6 / 3600)


async def test_urgent_requests_go_before_polls_and_polls_before_background() -> None:
    time = VirtualTime()
    budget = RateBudget(rps=2, rph=None, slack=0.0, spread=True, clock=time.clock, sleep=time.sleep)
    order: list[str] = []

    async def call(name: str, priority: Priority, after: float = 0.0) -> None:
        await time.sleep(after)
        await budget.acquire(priority)
        order.append(name)

    calls: list[Any] = [call(f"background{n}", Priority.BACKGROUND) for n in range(2)]
    calls += [call(f"steady{n}", Priority.STEADY_POLL) for n in range(2)]
    calls += [call(f"deploying{n}", Priority.DEPLOYING_POLL) for n in range(2)]
    calls += [call(f"urgent{n}", Priority.URGENT, after=0.1) for n in range(3)]
    await time.run(*calls)
    # Whoever finds a free slot at once takes it; after that urgency decides.
    assert order[0] == "background0"
    assert order[1:] == [
        "urgent0",
        "urgent1",
        "urgent2",
        "deploying0",
        "deploying1",
        "steady0",
        "steady1",
        "background1",
    ]


class StuckSteadyFleet(FakeFleet):
    """Steady reads wait (as behind a creation burst in the token's budget) until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.steady_waiting = 0

    async def observe_fleet(
        self, refs: list[ServiceInstanceRef], *, with_variables: bool, priority: Priority = Priority.URGENT
    ) -> dict[ServiceInstanceRef, ServiceInstanceState]:
        if priority == Priority.STEADY_POLL:
            self.steady_waiting += 1
            await self.release.wait()
        return await super().observe_fleet(refs, with_variables=with_variables, priority=priority)


async def test_a_steady_read_waiting_for_budget_holds_back_neither_hot_polls_nor_reconciles() -> None:
    fleet = StuckSteadyFleet()
    changed: list[str] = []
    scheduler = TokenScheduler(
        fleet, on_change=changed.append, batch_size=10, window=0.0, steady_seconds=0.1, fast_seconds=0.05
    )
    try:
        for n in range(20):
            fleet.status[ref(n)] = "BUILDING" if n < 3 else "SUCCESS"
            await observe_as(scheduler, f"ns/o{n}", ref(n))
        await until(lambda: fleet.steady_waiting >= 1)
        # The steady read is stuck; a deployment finishing is still seen by the hot poll ...
        for n in range(3):
            fleet.status[ref(n)] = "SUCCESS"
        await until(lambda: len(changed) >= 3)
        # ... and a reconcile's read of a new instance is still answered.
        state = await asyncio.wait_for(observe_as(scheduler, "ns/new", ref(99)), timeout=5)
        assert state.found
        assert fleet.steady_waiting == 1, "one steady read in flight at a time, never a pile"
    finally:
        fleet.release.set()
        await scheduler.aclose()
    assert sorted(changed) == ["ns/o0", "ns/o1", "ns/o2"]


async def test_an_instance_just_created_is_polled_fast_without_a_reconcile_asking() -> None:
    """The pass that creates a service never observes it: told its ref with the mutation,
    the hot poll follows its first deployment and asks for a pass once it shows."""
    fleet = FakeFleet()
    changed: list[str] = []
    scheduler = TokenScheduler(
        fleet, on_change=changed.append, batch_size=10, window=0.0, steady_seconds=3600, fast_seconds=0.05
    )
    try:
        fleet.status[ref(1)] = "BUILDING"
        scheduler.mutated("ns/new", ref(1))
        await until(lambda: changed == ["ns/new"])
        assert fleet.requests[0] == (1, False, Priority.DEPLOYING_POLL)
        fleet.status[ref(1)] = "SUCCESS"
        await until(lambda: changed == ["ns/new", "ns/new"])
        # Its deployment has shown and finished: fast polling ends (not 20 s more of it).
        polls = len(fleet.requests)
        await asyncio.sleep(0.3)
        assert len(fleet.requests) <= polls + 1
    finally:
        await scheduler.aclose()
    assert scheduler.instances == 1


class DriftingFleet(FakeFleet):
    """Variables as Railway holds them, which someone may change by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.variables: dict[ServiceInstanceRef, dict[str, str]] = {}

    async def observe_fleet(
        self, refs: list[ServiceInstanceRef], *, with_variables: bool, priority: Priority = Priority.URGENT
    ) -> dict[ServiceInstanceRef, ServiceInstanceState]:
        states = await super().observe_fleet(refs, with_variables=with_variables, priority=priority)
        if with_variables:
            states = {
                r: s.model_copy(update={"variables": self.variables.get(r, {"A": "1"})})
                for r, s in states.items()
            }
        return states


async def test_variables_are_read_on_one_steady_lap_in_drift_laps_and_drift_is_seen() -> None:
    fleet = DriftingFleet()
    changed: list[str] = []
    scheduler = TokenScheduler(
        fleet,
        on_change=changed.append,
        batch_size=10,
        window=0.0,
        steady_seconds=0.1,
        fast_seconds=0.05,
        drift_laps=3,
    )
    try:
        for n in range(30):
            await observe_as(scheduler, f"ns/o{n}", ref(n))
        reads = len(fleet.requests)
        await until(lambda: len(fleet.requests) >= reads + 18)  # six laps of three chunks
        steady = fleet.requests[reads : reads + 18]
        assert all(priority == Priority.STEADY_POLL for _, _, priority in steady)
        with_variables = sum(1 for _, with_vars, _ in steady if with_vars)
        assert with_variables == 6, "one lap in three reads variables"
        assert changed == [], "a read without variables keeps what was known of them"
        fleet.variables[ref(4)] = {"A": "changed by hand"}
        await until(lambda: "ns/o4" in changed)
    finally:
        await scheduler.aclose()
    assert changed == ["ns/o4"]
