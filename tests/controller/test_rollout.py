"""Rollout planning, table-driven: one plan, a fleet described in a line per instance."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from claw_operator.api.conditions import EventReason, PlanReason, Reason
from claw_operator.api.models import PlanRollout
from claw_operator.controller.rollout import (
    CondView,
    InstanceView,
    PlanView,
    choose,
    history_after,
    instance_view,
    max_concurrent,
    plan_rollout,
    revision_fields,
)
from claw_operator.rules.revision import plan_revision

NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
OLD_SPEC: dict[str, Any] = {"source": {"image": "ghcr.io/openclaw/openclaw:1"}, "variables": {"A": "1"}}
POLICY = {"maxConcurrent": 3, "canary": 1, "healthyForSeconds": 60, "maxFailures": 1, "autoRollback": True}
NEW_SPEC: dict[str, Any] = {**OLD_SPEC, "source": {"image": "ghcr.io/openclaw/openclaw:2"}, "rollout": POLICY}
OLD, NEW = plan_revision(OLD_SPEC), plan_revision(NEW_SPEC)
BOTH = frozenset({OLD, NEW})


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def inst(
    i: int, state: str = "old", *, canary: bool = False, since: float = 3600, exempt: bool = False
) -> InstanceView:
    """Instance number i (created in that order) in one of these states:
    old: Running on the old revision; deploying: on the new one, deploying; ready: on the new
    one, Ready for `since` seconds; failed / unhealthy: on the new one, failing since `since`
    seconds; rolledback: back on the old revision after failing."""
    base = InstanceView(
        key=f"ns/i{i:03d}",
        created=f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z",
        revision=OLD,
        ready=CondView("True", Reason.AVAILABLE, ago(86400)),
        deployed=CondView("True", Reason.DEPLOYMENT_SUCCEEDED, ago(86400)),
        healthy=CondView("True", Reason.HEALTH_CHECK_PASSING, ago(86400)),
        last_successful_id=f"dep-{i}-old",
        last_successful_revision=OLD,
        canary=canary,
        exempt=exempt,
    )
    if state in ("old", "rolledback"):
        return base
    on_new = replace(base, revision=NEW)
    if state == "deploying":
        return replace(
            on_new,
            ready=CondView("False", Reason.DEPLOYING, ago(since)),
            deployed=CondView("False", Reason.DEPLOYING, ago(since)),
            healthy=CondView("Unknown", Reason.NOT_PROBED, ago(since)),
        )
    if state == "ready":
        return replace(
            on_new,
            ready=CondView("True", Reason.AVAILABLE, ago(since)),
            last_successful_id=f"dep-{i}-new",
            last_successful_revision=NEW,
        )
    if state == "failed":
        return replace(
            on_new,
            ready=CondView("False", Reason.DEPLOY_FAILED, ago(since)),
            deployed=CondView("False", Reason.DEPLOY_FAILED, ago(since)),
        )
    if state == "unhealthy":
        return replace(
            on_new,
            ready=CondView("False", Reason.HEALTH_CHECK_FAILING, ago(since)),
            healthy=CondView("False", Reason.HEALTH_CHECK_FAILING, ago(since)),
            last_successful_id=f"dep-{i}-new",
            last_successful_revision=NEW,
        )
    raise AssertionError(state)


def fleet(*states: str, n: int = 10) -> list[InstanceView]:
    """The first instances in the given states, the rest of n on the old revision."""
    return [inst(i, states[i] if i < len(states) else "old") for i in range(n)]


def plan(
    previous: dict[str, Any] | None = None, *, spec: dict[str, Any] | None = None, **kw: Any
) -> PlanView:
    return PlanView(
        name="pro",
        spec=spec or NEW_SPEC,
        resumed_at=kw.get("resumed_at"),
        previous=previous or {},
        recorded=kw.get("recorded", BOTH),
    )


def progressing(**extra: Any) -> dict[str, Any]:
    return {"revision": NEW, "phase": "Progressing", "startedAt": "2026-11-30T11:00:00Z", **extra}


@dataclass
class Case:
    name: str
    plan: PlanView
    instances: list[InstanceView]
    phase: str
    started: tuple[str, ...] = ()
    rollbacks: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    counts: tuple[int, int, int] | None = None  # updated, pending, failed


CASES = [
    Case(
        "a new revision starts with the oldest instance as canary",
        plan({"revision": OLD, "phase": "Complete"}),
        fleet(),
        "Progressing",
        ("ns/i000",),
        events=(EventReason.ROLLOUT_STARTED,),
        counts=(0, 10, 0),
    ),
    Case(
        "a labelled canary goes before older instances",
        plan(),
        [*fleet(n=5), inst(7, canary=True)],
        "Progressing",
        ("ns/i007",),
        events=(EventReason.ROLLOUT_STARTED,),
    ),
    Case(
        "nobody else moves while the canary deploys",
        plan(progressing()),
        fleet("deploying"),
        "Progressing",
        (),
    ),
    Case(
        "nobody else moves while the canary is Ready for less than healthyForSeconds",
        plan(progressing()),
        [inst(0, "ready", since=10), *fleet(n=10)[1:]],
        "Progressing",
        (),
    ),
    Case(
        "a done canary opens the waves, maxConcurrent at a time",
        plan(progressing()),
        fleet("ready"),
        "Progressing",
        ("ns/i001", "ns/i002", "ns/i003"),
        counts=(1, 9, 0),
    ),
    Case(
        "in-flight instances take their slots",
        plan(progressing()),
        fleet("ready", "ready", "deploying", "ready", "deploying"),
        "Progressing",
        ("ns/i005",),
    ),
    Case(
        "a failed canary halts with nothing else touched and rolls it back",
        plan(progressing()),
        fleet("failed"),
        "Halted",
        (),
        ("ns/i000",),
        (EventReason.ROLLOUT_HALTED,),
        (0, 9, 1),
    ),
    Case(
        "an unhealthy instance past the threshold counts as failed",
        plan(progressing()),
        fleet("ready", "unhealthy", "deploying"),
        "Halted",
        (),
        (),
        (EventReason.ROLLOUT_HALTED,),
    ),
    Case(
        "a halted rollout stays halted: no new starts",
        plan(progressing(phase="Halted", haltedAt="2026-11-30T11:30:00Z", failedInstances=["ns/i000"])),
        fleet("rolledback"),
        "Halted",
        (),
        counts=(0, 9, 1),
    ),
    Case(
        "a resume later than the halt forgives the failures and moves the rolled back one again",
        plan(
            progressing(phase="Halted", haltedAt="2026-11-30T11:30:00Z", failedInstances=["ns/i000"]),
            resumed_at=ago(60),
        ),
        fleet("rolledback"),
        "Progressing",
        ("ns/i000",),
        events=(EventReason.ROLLOUT_STARTED,),
    ),
    Case(
        "a resume older than the halt does nothing",
        plan(
            progressing(phase="Halted", haltedAt="2026-11-30T11:30:00Z", failedInstances=["ns/i000"]),
            resumed_at=ago(3600),
        ),
        fleet("rolledback"),
        "Halted",
        (),
    ),
    Case(
        "a new revision supersedes a halted rollout",
        plan(
            {
                "revision": "deadbeef",
                "phase": "Halted",
                "haltedAt": "2026-11-30T11:30:00Z",
                "failedInstances": ["ns/i000"],
            }
        ),
        fleet(),
        "Progressing",
        ("ns/i000",),
        events=(EventReason.ROLLOUT_STARTED,),
    ),
    Case(
        "the last instance done completes the rollout",
        plan(progressing()),
        fleet(*["ready"] * 10),
        "Complete",
        events=(EventReason.ROLLOUT_COMPLETE,),
        counts=(10, 0, 0),
    ),
    Case(
        "complete stays complete when an instance fails later",
        plan({"revision": NEW, "phase": "Complete"}),
        fleet(*["ready"] * 9, "failed"),
        "Complete",
        (),
    ),
    Case(
        "a plan whose instances already run the revision is complete without events",
        plan(),
        fleet(*["ready"] * 3, n=3),
        "Complete",
        (),
    ),
    Case(
        "nothing moves before the revision is recorded",
        plan(recorded=frozenset({OLD})),
        fleet(),
        "Progressing",
        (),
        events=(EventReason.ROLLOUT_STARTED,),
    ),
    Case(
        "paused, observed and suspended instances neither wait nor count",
        plan(progressing()),
        [inst(0, "ready"), inst(1, exempt=True)],
        "Complete",
        events=(EventReason.ROLLOUT_COMPLETE,),
    ),
    Case(
        "a failure from before the rollout is not counted",
        plan(progressing()),
        [inst(0, "ready"), inst(1, "failed", since=7200), inst(2)],
        "Progressing",
        ("ns/i002",),
    ),
    Case(
        "maxFailures 2: one failure keeps going",
        plan(progressing(), spec={**NEW_SPEC, "rollout": {**POLICY, "maxFailures": 2}}),
        fleet("ready", "failed"),
        "Progressing",
        ("ns/i002", "ns/i003", "ns/i004"),
    ),
    Case(
        "without autoRollback nothing rolls back",
        plan(progressing(), spec={**NEW_SPEC, "rollout": {**POLICY, "autoRollback": False}}),
        fleet("failed"),
        "Halted",
        (),
        events=(EventReason.ROLLOUT_HALTED,),
    ),
    Case(
        "a failed instance whose last good deployment is the new revision is not rolled back",
        plan(progressing()),
        fleet("ready", "unhealthy"),
        "Halted",
        (),
        events=(EventReason.ROLLOUT_HALTED,),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rollout_decisions(case: Case) -> None:
    decision = plan_rollout(case.plan, case.instances, NOW)
    assert decision.phase == case.phase
    assert decision.started == case.started
    assert sorted(decision.rollbacks) == sorted(case.rollbacks)
    assert tuple(e.reason for e in decision.events) == case.events
    reason = {
        "Progressing": PlanReason.PROGRESSING,
        "Complete": PlanReason.COMPLETE,
        "Halted": PlanReason.HALTED,
    }
    assert decision.condition.reason == reason[case.phase]
    assert decision.condition.status == ("True" if case.phase == "Complete" else "False")
    if case.counts is not None:
        s = decision.status
        assert (s["updated"], s["pending"], s["failed"]) == case.counts


def test_halt_event_and_status_name_the_failed_instances_and_remember_them() -> None:
    decision = plan_rollout(plan(progressing()), fleet("failed"), NOW)
    assert "ns/i000" in decision.events[0].message
    assert decision.status["failedInstances"] == ["ns/i000"]
    assert decision.status["haltedAt"] == "2026-11-30T12:00:00Z"
    assert decision.rollbacks["ns/i000"].deployment_id == "dep-0-old"
    assert decision.rollbacks["ns/i000"].revision == OLD


def test_a_restart_admits_the_same_instances_again() -> None:
    instances = fleet("ready", "deploying")
    first = plan_rollout(plan(progressing()), instances, NOW)
    again = plan_rollout(plan(first.status), list(reversed(instances)), NOW + timedelta(seconds=1))
    assert first.started == again.started == ("ns/i002", "ns/i003")
    assert again.events == []


def test_a_mid_fleet_failure_halts_within_one_wave() -> None:
    """However the wave ends, no instance beyond the wave in flight has started."""
    instances = fleet("ready", "ready", "failed", "deploying", "deploying")
    decision = plan_rollout(plan(progressing()), instances, NOW)
    assert decision.phase == "Halted"
    assert decision.started == ()
    assert set(decision.admitted) == {"ns/i000", "ns/i001", "ns/i003", "ns/i004"}


@pytest.mark.parametrize(
    ("value", "instances", "expected"),
    [(50, 1000, 50), ("10%", 1000, 100), ("10%", 25, 2), ("1%", 5, 1), ("100%", 3, 3), (1, 0, 1)],
)
def test_max_concurrent(value: int | str, instances: int, expected: int) -> None:
    assert max_concurrent(PlanRollout(maxConcurrent=value), instances) == expected


def test_the_gate() -> None:
    history = {OLD: revision_fields(OLD_SPEC), NEW: revision_fields(NEW_SPEC)}
    spec = {**NEW_SPEC, "limits": {"maxInstances": 9}}
    decision = plan_rollout(plan(progressing()), fleet("ready"), NOW)

    waiting = choose(decision, history, "ns/i009", OLD, spec)
    assert waiting.revision == OLD and waiting.note == f"waiting for rollout of plan revision {NEW}"
    assert waiting.spec["source"] == OLD_SPEC["source"]
    # What is not part of a revision applies at once.
    assert waiting.spec["limits"] == {"maxInstances": 9} and plan_revision(waiting.spec) == OLD

    moving = choose(decision, history, "ns/i001", OLD, spec)
    assert moving.revision == NEW and moving.note is None and moving.spec == spec
    assert choose(decision, history, "ns/new", None, spec).revision == NEW
    # Before the coordinator decided on this revision, nobody moves.
    assert choose(None, history, "ns/i001", OLD, spec).revision == OLD
    # A revision nobody recorded cannot be kept.
    assert choose(decision, {NEW: history[NEW]}, "ns/i009", OLD, spec).revision == NEW


def test_the_gate_rolls_back_and_then_keeps_the_old_revision() -> None:
    history = {OLD: revision_fields(OLD_SPEC), NEW: revision_fields(NEW_SPEC)}
    halted = plan_rollout(plan(progressing()), fleet("failed"), NOW)
    choice = choose(halted, history, "ns/i000", NEW, NEW_SPEC)
    assert (choice.revision, choice.rollback_to) == (OLD, "dep-0-old")
    assert plan_revision(choice.spec) == OLD
    later = plan_rollout(plan(halted.status), fleet("rolledback"), NOW + timedelta(seconds=30))
    kept = choose(later, history, "ns/i000", OLD, NEW_SPEC)
    assert (kept.revision, kept.rollback_to) == (OLD, None)
    assert kept.note is not None and "halted" in kept.note
    assert choose(later, history, "ns/i005", OLD, NEW_SPEC).revision == OLD


def test_history_keeps_what_instances_run_or_return_to() -> None:
    third = {**NEW_SPEC, "variables": {"A": "3"}}
    history = [
        {"revision": OLD, **revision_fields(OLD_SPEC)},
        {"revision": NEW, **revision_fields(NEW_SPEC)},
        {"revision": "gone0000", "replicas": 3},
    ]
    kept = history_after(history, third, [inst(0, "ready"), inst(1)])
    assert [e["revision"] for e in kept] == [plan_revision(third), *sorted([OLD, NEW])]
    assert kept[0]["variables"] == {"A": "3"}
    assert history_after(kept, third, []) == kept[:1]


def test_instance_view_reads_the_object() -> None:
    body = {
        "metadata": {
            "namespace": "t",
            "name": "a",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"claw.io/canary": "true"},
            "annotations": {"claw.io/paused": "true"},
        },
        "spec": {"planRef": "pro"},
        "status": {
            "planRevision": OLD,
            "deployment": {"lastSuccessfulId": "d1", "lastSuccessfulRevision": OLD},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Available",
                    "lastTransitionTime": "2026-11-30T11:00:00Z",
                }
            ],
        },
    }
    view = instance_view(body)
    assert view.key == "t/a" and view.canary and view.exempt and view.revision == OLD
    assert view.ready == CondView("True", "Available", ago(3600))
    assert view.deployed is None and view.last_successful_id == "d1"


def test_a_new_instance_starts_on_the_previous_revision_while_the_rollout_is_halted() -> None:
    history = {OLD: revision_fields(OLD_SPEC), NEW: revision_fields(NEW_SPEC)}
    started = plan_rollout(plan({"revision": OLD, "phase": "Complete"}), fleet(), NOW)
    assert started.status["fromRevision"] == OLD
    assert choose(started, history, "ns/new", None, NEW_SPEC).revision == NEW  # not halted: current
    halted = plan_rollout(plan(progressing(fromRevision=OLD)), fleet("failed"), NOW)
    choice = choose(halted, history, "ns/new", None, NEW_SPEC)
    assert choice.revision == OLD and plan_revision(choice.spec) == OLD
    assert choice.note == f"starts on plan revision {OLD}: the rollout of revision {NEW} is halted"
    kept = history_after([{"revision": OLD, **history[OLD]}], NEW_SPEC, [], [halted.from_revision or ""])
    assert [e["revision"] for e in kept] == [NEW, OLD]
