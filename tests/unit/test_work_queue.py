"""The fleet engine's work queue: coalescing, priorities, delayed requeue, bounded tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from claw_operator.fleet.queue import RESERVED_SHARE, SHARE, Urgency, WorkQueue


async def until(condition: Callable[[], bool]) -> None:
    """Let the event loop run until `condition` holds."""
    for _ in range(100_000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never met")


class Recorder:
    def __init__(self) -> None:
        self.runs: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.running: set[str] = set()
        self.most_at_once = 0

    async def __call__(self, key: str) -> None:
        self.running.add(key)
        self.most_at_once = max(self.most_at_once, len(self.running))
        self.runs.append(key)
        gate = self.gates.get(key)
        if gate is not None:
            await gate.wait()
        await asyncio.sleep(0)
        self.running.discard(key)


async def test_a_key_queued_twice_runs_once() -> None:
    work = Recorder()
    queue: WorkQueue[str] = WorkQueue(work, concurrency=2)
    for _ in range(5):
        queue.add("a")
    queue.add("b")
    queue.start()
    await queue.join()
    await queue.stop()
    assert sorted(work.runs) == ["a", "b"]


async def test_a_key_queued_while_running_runs_once_more_after() -> None:
    work = Recorder()
    work.gates["a"] = asyncio.Event()
    queue: WorkQueue[str] = WorkQueue(work, concurrency=4)
    queue.start()
    queue.add("a")
    await until(lambda: "a" in work.running)
    for _ in range(3):
        queue.add("a")  # news arriving while the pass runs
    assert work.runs == ["a"], "never two passes of one key at once"
    work.gates["a"].set()
    await queue.join()
    await queue.stop()
    assert work.runs == ["a", "a"]


async def test_more_urgent_keys_run_first() -> None:
    work = Recorder()
    queue: WorkQueue[str] = WorkQueue(work, concurrency=1)
    queue.add("resync", Urgency.RESYNC)
    queue.add("seen", Urgency.OBSERVED)
    queue.add("user", Urgency.USER)
    queue.add("resync-then-user", Urgency.RESYNC)
    queue.add("resync-then-user", Urgency.USER)  # raised, not duplicated
    queue.start()
    await queue.join()
    await queue.stop()
    assert work.runs == ["user", "resync-then-user", "seen", "resync"]


async def test_concurrency_is_bounded() -> None:
    work = Recorder()
    gate = asyncio.Event()
    for n in range(20):
        work.gates[f"k{n}"] = gate
    queue: WorkQueue[str] = WorkQueue(work, concurrency=3)
    queue.start()
    for n in range(20):
        queue.add(f"k{n}")
    await until(lambda: len(work.running) >= 3)
    await asyncio.sleep(0.01)
    assert len(work.running) == 3
    gate.set()
    await queue.join()
    await queue.stop()
    assert work.most_at_once == 3 and len(work.runs) == 20


async def test_delayed_requeue_keeps_the_earliest_and_an_immediate_add_wins() -> None:
    work = Recorder()
    queue: WorkQueue[str] = WorkQueue(work, concurrency=1)
    queue.start()
    queue.add_after("late", 60.0)
    queue.add_after("late", 0.05)  # earlier: replaces the 60 s one
    queue.add_after("late", 30.0)  # later: ignored
    queue.add_after("now", 60.0)
    queue.add("now")  # runs at once; its delayed run is dropped
    await until(lambda: len(work.runs) >= 2)
    assert work.runs == ["now", "late"]
    assert queue.delayed == 0, "no run of either key is left pending"
    await queue.stop()


async def test_forget_drops_pending_runs() -> None:
    work = Recorder()
    queue: WorkQueue[str] = WorkQueue(work, concurrency=1)
    queue.add("gone")
    queue.add_after("gone-later", 0.01)
    queue.forget("gone")
    queue.forget("gone-later")
    queue.add("kept")
    queue.start()
    await asyncio.sleep(0.05)
    await queue.join()
    await queue.stop()
    assert work.runs == ["kept"]


async def test_tasks_do_not_grow_with_the_number_of_keys() -> None:
    work = Recorder()
    queue: WorkQueue[str] = WorkQueue(work, concurrency=4)
    before = len(asyncio.all_tasks())
    queue.start()
    with_workers = len(asyncio.all_tasks())
    for n in range(5000):
        queue.add_after(f"k{n}", 3600.0 + n)
        queue.add(f"now{n}")
    assert len(asyncio.all_tasks()) == with_workers == before + 5
    await queue.join()
    assert len(asyncio.all_tasks()) == with_workers
    await queue.stop()


async def test_less_urgent_keys_get_a_share_while_urgent_ones_keep_coming() -> None:
    work = Recorder()
    queue: WorkQueue[str] = WorkQueue(work, concurrency=1)
    for n in range(8):
        queue.add(f"new-{n}", Urgency.USER)
    queue.add("follow-up-0", Urgency.REQUEUE)
    queue.add("follow-up-1", Urgency.REQUEUE)
    queue.start()
    await queue.join()
    await queue.stop()
    # One pop in SHARE goes to the less urgent lane: follow-ups do not wait for the burst.
    assert work.runs.index("follow-up-0") == SHARE - 1
    assert work.runs.index("follow-up-1") == 2 * SHARE - 1
    assert [r for r in work.runs if r.startswith("new")] == [f"new-{n}" for n in range(8)]


async def test_a_burst_of_new_objects_leaves_workers_for_follow_ups() -> None:
    """New objects' passes wait on Railway's budget; however many there are, a quarter of
    the workers stays free for the passes of objects Railway shows something new about."""
    work = Recorder()
    gate = asyncio.Event()
    for n in range(40):
        work.gates[f"new-{n}"] = gate
    queue: WorkQueue[str] = WorkQueue(work, concurrency=8)
    queue.start()
    for n in range(40):
        queue.add(f"new-{n}", Urgency.USER)
    reserved = 8 // RESERVED_SHARE
    await until(lambda: len(work.running) >= 8 - reserved)
    await asyncio.sleep(0.01)
    assert len(work.running) == 8 - reserved, "the new objects' passes leave the reserve free"
    queue.add("deployed", Urgency.OBSERVED)
    await until(lambda: "deployed" in work.runs)
    assert all(key.startswith("new") for key in work.running), "it ran while the burst still waits"
    gate.set()
    await queue.join()
    await queue.stop()
    assert len(work.runs) == 41 and work.most_at_once <= 8
