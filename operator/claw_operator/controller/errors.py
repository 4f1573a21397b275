"""The two ways a reconcile pass ends early, typed (as ACK's `requeue.NeededAfter` and
terminal errors).

- `Terminal`: a person must change the spec, the plan or a referenced Secret. Not retried:
  Railway is not called again until `metadata.generation` or the fingerprint of those
  inputs changes (kept in `status.applied.inputs`).
- `RequeueAfter`: Railway failed in a way worth trying again after `delay` seconds.

Both carry the Synced reason and one sentence for the user (never a secret value).
"""

from __future__ import annotations

from claw_operator.api.conditions import Reason


class Terminal(Exception):
    """The instance cannot be applied until a person changes something."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class RequeueAfter(Exception):
    """Try again after `delay` seconds; Synced says why."""

    def __init__(self, reason: str, message: str, delay: float) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.delay = delay


# Synced reasons a pass may end with that need a person: Railway is not asked again for them
# until the generation or the inputs change. (Resolve-time problems never reach Railway.)
TERMINAL_RAILWAY_REASONS = frozenset({Reason.INVALID_SPEC, Reason.RAILWAY_AUTH_FAILED})


def backoff(failures: dict[str, int], key: str, hint: float | None = None) -> float:
    """Exponential backoff per object (2s doubling, at most 5 minutes), or the server's hint."""
    attempts = failures.get(key, 0) + 1
    failures[key] = attempts
    delay: float = min(300.0, 2.0 * 2.0 ** min(attempts, 8))
    return max(delay, float(hint or 0.0))
