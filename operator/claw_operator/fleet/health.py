"""HTTP health probes of instances' public domains: one probe, and the fleet's pool."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from claw_operator.api.models import HealthCheck
from claw_operator.support import metrics
from claw_operator.support.wake import wait_or_timeout


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    error: str  # short, no response bodies (they may echo anything)
    latency_seconds: float


def health_url(template: str, domain: str, path: str) -> str:
    return template.format(domain=domain, path=path)


# GET `url` within so many seconds and answer the status code; raises TimeoutError, or
# OSError / aiohttp.ClientError when no answer could be had.
Get = Callable[[str, float], Awaitable[int]]

# Health endpoints answer a few bytes; a larger body is not read (the connection is then
# closed instead of reused, which is fine for an endpoint that misbehaves).
BODY_LIMIT = 64 * 1024
# Connections kept to health endpoints by a session of our own (unless told otherwise).
CONNECTIONS = 32
# The prober pool's timer hands out due probes at most this often.
PROBE_TICK_SECONDS = 0.25


class PooledGet:
    """GETs over one pooled aiohttp session. Probes are the operator's most frequent HTTP
    (one per instance per interval); aiohttp costs about a tenth of httpx's CPU per
    request (bench/probe_cost.py), and it comes with Kopf."""

    def __init__(self, limit: int = CONNECTIONS) -> None:
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, url: str, within: float) -> int:
        if self._session is None:
            # Made on first use: a session belongs to the running event loop.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit), cookie_jar=aiohttp.DummyCookieJar()
            )
        async with self._session.get(
            url, timeout=aiohttp.ClientTimeout(total=within), allow_redirects=False
        ) as response:
            await response.content.read(BODY_LIMIT)
            return response.status

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _get_or_own(get: Get | None, limit: int) -> tuple[Get, PooledGet | None]:
    """The caller's GET, or a pooled session of our own (which we then close)."""
    if get is not None:
        return get, None
    own = PooledGet(limit=limit)
    return own, own


async def probe(get: Get, url: str, timeout_seconds: float) -> ProbeResult:
    started = time.monotonic()
    try:
        status = await get(url, timeout_seconds)
    except TimeoutError:
        return ProbeResult(False, f"no answer within {timeout_seconds:g}s", timeout_seconds)
    except (OSError, aiohttp.ClientError) as exc:
        return ProbeResult(False, f"connection failed ({type(exc).__name__})", 0.0)
    latency = time.monotonic() - started
    if 200 <= status < 400:
        return ProbeResult(True, "", latency)
    return ProbeResult(False, f"HTTP {status}", latency)


class HealthProber:
    """Probes instances' health endpoints over one pooled HTTP session. The only HTTP the
    operator speaks outside the Railway client."""

    def __init__(self, url_template: str, get: Get | None = None) -> None:
        self._template = url_template
        self._get, self._own = _get_or_own(get, limit=CONNECTIONS)

    async def probe(self, url: str, path: str, timeout_seconds: float) -> ProbeResult:
        """Probe `path` on the instance serving at `url` (its public https URL)."""
        domain = url.removeprefix("https://").removeprefix("http://")
        result = await probe(self._get, health_url(self._template, domain, path), timeout_seconds)
        metrics.health_probe(result.ok)
        return result

    async def aclose(self) -> None:
        if self._own is not None:
            await self._own.aclose()


class InlineHealth:
    """HealthPort without a background pool: probes on the reconcile's own turn, when the
    check's interval has elapsed since the last probe of that key."""

    def __init__(self, prober: HealthProber, clock: Callable[[], float] = time.monotonic) -> None:
        self._prober = prober
        self._clock = clock
        self._last: dict[str, float] = {}

    async def probe_if_due(self, key: str, url: str, check: HealthCheck) -> ProbeResult | None:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < check.intervalSeconds:
            return None
        self._last[key] = now
        return await self._prober.probe(url, check.path, check.timeoutSeconds)

    def forget(self, key: str) -> None:
        self._last.pop(key, None)

    async def aclose(self) -> None:
        await self._prober.aclose()


@dataclass
class _Target:
    url: str
    check: HealthCheck
    due: float
    result: ProbeResult | None = None
    serial: int = 0  # results produced so far
    handed: int = 0  # the serial last handed to the controller
    handed_ok: bool | None = None
    failures: int = 0  # consecutive failures, to know when more of them stop mattering


