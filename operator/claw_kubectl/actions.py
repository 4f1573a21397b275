"""The imperative verbs as the merge patches the operator acts on (API.md: annotations
stamped with a time, `spec.suspend`, `claw.io/paused`), and `wait`."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from claw_operator.api.models import (
    PAUSED_ANNOTATION,
    REDEPLOY_REQUESTED_AT_ANNOTATION,
    RESTARTED_AT_ANNOTATION,
    ROLLOUT_RESUMED_AT_ANNOTATION,
)
from claw_operator.support.clock import now_rfc3339

Obj = dict[str, Any]


def _annotate(key: str, value: str | None) -> Obj:
    return {"metadata": {"annotations": {key: value}}}


def patch_for(verb: str, now: datetime | None = None) -> Obj:
    stamp = now_rfc3339(now or datetime.now(UTC))
    patches: dict[str, Obj] = {
        "restart": _annotate(RESTARTED_AT_ANNOTATION, stamp),
        "redeploy": _annotate(REDEPLOY_REQUESTED_AT_ANNOTATION, stamp),
        "suspend": {"spec": {"suspend": True}},
        "resume": {"spec": {"suspend": False}},
        "pause": _annotate(PAUSED_ANNOTATION, "true"),
        "unpause": _annotate(PAUSED_ANNOTATION, None),
    }
    return patches[verb]


def resume_rollout_patch(now: datetime | None = None) -> Obj:
    """For a ClawPlan whose rollout halted: the operator resumes it once per new time."""
    return _annotate(ROLLOUT_RESUMED_AT_ANNOTATION, now_rfc3339(now or datetime.now(UTC)))


DONE_MESSAGES = {
    "restart": "restart requested",
    "redeploy": "redeploy requested",
    "suspend": "suspended",
    "resume": "resumed",
    "pause": "paused (the operator leaves it alone until unpaused)",
    "unpause": "unpaused",
}


def parse_for(expression: str) -> tuple[str, str]:
    """`condition=Ready` or `condition=Ready=False` -> (type, wanted status)."""
    kind, _, rest = expression.partition("=")
    if kind != "condition" or not rest:
        raise ValueError(
            f"--for={expression!r}: use condition=TYPE or condition=TYPE=STATUS, e.g. condition=Ready"
        )
    type_, _, wanted = rest.partition("=")
    return type_, wanted or "True"


def condition_met(obj: Obj, type_: str, wanted: str) -> bool:
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    for condition in status.get("conditions") or []:
        if condition.get("type") != type_:
            continue
        observed = condition.get("observedGeneration")
        # A condition about an older spec does not answer for the current one.
        if generation is not None and observed is not None and observed < generation:
            return False
        return str(condition.get("status")).lower() == wanted.lower()
    return False


def wait_for(
    read: Callable[[], Obj],
    type_: str,
    wanted: str,
    timeout: float,
    *,
    interval: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Obj | None:
    """Poll until the condition holds (the object) or `timeout` passes (None)."""
    deadline = clock() + timeout
    while True:
        obj = read()
        if condition_met(obj, type_, wanted):
            return obj
        left = deadline - clock()
        if left <= 0:
            return None
        sleep(min(interval, left))


def parse_duration(text: str) -> float:
    """kubectl's durations: 30s, 5m, 1h, or plain seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise ValueError(f"--timeout={text!r} is not a duration; use e.g. 30s, 5m or 1h") from None
