"""One scheduler per Railway token: it watches all that token's service instances in
batched reads and tells the engine which objects need a reconcile.

- Deploying instances (a deployment in progress, or a mutation in the last moments) are
  polled together every `fast_seconds`, in as few requests as the batch size allows.
- Steady instances are polled round-robin, one batch at a time, paced evenly over the
  steady period: the load is flat (no burst each period) and every instance is looked at
  once per period. One lap in DRIFT_LAPS also reads variables: the drift check.
- When the token's hourly budget cannot pay for that period, the period stretches for
  everybody alike (freshness degrades evenly) instead of some instances going blind.
- Only objects whose observation changed are handed to `on_change`.
- `observe()` (the ObserverPort of the reconciler) answers from these observations while
  they are fresh and no mutation of that object happened since; otherwise it reads,
  coalesced with other callers into one batched request.
The scheduler is one asyncio task, plus at most one task per kind of read in flight (a
steady chunk, a hot poll, and the on-demand batches of the reconciles waiting), whatever
the number of instances. Reads run beside each other: a steady read waiting for budget
behind a creation burst (it yields to mutations for up to 30 s) must not hold back the
polls of deploying instances or the reads a reconcile waits for.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import math
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from claw_operator.railway.budget import Priority
from claw_operator.railway.types import ServiceInstanceRef, ServiceInstanceState
from claw_operator.rules.progress import FINISHED
from claw_operator.support.wake import wait_or_timeout

log = logging.getLogger(__name__)

# The object a reconcile pass works on; the engine sets it so the scheduler can map a
# service instance back to the object that owns it.
CURRENT_OBJECT: contextvars.ContextVar[str | None] = contextvars.ContextVar("claw_object", default=None)

# Share of the hourly budget that steady polls may plan to use; the rest stays for
# mutations, deploying polls and background reads.
STEADY_SHARE = 0.6
# After a mutation an instance is polled fast this long even if Railway shows nothing new
# yet (the deployment a mutation triggers can take a moment to appear).
HOT_AFTER_MUTATION = 20.0
# Steady laps per drift check: each instance's variables are read every this many laps of
# the rotation (about a minute at the default period), its deployment on every lap.
DRIFT_LAPS = 4


class FleetReader(Protocol):
    async def observe_fleet(
        self, refs: list[ServiceInstanceRef], *, with_variables: bool, priority: Priority = ...
    ) -> dict[ServiceInstanceRef, ServiceInstanceState]: ...


class BudgetView(Protocol):
    rph: int | None


def _digest(state: ServiceInstanceState) -> tuple[Any, ...]:
    latest = state.latestDeployment
    return (
        state.found,
        latest.id if latest else None,
        latest.status if latest else None,
        tuple(state.domains),
        (state.source.image, state.source.repo) if state.source else None,
        state.healthcheckPath,
        state.numReplicas,
        state.region,
    )


def _in_progress(state: ServiceInstanceState | None) -> bool:
    if state is None or not state.found:
        return state is None
    latest = state.latestDeployment
    # Unknown statuses count as in progress (Railway's enum may grow).
    return latest is not None and latest.status not in FINISHED


@dataclass
class _Entry:
    key: str | None = None
    state: ServiceInstanceState | None = None
    taken_at: float = -math.inf
    mutated_at: float = -math.inf
    # The latest deployment when the last mutation happened: a different one seen since
    # means the deployment the mutation triggered has shown.
    deployment_before: str | None = None

    def hot(self, now: float) -> bool:
        if _in_progress(self.state):
            return True
        if now - self.mutated_at >= HOT_AFTER_MUTATION:
            return False
        return not self._new_deployment_seen()

    def _new_deployment_seen(self) -> bool:
        latest = self.state.latestDeployment if self.state is not None else None
        return self.taken_at > self.mutated_at and latest is not None and latest.id != self.deployment_before

    def mutate(self, now: float) -> None:
        latest = self.state.latestDeployment if self.state is not None else None
        self.deployment_before = latest.id if latest is not None else None
        self.mutated_at = now

    def fresh_for(self, with_variables: bool) -> bool:
        return (
            self.state is not None
            and self.taken_at > self.mutated_at
            and (not with_variables or self.state.variables is not None or not self.state.found)
        )


class TokenScheduler:
    def __init__(
        self,
        reader: FleetReader,
        *,
        on_change: Callable[[str], None],
        fast_seconds: float = 3.0,
        steady_seconds: float = 15.0,
        batch_size: int = 100,
        drift_laps: int = DRIFT_LAPS,
        budget: BudgetView | None = None,
        window: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._reader = reader
        self._on_change = on_change
        self.fast_seconds = fast_seconds
        self.steady_seconds = steady_seconds
        self._batch = batch_size
        self._budget = budget
        self._window = window
        self._clock = clock
        self._rng = rng or random.Random()
        self._entries: dict[ServiceInstanceRef, _Entry] = {}
        self._by_key: dict[str, ServiceInstanceRef] = {}
        self._rotation: list[ServiceInstanceRef] = []
        self._cursor = 0
        self._laps = 0
        self._drift_laps = max(1, drift_laps)
        self._next_fast = 0.0
        self._next_steady = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Reads in flight, by kind ("hot", "steady"); on-demand flushes in their own set.
        self._polling: dict[str, asyncio.Task[None]] = {}
        self._flushing: set[asyncio.Task[None]] = set()
        # Instances an on-demand batch is reading now: the hot poll leaves them out.
        self._in_flight: set[ServiceInstanceRef] = set()
        # On-demand reads waiting to be sent together: with_variables -> ref -> future.
        self._pending: dict[bool, dict[ServiceInstanceRef, asyncio.Future[ServiceInstanceState]]] = {
            False: {},
            True: {},
        }
        self._flush_at: float | None = None
        self.reads = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="claw-token-scheduler")

    async def aclose(self) -> None:
        tasks = [t for t in (self._task, *self._polling.values(), *self._flushing) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        self._polling.clear()
        self._flushing.clear()
        for pending in self._pending.values():
            for future in pending.values():
                if not future.done():
                    future.cancel()
            pending.clear()

    # ------------------------------------------------------------------ ObserverPort
    async def observe(self, ref: ServiceInstanceRef, *, with_variables: bool) -> ServiceInstanceState:
        entry = self._track(ref, CURRENT_OBJECT.get())
        if entry.fresh_for(with_variables) and entry.state is not None:
            return entry.state
        pending = self._pending[with_variables]
        future = pending.get(ref)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            pending[ref] = future
            if self._flush_at is None:
                self._flush_at = self._clock() + self._window
                self._wake.set()
            elif len(pending) >= self._batch:
                self._flush_at = self._clock()
                self._wake.set()
        self.start()
        return await asyncio.shield(future)

    # ------------------------------------------------------------------ engine hooks
    def mutated(self, key: str, ref: ServiceInstanceRef | None = None) -> None:
        """A reconcile of `key` changed Railway: its observations are stale, poll it fast.
        `ref` is the service instance it now has, for one just created: the pass that made
        it never observed it, and the hot poll should see its first deployment finish."""
        if ref is not None and self._by_key.get(key) != ref:
            self._track(ref, key)
            self.start()
        known = self._by_key.get(key)
        if known is not None:
            self._entries[known].mutate(self._clock())
            self._wake.set()

    def forget(self, key: str) -> None:
        ref = self._by_key.pop(key, None)
        if ref is not None and self._entries.pop(ref, None) is not None:
            self._rotation.remove(ref)

    @property
    def instances(self) -> int:
        return len(self._entries)

    def steady_period(self) -> float:
        """Seconds between two looks at one steady instance: the configured period, or
        longer when the token's hourly budget cannot pay for it."""
        chunks = math.ceil(max(1, len(self._entries)) / self._batch)
        period = self.steady_seconds
        rph = self._budget.rph if self._budget is not None else None
        if rph:
            affordable_per_second = rph * STEADY_SHARE / 3600.0
            period = max(period, chunks / affordable_per_second)
        return period

    # ------------------------------------------------------------------ internals
    def _track(self, ref: ServiceInstanceRef, key: str | None = None) -> _Entry:
        """The entry of `ref`, followed from now on; `key` (when known) is the object it serves."""
        entry = self._entries.get(ref)
        if entry is None:
            entry = self._entries[ref] = _Entry()
            # New instances join the rotation at a random place, so a fleet created at
            # once does not come due at once.
            self._rotation.insert(self._rng.randrange(len(self._rotation) + 1), ref)
        if key is not None and entry.key != key:
            old = self._by_key.get(key)
            if old is not None and old != ref and self._entries.pop(old, None) is not None:
                self._rotation.remove(old)  # the object's service was replaced
            entry.key = key
            self._by_key[key] = ref
        return entry

    def _record(
        self, states: dict[ServiceInstanceRef, ServiceInstanceState], *, taken_at: float, notify: bool
    ) -> None:
        for ref, state in states.items():
            entry = self._entries.get(ref)
            if entry is None:
                continue
            previous = entry.state
            changed = previous is None or _digest(previous) != _digest(state)
            if (
                not changed
                and state.variables is not None
                and previous is not None
                and previous.variables is not None
            ):
                changed = state.variables != previous.variables
            if (
                state.variables is None
                and previous is not None
                and previous.variables is not None
                and entry.taken_at > entry.mutated_at
            ):
                # A read without variables keeps what we knew of them, unless we changed
                # them since (then only a read with variables tells).
                state = state.model_copy(update={"variables": previous.variables})
            entry.state = state
            entry.taken_at = taken_at
            # A first look counts too: an instance the engine registered after creating it
            # (no reconcile has seen it yet) is news once its deployment shows.
            if notify and changed and entry.key is not None:
                self._on_change(entry.key)

    async def _read(
        self, refs: list[ServiceInstanceRef], *, with_variables: bool, priority: Priority, notify: bool = True
    ) -> dict[ServiceInstanceRef, ServiceInstanceState]:
        """Read `refs` in batches; with `notify`, hand the objects whose state changed to
        on_change (reads a reconcile asked for are consumed by that reconcile)."""
        taken_at = self._clock()
        states: dict[ServiceInstanceRef, ServiceInstanceState] = {}
        for start in range(0, len(refs), self._batch):
            chunk = refs[start : start + self._batch]
            self.reads += 1
            got = await self._reader.observe_fleet(chunk, with_variables=with_variables, priority=priority)
            for ref in chunk:
                states[ref] = got.get(ref) or ServiceInstanceState(ref=ref, found=False)
        self._record(states, taken_at=taken_at, notify=notify)
        return states

    async def _flush(
        self, batches: list[tuple[bool, dict[ServiceInstanceRef, asyncio.Future[ServiceInstanceState]]]]
    ) -> None:
        try:
            for with_variables, batch in batches:
                try:
                    states = await self._read(
                        list(batch),
                        with_variables=with_variables,
                        priority=Priority.DEPLOYING_POLL,
                        notify=False,
                    )
                except Exception as exc:
                    for future in batch.values():
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for ref, future in batch.items():
                    if not future.done():
                        future.set_result(states[ref])
        finally:
            for _, batch in batches:
                self._in_flight.difference_update(batch)
                for future in batch.values():  # closing: nobody waits forever for an answer
                    if not future.done():
                        future.cancel()

    async def _poll_hot(self, now: float) -> None:
        self._next_fast = now + self.fast_seconds
        waiting = self._in_flight | self._pending[True].keys() | self._pending[False].keys()
        hot = [
            ref
            for ref, entry in self._entries.items()
            if entry.hot(now) and now - entry.taken_at >= self.fast_seconds * 0.5 and ref not in waiting
        ]
        if hot:
            await self._read(hot, with_variables=False, priority=Priority.DEPLOYING_POLL)

    async def _poll_steady_chunk(self, now: float) -> None:
        chunks = max(1, math.ceil(len(self._rotation) / self._batch))
        self._next_steady = now + self.steady_period() / chunks
        if not self._rotation:
            return
        picked: list[ServiceInstanceRef] = []
        with_variables = False
        # Variables are most of an answer's bytes: they are read on one lap of the
        # rotation in `drift_laps` (the drift check), the deployment on every lap.
        for taken in range(min(self._batch, len(self._rotation))):
            if self._cursor >= len(self._rotation):
                self._cursor = 0
                self._laps += 1
            if taken == 0:
                with_variables = self._laps % self._drift_laps == 0
            ref = self._rotation[self._cursor]
            self._cursor += 1
            entry = self._entries[ref]
            # Hot ones are polled anyway; one looked at recently need not be again.
            if not entry.hot(now) and now - entry.taken_at >= self.steady_period() * 0.5:
                picked.append(ref)
        if picked:
            await self._read(picked, with_variables=with_variables, priority=Priority.STEADY_POLL)

    def _spawn_poll(self, kind: str, read: Callable[[], Coroutine[Any, Any, None]]) -> None:
        task = asyncio.create_task(self._guarded(read), name=f"claw-token-{kind}")
        self._polling[kind] = task
        task.add_done_callback(lambda done: self._poll_done(kind, done))

    def _poll_done(self, kind: str, task: asyncio.Task[None]) -> None:
        if self._polling.get(kind) is task:
            del self._polling[kind]
        self._wake.set()

    def _spawn_flush(self) -> None:
        # The waiting reads are taken here, so the next window collects new ones.
        self._flush_at = None
        batches = [(with_variables, self._pending[with_variables]) for with_variables in (True, False)]
        self._pending = {True: {}, False: {}}
        for _, batch in batches:
            self._in_flight.update(batch)
        task = asyncio.create_task(
            self._flush([(v, batch) for v, batch in batches if batch]), name="claw-token-flush"
        )
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _guarded(self, read: Callable[[], Coroutine[Any, Any, None]]) -> None:
        # Made here, not by the caller: a task cancelled before it starts leaves no
        # coroutine behind that was never awaited.
        try:
            await read()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A failed poll is retried on the next tick; reconciles report errors.
            log.info("batched observation failed: %s", exc)
            now = self._clock()
            self._next_fast = max(self._next_fast, now + self.fast_seconds)
            self._next_steady = max(self._next_steady, now + self.fast_seconds)

    async def _run(self) -> None:
        # Start the steady rotation at a random phase so replicas and restarts spread out.
        self._next_steady = self._clock() + self._rng.uniform(0, self.steady_seconds / 4)
        while True:
            now = self._clock()
            if self._flush_at is not None and now >= self._flush_at:
                self._spawn_flush()
            if now >= self._next_fast and "hot" not in self._polling:
                self._spawn_poll("hot", functools.partial(self._poll_hot, now))
            if now >= self._next_steady and "steady" not in self._polling:
                self._spawn_poll("steady", functools.partial(self._poll_steady_chunk, now))
            # A kind whose read is still in flight waits for it (its done callback wakes us).
            wake_at = math.inf
            if "hot" not in self._polling:
                wake_at = min(wake_at, self._next_fast)
            if "steady" not in self._polling:
                wake_at = min(wake_at, self._next_steady)
            if self._flush_at is not None:
                wake_at = min(wake_at, self._flush_at)
            self._wake.clear()
            await wait_or_timeout(
                self._wake, None if wake_at == math.inf else max(0.0, wake_at - self._clock())
            )
