"""Counts of Railway requests by operation and outcome.

One count per HTTP request actually sent (a retried call counts each attempt), because
that is what Railway's rate limit counts; retries are counted again on their own so a
reader can tell "many calls" from "few calls retried often". Metrics and benchmarks read
`snapshot()`; nothing here is ever sent anywhere by this package.
"""

from __future__ import annotations

from collections import Counter
from enum import StrEnum
from typing import Any

from claw_operator.support import metrics


class Outcome(StrEnum):
    """How one HTTP request to Railway ended."""

    OK = "ok"
    RETRYABLE = "retryable"
    RATE_LIMITED = "rate_limited"
    AUTH = "auth"
    NOT_FOUND = "not_found"
    INVALID = "invalid"


class Accounting:
    """Request counters. Single-threaded asyncio use only: increments never await, so
    concurrent tasks on one event loop cannot interleave inside them."""

    def __init__(self) -> None:
        self._requests: Counter[tuple[str, Outcome]] = Counter()
        self._retries: Counter[str] = Counter()

    def record(self, operation: str, outcome: Outcome) -> None:
        self._requests[operation, outcome] += 1
        metrics.railway_request(operation, outcome.value)

    def record_retry(self, operation: str) -> None:
        self._retries[operation] += 1

    def count(self, operation: str | None = None, outcome: Outcome | None = None) -> int:
        """Requests matching the operation and/or outcome (None matches all)."""
        return sum(
            n
            for (op, out), n in self._requests.items()
            if (operation is None or op == operation) and (outcome is None or out == outcome)
        )

    @property
    def total(self) -> int:
        return sum(self._requests.values())

    def retries(self, operation: str | None = None) -> int:
        if operation is None:
            return sum(self._retries.values())
        return self._retries[operation]

    def snapshot(self) -> dict[str, Any]:
        """A plain, JSON-ready copy:
        {"total": n, "retries": n, "by_outcome": {outcome: n},
         "by_operation": {operation: {outcome: n}}, "retries_by_operation": {operation: n}}."""
        by_operation: dict[str, dict[str, int]] = {}
        by_outcome: dict[str, int] = {outcome.value: 0 for outcome in Outcome}
        for (operation, outcome), n in sorted(self._requests.items()):
            by_operation.setdefault(operation, {})[outcome.value] = n
            by_outcome[outcome.value] += n
        return {
            "total": self.total,
            "retries": self.retries(),
            "by_outcome": by_outcome,
            "by_operation": by_operation,
            "retries_by_operation": dict(sorted(self._retries.items())),
        }

    def reset(self) -> None:
        self._requests.clear()
        self._retries.clear()
