"""Usage figures of one instance (API.md, status.usage) from Railway's numbers, and the
rule for when they are worth a status write.

Units: `cpu` is vCPUs in use and `memoryGB` GB in use, each the average of the samples
of the sampling period; `networkEgressGB` the GB sent over the last 30 days (the sum of
the samples, each holding what was sent during its interval); `estimatedCostUSD` is
Railway's `estimatedUsage` for the billing period priced at Railway's published rates
(the estimate counts CPU in vCPU-minutes, memory in GB-minutes, egress in GB).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# A figure must move by this fraction before status is rewritten (API.md).
MOVE_THRESHOLD = 0.05
# Railway's rates (docs.railway.com pricing): $20/vCPU/month and $10/GB/month billed per
# minute, egress $0.05/GB.
PRICE_USD: Mapping[str, float] = {
    "CPU_USAGE": 0.000463,
    "MEMORY_USAGE_GB": 0.000231,
    "NETWORK_TX_GB": 0.05,
}
# status.usage field names, in API.md's order.
FIGURES = ("cpu", "memoryGB", "networkEgressGB", "estimatedCostUSD")


@dataclass(frozen=True)
class UsageFigures:
    cpu: float | None = None
    memory_gb: float | None = None
    network_egress_gb: float | None = None
    estimated_cost_usd: float | None = None

    def as_status(self) -> dict[str, float | None]:
        """The figures under status.usage's field names."""
        return {
            "cpu": self.cpu,
            "memoryGB": self.memory_gb,
            "networkEgressGB": self.network_egress_gb,
            "estimatedCostUSD": self.estimated_cost_usd,
        }


def average(values: Iterable[float]) -> float | None:
    samples = list(values)
    return round(sum(samples) / len(samples), 4) if samples else None


def total(values: Iterable[float]) -> float | None:
    samples = list(values)
    return round(sum(samples), 4) if samples else None


def cost_usd(estimates: Mapping[str, float]) -> float | None:
    """Railway's billing-period estimate (measurement -> value) in dollars; None when no
    priced measurement is present."""
    priced = [value * PRICE_USD[m] for m, value in estimates.items() if m in PRICE_USD]
    return round(sum(priced), 2) if priced else None


def moved(old: Mapping[str, Any] | None, new: Mapping[str, Any], threshold: float = MOVE_THRESHOLD) -> bool:
    """True when some figure of `new` differs from `old` (status.usage as written, or
    None) by at least `threshold` of the old value. A figure missing from `new` keeps the
    old one (nothing to say), a figure appearing for the first time counts as moved."""
    previous = old or {}
    for name in FIGURES:
        after = new.get(name)
        if not isinstance(after, int | float):
            continue
        before = previous.get(name)
        if not isinstance(before, int | float):
            return True
        if before == 0:
            if after != 0:
                return True
            continue
        if abs(after - before) >= threshold * abs(before):
            return True
    return False


def usage_to_write(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], threshold: float = MOVE_THRESHOLD
) -> dict[str, Any] | None:
    """status.usage to write for a sample `new`, or None when no figure `moved`. A figure
    the sample lacks (Railway reported nothing for it this period) keeps its old value:
    a gap in Railway's answer is not a reason to erase what status showed."""
    if not moved(old, new, threshold):
        return None
    written = dict(new)
    for name in FIGURES:
        before = (old or {}).get(name)
        if not isinstance(new.get(name), int | float) and isinstance(before, int | float):
            written[name] = before
    return written
