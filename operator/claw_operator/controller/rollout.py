"""Plan rollouts, decided without I/O: which instances of a ClawPlan may move to the plan's
current revision now, which are done or failed, which roll back, and what the plan's
status, condition and events say about it (API.md, ClawPlan).

Status is the only memory. The plan's `status.rollout` keeps what instance statuses
cannot tell (when the rollout started, halted or resumed, and which instances failed,
since a rolled-back instance runs the old revision again), and `status.revisionHistory`
keeps the revision fields of every revision an instance still runs, so an instance not
yet allowed to move keeps running the spec it has. Everything else is recomputed from the
instances' `status.planRevision` and conditions, in a fixed order (canary candidates
first, then creationTimestamp, then namespace/name), so an operator restart admits the
same instances again and never starts an instance twice.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from claw_operator.api import conditions as c
from claw_operator.api.conditions import EventReason, PlanReason, Reason
from claw_operator.api.models import (
    CANARY_LABEL,
    PAUSED_ANNOTATION,
    ROLLOUT_RESUMED_AT_ANNOTATION,
    PlanRollout,
)
from claw_operator.controller.ports import PlanChoice
from claw_operator.rules.revision import REVISION_FIELDS, plan_revision
from claw_operator.support.clock import now_rfc3339, parse_time

FAILED_DEPLOY_REASONS = frozenset({Reason.DEPLOY_FAILED, Reason.DEPLOY_CRASHED, Reason.DEPLOY_TIMEOUT})
# Failed instances named in an event or message; the count is always exact.
NAMED_AT_MOST = 10


@dataclass(frozen=True)
class CondView:
    """One condition of an instance, as the rollout needs it."""

    status: str
    reason: str
    since: datetime | None


@dataclass(frozen=True)
class InstanceView:
    """What the rollout reads from one ClawInstance of the plan."""

    key: str  # namespace/name
    created: str  # metadata.creationTimestamp (RFC 3339 sorts as text)
    revision: str | None  # status.planRevision; None before the instance applied any
    ready: CondView | None = None
    deployed: CondView | None = None
    healthy: CondView | None = None
    last_successful_id: str | None = None
    last_successful_revision: str | None = None
    canary: bool = False  # preferred as a canary (label claw.io/canary: "true")
    # Paused, Observe or suspended: nothing of the rollout can run on it, so it neither
    # waits nor counts; it takes the current revision whenever it next applies anything.
    exempt: bool = False


@dataclass(frozen=True)
class PlanView:
    name: str
    spec: Mapping[str, Any]
    resumed_at: datetime | None  # annotation claw.io/rolloutResumedAt
    previous: Mapping[str, Any]  # status.rollout as last written
    recorded: frozenset[str]  # revisions kept in status.revisionHistory
    # Instances already told to apply the current revision whose status does not show it
    # yet: they count as moving, so a recount never starts more than maxConcurrent.
    moving: frozenset[str] = frozenset()

    def revision_recorded(self, revision: str) -> bool:
        return revision in self.recorded


@dataclass(frozen=True)
class Rollback:
    deployment_id: str  # the instance's last successful deployment
    revision: str  # the plan revision that deployment ran


@dataclass(frozen=True)
class PlanEvent:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class RolloutDecision:
    revision: str
    phase: str  # Progressing | Complete | Halted
    status: dict[str, Any]  # status.rollout to write
    condition: c.Cond  # RolloutComplete
    events: list[PlanEvent] = field(default_factory=list)
    # Instances that run, or may now apply, the current revision.
    admitted: frozenset[str] = frozenset()
    # Instances newly allowed to move on this pass (to be reconciled at once).
    started: tuple[str, ...] = ()
    rollbacks: dict[str, Rollback] = field(default_factory=dict)
    # Complete: nothing is gated, every instance takes the current revision.
    open: bool = False
    # When an instance Ready now will have been Ready for healthyForSeconds: decide again then.
    next_check: datetime | None = None
    # The plan's revision before this rollout: what a new instance starts on while it is halted.
    from_revision: str | None = None

    def allows(self, key: str) -> bool:
        return self.open or key in self.admitted


def max_concurrent(policy: PlanRollout, instances: int) -> int:
    """An int, or a percentage of the plan's instances rounded down, and at least 1."""
    value = policy.maxConcurrent
    if isinstance(value, int):
        return max(1, value)
    return max(1, math.floor(instances * int(value.rstrip("%")) / 100))


