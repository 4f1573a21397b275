"""ClawPlan status: how many instances use a plan, and whether the plan is valid."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from claw_operator.api import conditions as c
from claw_operator.controller.errors import Terminal
from claw_operator.controller.resolve import parse_plan
from claw_operator.support.clock import now_rfc3339


def plan_status(
    name: str,
    spec: dict[str, Any],
    status: dict[str, Any],
    instances: int,
    generation: Any,
    now: datetime,
    more: Sequence[c.Cond] = (),
) -> dict[str, Any]:
    """Only what differs from `status` (empty when nothing changed, so nothing is written).
    `more`: the plan's other conditions (RolloutComplete), set in the same write."""
    try:
        parse_plan(name, spec)
        valid = c.true(c.VALID, c.PlanReason.VALID, "The plan's source is set and its fields are valid.")
    except Terminal as problem:
        valid = c.false(c.VALID, problem.reason, problem.message)
    conditions = c.merge(
        status.get("conditions"), [valid, *more], generation=generation, now=now_rfc3339(now)
    )
    wanted = {"instances": instances, "observedGeneration": generation, "conditions": conditions}
    return {k: v for k, v in wanted.items() if status.get(k) != v}
