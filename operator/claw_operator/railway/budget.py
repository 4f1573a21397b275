"""A per-token request budget: requests per second and per hour, shared by every caller
that uses the same Railway token, tightened by what Railway itself reports.

Design notes (why it looks like this):
- Railway limits a token, not a client object, so every client of one token must draw
  from one budget: `budget_for(token)` returns the shared one. The registry is keyed by
  an HMAC-SHA256 fingerprint under a per-process random key, so the raw token is never a
  dict key (a heap dump or a debugger listing keys shows nothing usable).
- Each limit is enforced as a sliding window ("at most N requests in any W seconds")
  over the send times of the last requests. That is the token-bucket idea with the
  guarantee made exact: a bucket of N tokens refilled at N/W per second lets up to 2N
  through in some window of W seconds (a full bucket, then its refill), which Railway's
  hourly counter would answer with 429s. The hourly window remembers at most `rph`
  timestamps.
- Callers reserve their send time synchronously (no await between reading and updating
  the state), then sleep until it. Reservation order is call order, so waiting is FIFO
  fair, and there is no asyncio primitive bound to one event loop: a budget from the
  registry works across the event loops of a test suite.
- A 429 with Retry-After pauses every caller: it bumps a generation number, drops the
  reservations not yet used, and every sleeping caller re-reserves when it wakes.
- Priorities (`Priority`): urgent callers (user-visible mutations and the reads of a
  reconcile pass) reserve their send time at once, FIFO among themselves. Polls and
  background reads never reserve ahead: they take a slot only when it is free right now
  and nobody more urgent waits, so they use what the urgent work leaves and never delay it.
- `spread` spaces reservations 1/rps apart, so a second's worth is not sent in one burst
  that an event loop under load could deliver late and bunched into Railway's next second,
  and plans for `SPREAD_HEADROOM` of the per-second limit.
- Railway counts arrivals, not sends, and an arrival lies somewhere between its send and
  its response. Evenly spaced sends still arrive bunched when the network or Railway
  stalls, so with `spread` each request also passes an arrival gate: it starts only while
  fewer than the per-second limit are in flight or answered within the last second.
  Whatever Railway's window, every request arriving in it was then either in flight or
  answered less than a second before the last one of them started, so no second of
  arrivals can exceed the limit (Railway's 429s are ruled out, not made rare). A slow
  answer costs throughput exactly when bunching would otherwise happen.
- `X-RateLimit-Remaining` lower than what the local hourly window would still allow
  means someone else spends this token too (another operator replica, a user's CLI):
  the budget adopts Railway's number until `X-RateLimit-Reset`.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from enum import IntEnum

from cryptography.hazmat.primitives import hashes, hmac

# Railway's Pro tier (shared/railway/README.md, "Rate limits").
DEFAULT_RPS = 50.0
DEFAULT_RPH = 10_000

# Railway's documented per-token limits by plan: (requests per second, requests per hour).
# Free has no per-second limit of its own; its hourly 100 is the binding one.
TIER_LIMITS: dict[str, tuple[float | None, int]] = {
    "free": (None, 100),
    "hobby": (10.0, 1_000),
    "pro": (50.0, 10_000),
}
# A tenant token of unknown plan starts as Hobby; Railway's headers tighten it if needed.
DEFAULT_TIER = "hobby"

SPREAD_HEADROOM = 0.95

Clock = Callable[[], float]


class Priority(IntEnum):
    """Who goes first when the token's budget is short (lower is more urgent)."""

    URGENT = 0  # user-visible mutations and the reads of a reconcile pass
    DEPLOYING_POLL = 1  # batched polls of instances that are deploying
    STEADY_POLL = 2  # batched polls of steady instances
    BACKGROUND = 3  # usage and drift reads


# How long a caller of each priority yields to more urgent ones before it queues with them
# (aging): a poll of deploying instances is tiny next to the work it unblocks, and must not
# wait for a whole creation burst to drain.
MAX_YIELD_SECONDS = {Priority.DEPLOYING_POLL: 2.0, Priority.STEADY_POLL: 30.0, Priority.BACKGROUND: math.inf}


Sleep = Callable[[float], Awaitable[None]]


class _Window:
    """At most `limit` send times in any `length` seconds."""

    def __init__(self, limit: int, length: float) -> None:
        self.limit = limit
        self.length = length
        self.sends: deque[float] = deque()

    def forget_before(self, now: float) -> None:
        while self.sends and self.sends[0] <= now - self.length:
            self.sends.popleft()

    def earliest(self) -> float:
        """The earliest send time that keeps the window within its limit (send times are
        reserved in non-decreasing order, so only the limit-th latest one matters)."""
        if len(self.sends) < self.limit:
            return -math.inf
        return self.sends[-self.limit] + self.length

    def in_use(self, now: float) -> int:
        self.forget_before(now)
        return len(self.sends)


def _per_second_window(rps: float, slack: float) -> _Window:
    # Whole requests per second; below one per second, one per 1/rps seconds. Rounding
    # down never exceeds the configured rate.
    if rps >= 1:
        return _Window(int(rps), 1.0 + slack)
    return _Window(1, 1.0 / rps + slack)


