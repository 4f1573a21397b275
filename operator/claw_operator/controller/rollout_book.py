"""The rollouts of every plan, kept current from the watches: the instances of each plan
as the rollout sees them, each plan's last decision, and the gate (`plan_for`) the
reconciler asks which plan spec an instance applies. No I/O: the k8s layer feeds it
watch events, writes the plan status it computes, posts its events and reconciles the
instances it names.

Nothing here is needed after a restart: the plan's status (rollout memory, revision
history) and the instances' statuses rebuild it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from claw_operator.api.models import ROLLOUT_RESUMED_AT_ANNOTATION
from claw_operator.controller.plan_status import plan_status
from claw_operator.controller.ports import PlanChoice
from claw_operator.controller.rollout import (
    InstanceView,
    PlanEvent,
    PlanView,
    RolloutDecision,
    choose,
    history_after,
    instance_view,
    plan_rollout,
)
from claw_operator.rules.revision import plan_revision
from claw_operator.support.clock import parse_time


@dataclass
class PlanUpdate:
    """What one decision changes: the plan status fields that differ from what is stored,
    the events to post once they are written, and the instances to reconcile now."""

    plan: str
    decision: RolloutDecision
    status: dict[str, Any]
    events: list[PlanEvent]
    wake: tuple[str, ...]


@dataclass
class _Plan:
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    annotations: Mapping[str, str]
    generation: int | None = None


@dataclass
class RolloutBook:
    # Set by the k8s layer once every plan and instance has been fed (the watches listed
    # them): a decision over part of a fleet could declare a rollout Complete too early.
    primed: bool = False
    _plans: dict[str, _Plan] = field(default_factory=dict)
    _views: dict[str, dict[str, InstanceView]] = field(default_factory=dict)  # plan -> key -> view
    _plan_of: dict[str, str] = field(default_factory=dict)  # key -> plan
    _decisions: dict[str, RolloutDecision] = field(default_factory=dict)
    # The rollout status and history last written for a plan (newer than the watch may be).
    _committed: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = field(default_factory=dict)
    # plan -> (revision, instances told to apply it)
    _handed: dict[str, tuple[str, set[str]]] = field(default_factory=dict)

    # ------------------------------------------------------------ feeding
    def set_plan(self, name: str, body: Mapping[str, Any]) -> bool:
        """A plan as the watch sees it; True when its rollout may have changed."""
        meta = body.get("metadata") or {}
        plan = _Plan(
            dict(body.get("spec") or {}),
            dict(body.get("status") or {}),
            dict(meta.get("annotations") or {}),
            meta.get("generation"),
        )
        before = self._plans.get(name)
        self._plans[name] = plan
        return (
            before is None
            or before.spec != plan.spec
            or before.annotations.get(ROLLOUT_RESUMED_AT_ANNOTATION)
            != plan.annotations.get(ROLLOUT_RESUMED_AT_ANNOTATION)
            or _memory(before.status) != _memory(plan.status)
            # A revision recorded by another replica lets instances move here too.
            or before.status.get("revisionHistory") != plan.status.get("revisionHistory")
        )

    def drop_plan(self, name: str) -> None:
        for table in (self._plans, self._decisions, self._committed, self._handed):
            table.pop(name, None)  # type: ignore[attr-defined]

    def set_instance(self, body: Mapping[str, Any]) -> set[str]:
        """An instance as the watch sees it; the plans whose rollout may have changed."""
        view = instance_view(body)
        plan = str((body.get("spec") or {}).get("planRef", ""))
        touched: set[str] = set()
        old_plan = self._plan_of.get(view.key)
        if old_plan is not None and old_plan != plan:
            touched |= self.drop_instance(view.key)
        views = self._views.setdefault(plan, {})
        if views.get(view.key) != view:
            views[view.key] = view
            touched.add(plan)
        self._plan_of[view.key] = plan
        return touched

    def drop_instance(self, key: str) -> set[str]:
        plan = self._plan_of.pop(key, None)
        if plan is None:
            return set()
        self._views.get(plan, {}).pop(key, None)
        return {plan}

    def plans(self) -> list[str]:
        return sorted(self._plans)

    def plan_status(self, plan: str) -> dict[str, Any]:
        """The plan's status as last seen or written."""
        found = self._plans.get(plan)
        return dict(found.status) if found is not None else {}

    def instance_count(self, plan: str) -> int:
        return len(self._views.get(plan, {}))

    # ------------------------------------------------------------ deciding
    def decide(self, name: str, now: datetime) -> PlanUpdate | None:
        plan = self._plans.get(name)
        if plan is None or not self.primed:
            return None
        views = list(self._views.get(name, {}).values())
        stored_rollout = dict(plan.status.get("rollout") or {})
        stored_history = [dict(e) for e in plan.status.get("revisionHistory") or []]
        previous, history = self._committed.get(name, (stored_rollout, stored_history))
        revision = plan_revision(plan.spec)
        handed = self._handed.get(name)
        moving = frozenset(handed[1]) if handed and handed[0] == revision else frozenset()
        decision = plan_rollout(
            PlanView(
                name=name,
                spec=plan.spec,
                resumed_at=parse_time(plan.annotations.get(ROLLOUT_RESUMED_AT_ANNOTATION)),
                previous=previous,
                # What was written is durable: the history as last written or seen.
                recorded=frozenset(str(e.get("revision")) for e in history),
                moving=moving,
            ),
            views,
            now,
        )
        self._decisions[name] = decision
        new_history = history_after(
            history, plan.spec, views, [decision.from_revision] if decision.from_revision else []
        )
        rollout = {**decision.status}
        # One writer for the whole plan status: instances, Valid, and the rollout.
        changes = plan_status(
            name,
            dict(plan.spec),
            dict(plan.status),
            len(views),
            plan.generation,
            now,
            more=[decision.condition],
        )
        wanted: dict[str, Any] = {
            "revision": decision.revision,
            "rollout": rollout,
            "revisionHistory": new_history,
        }
        changes.update({k: v for k, v in wanted.items() if plan.status.get(k) != v})
        # Events need a new memory; a pass that writes nothing repeats none.
        events = decision.events if _memory({"rollout": rollout}) != _memory({"rollout": previous}) else []
        wake = tuple(dict.fromkeys([*decision.started, *decision.rollbacks]))
        return PlanUpdate(name, decision, changes, events, wake)

    def committed(self, update: PlanUpdate) -> None:
        """The update's status is written: later decisions build on it."""
        plan = self._plans.get(update.plan)
        status = {**(plan.status if plan else {}), **update.status}
        self._committed[update.plan] = (
            dict(status.get("rollout") or {}),
            list(status.get("revisionHistory") or []),
        )
        if plan is not None:
            self._plans[update.plan] = _Plan(plan.spec, status, plan.annotations)

    # ------------------------------------------------------------ the gate
    def plan_for(self, namespace: str, name: str, plan_name: str, plan_spec: Mapping[str, Any]) -> PlanChoice:
        key = f"{namespace}/{name}"
        view = self._views.get(plan_name, {}).get(key)
        plan = self._plans.get(plan_name)
        revision = plan_revision(plan_spec)
        if view is None or view.exempt or plan is None:
            return PlanChoice(plan_spec, revision)
        history = {
            str(e.get("revision")): {k: v for k, v in e.items() if k != "revision"}
            for e in [
                *(plan.status.get("revisionHistory") or []),
                *self._committed.get(plan_name, ({}, []))[1],
            ]
        }
        choice = choose(self._decisions.get(plan_name), history, key, view.revision, plan_spec)
        if choice.revision == revision and view.revision not in (None, revision):
            handed = self._handed.get(plan_name)
            if handed is None or handed[0] != revision:
                handed = (revision, set())
                self._handed[plan_name] = handed
            handed[1].add(key)
        return choice


def _memory(status: Mapping[str, Any]) -> tuple[Any, ...]:
    rollout = status.get("rollout") or {}
    return tuple(rollout.get(k) for k in ("revision", "phase", "haltedAt", "resumedAt", "failedInstances"))
