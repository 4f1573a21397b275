"""Deployment status -> progress, and how long a deployment is likely to take."""

from __future__ import annotations

from collections import defaultdict, deque
from datetime import datetime

PROGRESS = {
    "QUEUED": 5,
    "WAITING": 5,
    "NEEDS_APPROVAL": 5,
    "INITIALIZING": 10,
    "BUILDING": 30,
    "DEPLOYING": 70,
    "SUCCESS": 100,
    "SLEEPING": 100,
    "FAILED": 0,
    "CRASHED": 0,
    "REMOVING": 0,
    "REMOVED": 0,
    "SKIPPED": 0,
}
IN_PROGRESS = frozenset({"QUEUED", "WAITING", "NEEDS_APPROVAL", "INITIALIZING", "BUILDING", "DEPLOYING"})
FINISHED = frozenset({"SUCCESS", "SLEEPING", "FAILED", "CRASHED", "REMOVING", "REMOVED", "SKIPPED"})
# Typical Railway image deploys take a couple of minutes; used until a plan has history.
DEFAULT_DURATION_SECONDS = 120.0


def progress_of(status: str | None) -> int | None:
    return PROGRESS.get(status) if status else None


class DurationEstimator:
    """Recent successful deploy durations per plan. An estimate, not state: losing it on
    restart only makes the next estimates use the default."""

    def __init__(self, window: int = 20) -> None:
        self._samples: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=window))

    def record(self, plan: str, seconds: float) -> None:
        if seconds > 0:
            self._samples[plan].append(seconds)

    def expected(self, plan: str) -> float:
        samples = sorted(self._samples.get(plan, ()))
        return samples[len(samples) // 2] if samples else DEFAULT_DURATION_SECONDS

    def remaining(self, plan: str, started: datetime | None, now: datetime) -> int:
        if started is None:
            return int(self.expected(plan))
        return max(0, int(self.expected(plan) - (now - started).total_seconds()))
