"""Railway's per-token rate limits: a requests-per-hour budget and, on paid tiers, a
requests-per-second cap. Fixed windows keep the arithmetic predictable for tests: the hour
window opens with a token's first request and `X-RateLimit-Reset` names its end."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class RateTier:
    name: str
    per_hour: int
    per_second: int | None = None


TIERS: dict[str, RateTier] = {
    "free": RateTier("free", 100, None),
    "hobby": RateTier("hobby", 1000, 10),
    "pro": RateTier("pro", 10000, 50),
}


def parse_tier(text: str) -> RateTier:
    """`free`, `hobby`, `pro`, or custom numbers `PER_HOUR[/PER_SECOND]` (e.g. `60/2`)."""
    lowered = text.strip().lower()
    if lowered in TIERS:
        return TIERS[lowered]
    hour, _, second = lowered.partition("/")
    try:
        return RateTier("custom", int(hour), int(second) if second else None)
    except ValueError:
        raise ValueError(f"rate tier {text!r} is not free, hobby, pro or PER_HOUR[/PER_SECOND]") from None


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # epoch seconds when the hourly window ends
    retry_after: float  # seconds; 0 when allowed

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return headers


@dataclass
class TokenBudget:
    tier: RateTier
    hour_start: float | None = None
    hour_used: int = 0
    second_start: float | None = None
    second_used: int = 0

    def take(self, now: float) -> Verdict:
        """Count one request if the budget allows it; a refused request costs nothing."""
        if self.hour_start is None or now >= self.hour_start + 3600:
            self.hour_start, self.hour_used = now, 0
        if self.second_start is None or now >= self.second_start + 1:
            self.second_start, self.second_used = now, 0
        reset_at = self.hour_start + 3600
        if self.hour_used >= self.tier.per_hour:
            return Verdict(False, self.tier.per_hour, 0, reset_at, reset_at - now)
        if self.tier.per_second is not None and self.second_used >= self.tier.per_second:
            remaining = self.tier.per_hour - self.hour_used
            return Verdict(False, self.tier.per_hour, remaining, reset_at, self.second_start + 1 - now)
        self.hour_used += 1
        self.second_used += 1
        return Verdict(True, self.tier.per_hour, self.tier.per_hour - self.hour_used, reset_at, 0.0)