class ProberPool:
    """Background health probes of the whole fleet (the HealthPort of the controller).

    Each instance is probed at its plan's interval with jitter, by a fixed number of
    worker tasks (bounded concurrency, however large the fleet). The controller asks
    `probe_if_due()` on its passes and gets the newest result it has not seen yet. The
    pool asks the engine for a pass (`on_result(key)`) only when a result would change
    what status says: health turned, or another failure counts towards failureThreshold.
    A healthy fleet therefore causes no pass and no status write."""

    def __init__(
        self,
        url_template: str,
        *,
        on_result: Callable[[str], None],
        concurrency: int = 32,
        get: Get | None = None,
        tick: float = PROBE_TICK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._template = url_template
        self._on_result = on_result
        self._concurrency = concurrency
        self._tick = tick
        self._get, self._own = _get_or_own(get, limit=concurrency)
        self._clock = clock
        self._rng = rng or random.Random()
        self._targets: dict[str, _Target] = {}
        self._due: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._ready: asyncio.Queue[str] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.probes = 0

    def start(self) -> None:
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._probe_loop(), name=f"claw-probe-{n}") for n in range(self._concurrency)
        ]
        self._tasks.append(asyncio.create_task(self._timer(), name="claw-probe-timer"))

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._own is not None:
            await self._own.aclose()

    # ------------------------------------------------------------------ HealthPort
    async def probe_if_due(self, key: str, url: str, check: HealthCheck) -> ProbeResult | None:
        target = self._targets.get(key)
        if target is None or target.url != url:
            # A new target is probed right here, so the pass that made it servable can say
            # whether it is healthy (one status write, not two); the pool takes it from there.
            target = _Target(url=url, check=check, due=math.inf)
            self._targets[key] = target
            self.start()
            result = await self._probe(target)
            if self._targets.get(key) is target:
                self._record(key, target, result)
                target.handed, target.handed_ok = target.serial, result.ok
            return result
        if target.check != check:
            target.check = check  # the next probe uses the plan's new settings
        if target.result is None or target.serial == target.handed:
            return None
        target.handed = target.serial
        target.handed_ok = target.result.ok
        return target.result

    def forget(self, key: str) -> None:
        self._targets.pop(key, None)

    @property
    def targets(self) -> int:
        return len(self._targets)

    # ------------------------------------------------------------------ internals
    def _schedule(self, key: str, due: float) -> None:
        heapq.heappush(self._due, (due, next(self._seq), key))
        if self._due[0][2] == key:
            self._wake.set()

    def _matters(self, target: _Target, result: ProbeResult) -> bool:
        if target.handed_ok is None or result.ok != target.handed_ok:
            return True
        return not result.ok and target.failures <= target.check.failureThreshold

    async def _probe(self, target: _Target) -> ProbeResult:
        domain = target.url.removeprefix("https://").removeprefix("http://")
        url = health_url(self._template, domain, target.check.path)
        self.probes += 1
        result = await probe(self._get, url, target.check.timeoutSeconds)
        metrics.health_probe(result.ok)
        return result

    def _record(self, key: str, target: _Target, result: ProbeResult) -> None:
        target.failures = 0 if result.ok else target.failures + 1
        target.result, target.serial = result, target.serial + 1
        target.due = self._clock() + target.check.intervalSeconds * self._rng.uniform(0.9, 1.1)
        self._schedule(key, target.due)

    async def _probe_loop(self) -> None:
        while True:
            key = await self._ready.get()
            target = self._targets.get(key)
            if target is None:
                continue
            result = await self._probe(target)
            if self._targets.get(key) is not target:
                continue  # forgotten or re-pointed meanwhile
            self._record(key, target, result)
            if self._matters(target, result):
                self._on_result(key)
            else:
                target.handed = target.serial  # nothing new for status: not worth a pass

    async def _timer(self) -> None:
        while True:
            now = self._clock()
            while self._due and self._due[0][0] <= now:
                due, _seq, key = heapq.heappop(self._due)
                target = self._targets.get(key)
                if target is not None and target.due == due:
                    self._ready.put_nowait(key)
            self._wake.clear()
            # Due times carry ±10% jitter anyway: waking at most once a tick (not once per
            # probe, some 17 times a second at 1,000 instances) costs nothing in accuracy.
            timeout = max(self._due[0][0] - now, self._tick) if self._due else None
            await wait_or_timeout(self._wake, timeout)