class RateBudget:
    """Shared requests-per-second and requests-per-hour budget of one Railway token.

    `rps`/`rph` None disables that limit. `slack` lengthens the per-second window a
    little, because requests sent one second apart can arrive closer together (network
    jitter); it costs at most 5% of the per-second throughput.
    `clock` (monotonic seconds) and `sleep` are injectable for deterministic tests.
    """

    def __init__(
        self,
        rps: float | None = DEFAULT_RPS,
        rph: int | None = DEFAULT_RPH,
        *,
        slack: float = 0.05,
        spread: bool = False,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._slack = slack
        self._spread = spread
        self._waiting = [0] * len(Priority)
        self._answered: deque[float] = deque()  # when recent answers came, when spread
        self._second: _Window | None = None
        self._hour: _Window | None = None
        self.configure(rps=rps, rph=rph)
        self._last_reserved = -math.inf
        self._paused_until = -math.inf
        self._generation = 0
        self._in_flight = 0
        # Railway's own view of the hourly budget, when tighter than ours.
        self._server_remaining: int | None = None
        self._server_reset = -math.inf

    def configure(self, *, rps: float | None, rph: int | None) -> None:
        """Change the limits, keeping the send history (e.g. the plan's tier changed)."""
        if (rps is not None and rps <= 0) or (rph is not None and rph <= 0):
            raise ValueError("rate limits must be positive (or None for no limit)")
        old = [w for w in (self._second, self._hour) if w is not None]
        history = max(old, key=lambda w: len(w.sends)).sends if old else deque()
        self.rps, self.rph = rps, rph
        planned = rps * SPREAD_HEADROOM if rps is not None and self._spread else rps
        self._second = _per_second_window(planned, self._slack) if planned is not None else None
        self._hour = _Window(rph, 3600.0) if rph is not None else None
        for window in self._windows:
            window.sends = deque(history)

    @property
    def _windows(self) -> list[_Window]:
        return [w for w in (self._second, self._hour) if w is not None]

    @property
    def paused_until(self) -> float:
        return self._paused_until

    @property
    def _spacing(self) -> float:
        return 1.0 / (self.rps * SPREAD_HEADROOM) if self._spread and self.rps else 0.0

    def _earliest(self, now: float) -> float:
        send_at = max(now, self._last_reserved + self._spacing, self._paused_until)
        for window in self._windows:
            window.forget_before(now)
            send_at = max(send_at, window.earliest())
        return send_at

    def _reserve(self) -> tuple[float, int]:
        now = self._clock()
        send_at = self._earliest(now)
        if self._server_remaining is not None:
            if send_at >= self._server_reset:
                self._server_remaining = None
            elif self._server_remaining <= 0:
                send_at = self._server_reset
                self._server_remaining = None
            else:
                self._server_remaining -= 1
        for window in self._windows:
            window.sends.append(send_at)
        self._last_reserved = send_at
        return send_at, self._generation

    async def acquire(self, priority: Priority = Priority.URGENT) -> None:
        """Wait for this caller's turn to send one request."""
        if priority != Priority.URGENT:
            await self._acquire_leftover(priority)
            return
        while True:
            send_at, generation = self._reserve()
            delay = send_at - self._clock()
            if delay > 0:
                await self._sleep(delay)
            if generation == self._generation:
                return
            # A pause began while we slept: our reserved time is no longer valid.

    async def _acquire_leftover(self, priority: Priority) -> None:
        """A slot that is free now, taken only when no more urgent caller waits for one."""
        self._waiting[priority] += 1
        give_up = self._clock() + MAX_YIELD_SECONDS[priority]
        try:
            while True:
                now = self._clock()
                if now >= give_up:
                    break
                earliest = self._earliest(now)
                urgent_waiting = any(self._waiting[p] for p in range(1, priority))
                if earliest <= now and not urgent_waiting and self._server_allows(now):
                    self._reserve()
                    return
                # Wake when a slot frees up; a more urgent waiter wakes at the same moment
                # and goes first, so yield a little longer to it.
                pause = max(earliest - now, self._spacing, 0.01) * (2 if urgent_waiting else 1)
                if not self._server_allows(now):
                    pause = max(pause, self._server_reset - now)
                await self._sleep(min(pause, max(0.0, give_up - now)) or pause)
        finally:
            self._waiting[priority] -= 1
        await self.acquire(Priority.URGENT)

    def _server_allows(self, now: float) -> bool:
        return self._server_remaining is None or now >= self._server_reset or self._server_remaining > 0

    def _arrival_limit(self) -> tuple[int, float] | None:
        """(requests, seconds) that Railway's per-second limit allows to arrive."""
        if self.rps is None:
            return None
        return (int(self.rps), 1.0) if self.rps >= 1 else (1, 1.0 / self.rps)

    async def _pass_arrival_gate(self) -> None:
        """Wait until fewer than the limit are in flight or answered within its window
        (see the module notes: this bounds arrivals, however late they land)."""
        limit = self._arrival_limit()
        if limit is None:
            return
        count, length = limit
        while True:
            now = self._clock()
            while self._answered and self._answered[0] <= now - length:
                self._answered.popleft()
            if self._in_flight + len(self._answered) < count:
                return
            if self._answered:
                await self._sleep(self._answered[0] + length - now)
            else:
                # All of the limit is in flight: the first answer frees a place.
                await self._sleep(min(0.01, length))

    @asynccontextmanager
    async def slot(self, priority: Priority = Priority.URGENT) -> AsyncIterator[None]:
        """`async with budget.slot(): send()`: acquire, and count the request in flight
        until its response is in (so server headers can be read against it)."""
        await self.acquire(priority)
        if self._spread:
            await self._pass_arrival_gate()
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._spread:
                self._answered.append(self._clock())

    def pause(self, seconds: float) -> None:
        """Railway said 429 with Retry-After: nobody sends until then."""
        now = self._clock()
        until = now + max(0.0, seconds)
        if until <= self._paused_until:
            return
        self._paused_until = until
        self._generation += 1
        # Reservations after now belong to callers still asleep; they re-reserve on
        # waking (their generation is stale), so their old times must not count.
        for window in self._windows:
            while window.sends and window.sends[-1] > now:
                window.sends.pop()
        self._last_reserved = min(self._last_reserved, now)

    def observe_server(self, *, remaining: int, reset_in: float) -> None:
        """Railway's X-RateLimit-Remaining / X-RateLimit-Reset, read from a response.

        Call it inside the `slot()` of that response: the other requests in flight may
        not be in Railway's count yet, so they are subtracted from it (pessimistic)."""
        now = self._clock()
        others_in_flight = max(0, self._in_flight - 1)
        remaining = max(0, remaining - others_in_flight)
        local = self._hour.limit - self._hour.in_use(now) if self._hour is not None else math.inf
        if remaining >= local:
            return
        reset_at = now + max(0.0, reset_in)
        if self._server_remaining is not None and now < self._server_reset:
            # Responses arrive out of order; the lowest count seen for a window is the truth.
            remaining = min(remaining, self._server_remaining)
            reset_at = max(reset_at, self._server_reset)
        self._server_remaining = remaining
        self._server_reset = reset_at

    def hourly_budget(self) -> tuple[float, float]:
        """(requests left this hour, the hourly limit), for the rate-budget metrics;
        Railway's own count wins when it is lower. Without an hourly limit: (inf, inf)."""
        now = self._clock()
        if self._hour is None:
            return math.inf, math.inf
        self._hour.forget_before(now)
        left: float = self._hour.limit - len(self._hour.sends)
        if self._server_remaining is not None and now < self._server_reset:
            left = min(left, self._server_remaining)
        return max(0.0, left), float(self._hour.limit)

    def available_now(self) -> int | float:
        """How many requests could start right now without waiting (for metrics)."""
        now = self._clock()
        if now < self._paused_until:
            return 0
        free: list[int | float] = [math.inf]
        for window in self._windows:
            window.forget_before(now)
            future = sum(1 for t in window.sends if t > now)
            free.append(0 if future else window.limit - len(window.sends))
        if self._server_remaining is not None and now < self._server_reset:
            free.append(self._server_remaining)
        return max(0, min(free))


_REGISTRY_KEY = os.urandom(32)
_registry: dict[str, RateBudget] = {}


def token_fingerprint(token: str) -> str:
    """HMAC-SHA256 of the token under a per-process key: stable within the process,
    useless outside it."""
    mac = hmac.HMAC(_REGISTRY_KEY, hashes.SHA256())
    mac.update(token.encode())
    return mac.finalize().hex()


def budget_for(
    token: str, *, rps: float | None = DEFAULT_RPS, rph: int | None = DEFAULT_RPH, spread: bool = False
) -> RateBudget:
    """The one budget shared by every client of this token in this process. Asking again
    with other limits reconfigures it (a plan moved to another tier), keeping its history."""
    key = token_fingerprint(token)
    budget = _registry.get(key)
    if budget is None:
        budget = _registry[key] = RateBudget(rps=rps, rph=rph, spread=spread)
    elif (budget.rps, budget.rph) != (rps, rph):
        budget.configure(rps=rps, rph=rph)
    return budget


def parse_tier(text: str | None) -> str:
    """A token Secret's `tier` value as one of TIER_LIMITS' keys; empty or None is the default."""
    if text is None or not text.strip():
        return DEFAULT_TIER
    tier = text.strip().lower()
    if tier not in TIER_LIMITS:
        raise ValueError(f"tier {text.strip()!r} is not one of {', '.join(TIER_LIMITS)}")
    return tier


def budget_for_tier(token: str, tier: str | None, *, spread: bool = False) -> RateBudget:
    """The shared budget of a tenant token, sized by its Railway plan (`free`, `hobby`,
    `pro`; None means the default). Railway's rate-limit headers tighten it further."""
    rps, rph = TIER_LIMITS[parse_tier(tier)]
    return budget_for(token, rps=rps, rph=rph, spread=spread)
