"""HTTP health probe of an instance's public domain."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from claw_operator.api.models import HealthCheck
from claw_operator.support import metrics


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    error: str  # short, no response bodies (they may echo anything)
    latency_seconds: float


def health_url(template: str, domain: str, path: str) -> str:
    return template.format(domain=domain, path=path)


async def probe(client: httpx.AsyncClient, url: str, timeout_seconds: float) -> ProbeResult:
    try:
        response = await client.get(url, timeout=timeout_seconds, follow_redirects=False)
    except httpx.TimeoutException:
        return ProbeResult(False, f"no answer within {timeout_seconds:g}s", timeout_seconds)
    except httpx.HTTPError as exc:
        return ProbeResult(False, f"connection failed ({type(exc).__name__})", 0.0)
    latency = response.elapsed.total_seconds() if response.is_closed else 0.0
    if 200 <= response.status_code < 400:
        return ProbeResult(True, "", latency)
    return ProbeResult(False, f"HTTP {response.status_code}", latency)


class HealthProber:
    """Probes instances' health endpoints over one pooled HTTP client. The only HTTP the
    operator speaks outside the Railway client."""

    def __init__(self, url_template: str, client: httpx.AsyncClient | None = None) -> None:
        self._template = url_template
        self._client = client or httpx.AsyncClient()

    async def probe(self, url: str, path: str, timeout_seconds: float) -> ProbeResult:
        """Probe `path` on the instance serving at `url` (its public https URL)."""
        domain = url.removeprefix("https://").removeprefix("http://")
        result = await probe(self._client, health_url(self._template, domain, path), timeout_seconds)
        metrics.health_probe(result.ok)
        return result

    async def aclose(self) -> None:
        await self._client.aclose()


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
