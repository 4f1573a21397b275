"""The work queue of the fleet engine: which object to reconcile next.

- Bounded concurrency: a fixed set of worker tasks, however many objects exist.
- Per-object coalescing: a key queued twice runs once; a key queued while it runs is run
  once more after it finishes (the second request may carry news the first run missed).
- Priorities: one FIFO lane per urgency; the most urgent non-empty lane goes first, but
  one pop in `SHARE` goes to the next non-empty lane, so a burst of new objects cannot
  hold back the follow-up passes of those already created (no starvation).
- Reserved workers: passes of the most urgent lane (new and changed objects) may occupy
  all but a quarter of the workers. Those passes are the slow ones in a creation burst
  (each waits for the token's budget several times), so without a reserve 10,000 new
  objects would keep every worker waiting on Railway while instances whose deployment
  just finished wait for a worker to write Running.
- Delayed requeue: one heap of due times served by one timer task (not a task or timer
  per object); a key keeps its earliest due time.
The number of asyncio tasks is `concurrency + 1` whatever the number of objects.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from enum import IntEnum
from typing import Generic, TypeVar

from claw_operator.support.wake import wait_or_timeout

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


# One pop in SHARE serves a less urgent lane while a more urgent one has work.
SHARE = 4
# The share of workers the most urgent lane cannot take (rounded down: none below 4).
RESERVED_SHARE = 4


class Urgency(IntEnum):
    """Why an object is queued; lower runs first."""

    USER = 0  # the user changed it (create, update, delete, resume, a plan or Secret)
    OBSERVED = 1  # Railway or a probe shows something new about it
    REQUEUE = 2  # the reconciler asked to look again later (polls, backoff)
    RESYNC = 3  # the slow periodic resync


class WorkQueue(Generic[K]):
    def __init__(
        self,
        worker: Callable[[K], Awaitable[None]],
        *,
        concurrency: int = 16,
        clock: Callable[[], float] = time.monotonic,
        name: str = "claw-work",
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._worker = worker
        self._concurrency = concurrency
        self._clock = clock
        self._name = name
        self._seq = itertools.count()
        # Ready keys: a FIFO lane of (seq, key) per urgency; _queued holds each key's live
        # entry (urgency, seq), so entries superseded by a more urgent add are skipped.
        self._lanes: list[collections.deque[tuple[int, K]]] = [collections.deque() for _ in Urgency]
        self._queued: dict[K, tuple[int, int]] = {}
        self._pops = 0
        # Delayed keys: heap of (due, seq, key, urgency); _due holds each key's live due time.
        self._delayed: list[tuple[float, int, K, int]] = []
        self._due: dict[K, float] = {}
        self._running: set[K] = set()
        self._urgent_running = 0  # passes of the most urgent lane running now
        self._urgent_limit = concurrency - concurrency // RESERVED_SHARE
        self._again: dict[K, int] = {}  # keys queued while running -> urgency for the rerun
        self._wake_workers = asyncio.Event()
        self._wake_timer = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self.runs = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._work(), name=f"{self._name}-{n}") for n in range(self._concurrency)
        ]
        self._tasks.append(asyncio.create_task(self._timer(), name=f"{self._name}-timer"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # ------------------------------------------------------------------ producers
    def add(self, key: K, urgency: Urgency = Urgency.USER) -> None:
        """Run `key` as soon as a worker is free."""
        if key in self._running:
            self._again[key] = min(urgency, self._again.get(key, urgency))
            return
        current = self._queued.get(key)
        if current is not None and current[0] <= urgency:
            return
        entry = (int(urgency), next(self._seq))
        self._queued[key] = entry
        self._lanes[entry[0]].append((entry[1], key))
        self._due.pop(key, None)  # running now supersedes a later run
        self._idle.clear()
        self._wake_workers.set()

    def add_after(self, key: K, delay: float, urgency: Urgency = Urgency.REQUEUE) -> None:
        """Run `key` in `delay` seconds, unless it is due earlier already."""
        if delay <= 0:
            self.add(key, urgency)
            return
        due = self._clock() + delay
        if key in self._queued or self._due.get(key, float("inf")) <= due:
            return
        self._due[key] = due
        heapq.heappush(self._delayed, (due, next(self._seq), key, int(urgency)))
        if self._delayed[0][2] == key:
            self._wake_timer.set()

    def forget(self, key: K) -> None:
        """Drop every pending run of `key` (a run in progress finishes)."""
        self._queued.pop(key, None)
        self._due.pop(key, None)
        self._again.pop(key, None)

    # ------------------------------------------------------------------ introspection
    def __len__(self) -> int:
        return len(self._queued)

    @property
    def delayed(self) -> int:
        return len(self._due)

    def is_pending(self, key: K) -> bool:
        return key in self._queued or key in self._due or key in self._running

    async def join(self) -> None:
        """Wait until nothing is ready or running (delayed keys do not count)."""
        while not self._idle.is_set():
            await self._idle.wait()

    # ------------------------------------------------------------------ consumers
    def _lane_ready(self, urgency: int) -> bool:
        lane = self._lanes[urgency]
        while lane and self._queued.get(lane[0][1]) != (urgency, lane[0][0]):
            lane.popleft()  # run or superseded already
        return bool(lane)

    def _pop_ready(self) -> tuple[K, int] | None:
        ready = [urgency for urgency in range(len(self._lanes)) if self._lane_ready(urgency)]
        if ready and ready[0] == Urgency.USER and self._urgent_running >= self._urgent_limit:
            ready = ready[1:]  # the rest of the workers are kept for the other lanes
        if not ready:
            return None
        self._pops += 1
        urgency = ready[1] if len(ready) > 1 and self._pops % SHARE == 0 else ready[0]
        _seq, key = self._lanes[urgency].popleft()
        del self._queued[key]
        return key, urgency

    async def _work(self) -> None:
        while True:
            popped = self._pop_ready()
            if popped is None:
                if not self._running:
                    self._idle.set()
                self._wake_workers.clear()
                await self._wake_workers.wait()
                continue
            key, urgency = popped
            self._running.add(key)
            urgent = urgency == Urgency.USER
            self._urgent_running += urgent
            try:
                await self._worker(key)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("work item %r failed", key)
            finally:
                self._running.discard(key)
                self._urgent_running -= urgent
                if urgent:
                    self._wake_workers.set()  # a worker held back for the lane may take it now
                self.runs += 1
                again = self._again.pop(key, None)
                if again is not None:
                    self.add(key, Urgency(again))
                elif not self._queued and not self._running:
                    self._idle.set()

    async def _timer(self) -> None:
        while True:
            now = self._clock()
            while self._delayed and self._delayed[0][0] <= now:
                due, _seq, key, urgency = heapq.heappop(self._delayed)
                if self._due.get(key) == due:
                    del self._due[key]
                    self.add(key, Urgency(urgency))
            self._wake_timer.clear()
            timeout = self._delayed[0][0] - now if self._delayed else None
            await wait_or_timeout(self._wake_timer, timeout)
