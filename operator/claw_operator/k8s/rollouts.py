"""The plan-level rollout coordinator: decides each plan's rollout again whenever one of
its instances or the plan changes (and when an instance's healthyForSeconds elapses),
writes the plan's status only when it changed, posts the plan's events, and has the
instances the rollout just let move (or roll back) reconciled at once.

The decisions themselves are pure (controller/rollout.py, controller/rollout_book.py);
this module only schedules them and does their I/O."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from claw_operator.controller.rollout_book import PlanUpdate, RolloutBook

log = logging.getLogger(__name__)

# Instance updates arrive in bursts (a wave finishing): decide once per burst.
SETTLE_SECONDS = 0.2
# A decision looks at every instance of the plan (tens of ms at 10,000): the pause before
# the next one is at least this many times the last one took, so deciding keeps to a small
# share of the event loop however large the fleet (about 1/(1+N)).
PAUSE_PER_DECIDING = 20
# A decision is taken again at least this often, whatever happened.
RESYNC_SECONDS = 30.0
RETRY_SECONDS = 5.0

# (plan name, status patch) -> the stored plan after the write, or None if it is gone.
PlanStatusWriter = Callable[[str, dict[str, Any]], Awaitable[Mapping[str, Any] | None]]
# (plan name, event type, reason, message)
PlanEventPoster = Callable[[str, str, str, str], None]
InstanceWaker = Callable[[str], None]


class RolloutCoordinator:
    def __init__(
        self,
        book: RolloutBook,
        write_status: PlanStatusWriter,
        post_event: PlanEventPoster,
        wake: InstanceWaker,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        writes_for: Callable[[str], bool] = lambda plan: True,
        timer: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.book = book
        self._write_status = write_status
        self._post_event = post_event
        self._wake = wake
        self._clock = clock
        # With shards, one replica (the owner of the plan's shard) writes a plan's status and
        # posts its events; every replica decides and reconciles its own instances.
        self._writes_for = writes_for
        self._dirty: set[str] = set()
        self._due: dict[str, datetime] = {}
        self._signal = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.resync_seconds = RESYNC_SECONDS
        self._deciding = 0.0  # seconds the last round's (synchronous) decisions took
        self._timer = timer
        self._sleep = sleep

    def mark(self, plans: Iterable[str]) -> None:
        """These plans' rollouts may have changed: decide them again soon."""
        plans = set(plans)
        if plans:
            self._dirty |= plans
            self._signal.set()

    def start(self) -> None:
        self.book.primed = True
        self.mark(self.book.plans())
        self._task = asyncio.create_task(self._run(), name="rollout-coordinator")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._wait()
            await self._sleep(max(SETTLE_SECONDS, self._deciding * PAUSE_PER_DECIDING))
            self._deciding = 0.0
            now = self._clock()
            due = {name for name, at in self._due.items() if at <= now}
            plans, self._dirty = self._dirty | due, set()
            for name in due:
                self._due.pop(name, None)
            for name in sorted(plans):
                try:
                    await self.decide(name)
                except Exception as exc:  # a refused write: try again soon, never give up
                    log.warning("rollout of plan %s not updated, retrying: %s", name, exc)
                    self._due[name] = datetime.fromtimestamp(now.timestamp() + RETRY_SECONDS, UTC)

    async def _wait(self) -> None:
        if self._dirty:
            return
        now = self._clock()
        timeout = self.resync_seconds
        if self._due:
            timeout = min(timeout, max(0.0, (min(self._due.values()) - now).total_seconds()))
        self._signal.clear()
        try:
            await asyncio.wait_for(self._signal.wait(), timeout=timeout)
        except TimeoutError:
            if not self._due:
                self.mark(self.book.plans())

    async def decide(self, name: str) -> PlanUpdate | None:
        """One decision for one plan, with its writes, events and wake-ups."""
        started = self._timer()
        update = self.book.decide(name, self._clock())
        self._deciding += self._timer() - started
        if update is None:
            return None
        if update.status and self._writes_for(name):
            stored = await self._write_status(name, update.status)
            if stored is None:
                return None
            self.book.committed(update)
            for event in update.events:
                self._post_event(name, event.type, event.reason, event.message)
            if "revisionHistory" in update.status:
                # A revision just recorded may let instances move: decide again at once.
                self.mark([name])
        for key in update.wake:
            self._wake(key)
        if update.decision.next_check is not None:
            self._due[name] = update.decision.next_check
        return update