def _order(view: InstanceView) -> tuple[bool, str, str]:
    return (not view.canary, view.created, view.key)


def _failing_since(view: InstanceView) -> tuple[bool, datetime | None]:
    """Whether the instance fails on the revision it runs (a failed deploy, or Unhealthy past
    the plan's failureThreshold), and since when."""
    deployed, healthy = view.deployed, view.healthy
    if deployed is not None and deployed.status == "False" and deployed.reason in FAILED_DEPLOY_REASONS:
        return True, deployed.since
    if healthy is not None and healthy.status == "False" and healthy.reason == Reason.HEALTH_CHECK_FAILING:
        return True, healthy.since
    return False, None


def _ready_for(view: InstanceView, now: datetime) -> float | None:
    """Seconds the instance has been Ready, or None when it is not."""
    ready = view.ready
    if ready is None or ready.status != "True":
        return None
    if ready.since is None:
        return 0.0
    return (now - ready.since).total_seconds()


def _names(keys: Iterable[str]) -> str:
    listed = sorted(keys)
    shown = ", ".join(listed[:NAMED_AT_MOST])
    return shown + (f" and {len(listed) - NAMED_AT_MOST} more" if len(listed) > NAMED_AT_MOST else "")


def plan_rollout(plan: PlanView, instances: Iterable[InstanceView], now: datetime) -> RolloutDecision:
    """The rollout of the plan's current revision across `instances` (those of this plan)."""
    revision = plan_revision(plan.spec)
    policy = PlanRollout.model_validate(plan.spec.get("rollout") or {})
    previous = dict(plan.previous or {})
    same = previous.get("revision") == revision
    events: list[PlanEvent] = []

    # A new revision supersedes whatever ran before: its memory starts empty.
    started_at = (parse_time(previous.get("startedAt")) if same else None) or now
    resumed_at = parse_time(previous.get("resumedAt")) if same else None
    halted_at = parse_time(previous.get("haltedAt")) if same else None
    failed_before: set[str] = set(previous.get("failedInstances") or []) if same else set()
    from_revision = previous.get("fromRevision") if same else previous.get("revision")
    if from_revision == revision:
        from_revision = None
    phase_before = previous.get("phase") if same else None
    if halted_at is not None and plan.resumed_at is not None and plan.resumed_at > halted_at:
        # Resumed: failures so far are forgiven, and instances rolled back may move again.
        resumed_at, halted_at, failed_before, phase_before = plan.resumed_at, None, set(), "Progressing"
        events.append(
            PlanEvent(
                "Normal",
                EventReason.ROLLOUT_STARTED,
                f"Rollout of plan revision {revision} resumed ({now_rfc3339(plan.resumed_at)}).",
            )
        )
    # A failure from before the rollout (or its resume) says nothing about this revision.
    window_start = max(started_at, resumed_at or started_at) - timedelta(seconds=1)

    views = sorted((v for v in instances if not v.exempt), key=_order)
    total = len(views)
    limit = max_concurrent(policy, total)
    canary_target = min(policy.canary, total)

    done: list[str] = []
    in_flight: list[str] = []
    next_check: datetime | None = None
    stuck: list[str] = []  # failed before the window: neither moving nor done
    failing: dict[str, InstanceView] = {}
    waiting: list[InstanceView] = []
    updated = 0
    for view in views:
        if view.revision is not None and view.revision != revision:
            if view.key in plan.moving and view.key not in failed_before:
                in_flight.append(view.key)
            else:
                waiting.append(view)
            continue
        ready_for = _ready_for(view, now)
        updated += ready_for is not None
        fails, since = _failing_since(view)
        if fails:
            if since is None or since >= window_start:
                failing[view.key] = view
            else:
                stuck.append(view.key)
        elif ready_for is not None and ready_for >= policy.healthyForSeconds:
            done.append(view.key)
        else:
            in_flight.append(view.key)
            if ready_for is not None:
                due = now + timedelta(seconds=policy.healthyForSeconds - ready_for)
                next_check = due if next_check is None else min(next_check, due)

    failed = failed_before | set(failing)
    pending = sum(1 for v in waiting if v.key not in failed)
    complete_before = phase_before == "Complete"
    halted = halted_at is not None or (not complete_before and len(failed) >= policy.maxFailures)
    if halted and halted_at is None:
        halted_at = now
        events.append(
            PlanEvent(
                "Warning",
                EventReason.ROLLOUT_HALTED,
                f"Rollout of plan revision {revision} halted: {len(failed)} instance(s) failed "
                f"(maxFailures {policy.maxFailures}): {_names(failed)}."
                + (" Rolling them back to their last good deployment." if policy.autoRollback else ""),
            )
        )

    started: list[str] = []
    # Nobody moves before the revision's fields are recorded in the plan's status: until
    # then a later plan change could leave an instance on a revision nobody remembers.
    if not halted and not complete_before and plan.revision_recorded(revision):
        slots = limit - len(in_flight)
        if len(done) < canary_target:
            slots = min(slots, canary_target - len(done) - len(in_flight))
        for view in waiting:
            if len(started) >= slots:
                break
            if view.key not in failed:
                started.append(view.key)

    rollbacks: dict[str, Rollback] = {}
    if halted and policy.autoRollback:
        for key, view in failing.items():
            target = view.last_successful_revision
            if view.last_successful_id and target is not None and target != revision:
                rollbacks[key] = Rollback(view.last_successful_id, target)

    # Nothing on another revision when a revision is first seen (a new plan, or a change
    # before any instance applied anything): there is nothing to roll out.
    nothing_to_move = phase_before is None and not waiting and not failing and not halted
    if complete_before or nothing_to_move or (not halted and len(done) == total):
        phase = "Complete"
        message = f"All {total} instance(s) run plan revision {revision}."
        condition = c.true(c.ROLLOUT_COMPLETE, PlanReason.COMPLETE, message)
        if not complete_before and not nothing_to_move:
            events.append(PlanEvent("Normal", EventReason.ROLLOUT_COMPLETE, message))
    elif halted:
        phase = "Halted"
        message = (
            f"Halted: {len(failed)} instance(s) failed on plan revision {revision} ({_names(failed)}); "
            f"{pending} instance(s) keep their previous revision. Fix the plan (a new revision starts a "
            f"new rollout) or set annotation {ROLLOUT_RESUMED_AT_ANNOTATION} to the current time to resume."
        )
        condition = c.false(c.ROLLOUT_COMPLETE, PlanReason.HALTED, message)
    else:
        phase = "Progressing"
        stage = "canary" if len(done) < canary_target else "waves"
        message = (
            f"Rolling out plan revision {revision} ({stage}): {len(done)} of {total} done, "
            f"{len(in_flight) + len(started)} moving (at most {limit} at once), "
            f"{pending - len(started)} waiting, {len(failed)} failed"
            + (f", {len(stuck)} failing since before the rollout ({_names(stuck)})." if stuck else ".")
        )
        condition = c.false(c.ROLLOUT_COMPLETE, PlanReason.PROGRESSING, message)
        if phase_before is None:
            events.append(
                PlanEvent(
                    "Normal",
                    EventReason.ROLLOUT_STARTED,
                    f"Rolling out plan revision {revision} to {total} instance(s): canary "
                    f"{canary_target}, at most {limit} at once.",
                )
            )

    status: dict[str, Any] = {
        "revision": revision,
        "phase": phase,
        "updated": updated,
        "pending": pending,
        "failed": len(failed) if phase != "Complete" else 0,
        "message": message,
        "startedAt": now_rfc3339(started_at),
    }
    if from_revision is not None and phase != "Complete":
        status["fromRevision"] = from_revision
    if phase != "Complete":
        if resumed_at is not None:
            status["resumedAt"] = now_rfc3339(resumed_at)
        if halted_at is not None:
            status["haltedAt"] = now_rfc3339(halted_at)
        if failed:
            status["failedInstances"] = sorted(failed)
    return RolloutDecision(
        revision=revision,
        phase=phase,
        status=status,
        condition=condition,
        events=events,
        # Not the failing ones: they run the revision already, and once rolled back they
        # must keep the old one even while this decision is not yet taken again.
        admitted=frozenset([*done, *in_flight, *started]),
        started=tuple(started),
        rollbacks=rollbacks,
        open=phase == "Complete",
        next_check=next_check if phase != "Complete" else None,
        from_revision=str(from_revision) if from_revision is not None else None,
    )


# ------------------------------------------------------------------ revision history


def revision_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a plan spec its revision hashes: what an instance runs."""
    return {name: copy.deepcopy(spec[name]) for name in REVISION_FIELDS if spec.get(name) is not None}


def with_revision(spec: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """The current plan spec with an older revision's fields: limits, deployTimeoutSeconds and
    the rollout policy are not part of a revision and apply at once."""
    out = {k: copy.deepcopy(v) for k, v in spec.items() if k not in REVISION_FIELDS}
    out.update(copy.deepcopy(dict(fields)))
    return out


def history_after(
    history: Iterable[Mapping[str, Any]],
    spec: Mapping[str, Any],
    instances: Iterable[InstanceView],
    keep: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """status.revisionHistory: the current revision's fields, and those of every revision an
    instance runs or could be rolled back to (and `keep`); forgotten once nothing refers to them."""
    current = plan_revision(spec)
    wanted = {current, *keep}
    for view in instances:
        wanted.update(r for r in (view.revision, view.last_successful_revision) if r is not None)
    kept = [dict(entry) for entry in history if entry.get("revision") in wanted - {current}]
    return [{"revision": current, **revision_fields(spec)}, *sorted(kept, key=lambda e: str(e["revision"]))]


# ------------------------------------------------------------------ the gate


def choose(
    decision: RolloutDecision | None,
    history: Mapping[str, Mapping[str, Any]],
    key: str,
    running: str | None,
    spec: Mapping[str, Any],
) -> PlanChoice:
    """The gate for one instance running revision `running` (None: it has applied none yet)."""
    revision = plan_revision(spec)
    # No decision yet for this revision (the plan just changed, or the operator just
    # started): nobody moves until the coordinator has decided.
    current = decision if decision is not None and decision.revision == revision else None
    rollback = current.rollbacks.get(key) if current is not None else None
    if rollback is not None and running == revision and rollback.revision in history:
        note = f"rolled back: plan revision {revision} failed on this instance and its rollout is halted"
        return PlanChoice(
            with_revision(spec, history[rollback.revision]), rollback.revision, note, rollback.deployment_id
        )
    if running is None and current is not None and current.phase == "Halted":
        start = current.from_revision
        if start is not None and start in history:
            # A new instance does not start on a revision that failed elsewhere.
            note = f"starts on plan revision {start}: the rollout of revision {revision} is halted"
            return PlanChoice(with_revision(spec, history[start]), start, note)
    if running is None or running == revision:
        return PlanChoice(spec, revision)
    if (current is not None and current.allows(key)) or running not in history:
        # A revision nobody recorded cannot be kept; such an instance moves at once.
        return PlanChoice(spec, revision)
    if current is not None and current.phase == "Halted":
        note = f"keeps plan revision {running}: the rollout of revision {revision} is halted"
    else:
        note = f"waiting for rollout of plan revision {revision}"
    return PlanChoice(with_revision(spec, history[running]), running, note)


# ------------------------------------------------------------------ reading instances


def _cond(status: Mapping[str, Any], type_: str) -> CondView | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == type_:
            return CondView(
                str(cond.get("status", "Unknown")),
                str(cond.get("reason", "")),
                parse_time(cond.get("lastTransitionTime")),
            )
    return None


def instance_view(body: Mapping[str, Any]) -> InstanceView:
    """What the rollout needs of one ClawInstance object."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    deployment = status.get("deployment") or {}
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    exempt = (
        annotations.get(PAUSED_ANNOTATION) == "true"
        or spec.get("managementPolicy") == "Observe"
        or bool(spec.get("suspend"))
    )
    return InstanceView(
        key=f"{meta.get('namespace', '')}/{meta.get('name', '')}",
        created=str(meta.get("creationTimestamp") or ""),
        revision=status.get("planRevision"),
        ready=_cond(status, c.READY),
        deployed=_cond(status, c.DEPLOYED),
        healthy=_cond(status, c.HEALTHY),
        last_successful_id=deployment.get("lastSuccessfulId"),
        last_successful_revision=deployment.get("lastSuccessfulRevision"),
        canary=labels.get(CANARY_LABEL) == "true",
        exempt=exempt,
    )
