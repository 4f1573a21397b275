"""Pure status: what a pass saw and did -> the typed `ClawInstanceStatus` (the model the CRD
comes from), plus the events that go with the transitions. No I/O, no clock: `now` and
every observation come in as arguments.

Conditions are rebuilt on each pass; `conditions.merge` keeps lastTransitionTime when the
value did not flip, so an unchanged pass renders an identical status (no write).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from claw_operator.api import conditions as c
from claw_operator.api.conditions import Reason
from claw_operator.api.models import (
    REDEPLOY_REQUESTED_AT_ANNOTATION,
    AppliedState,
    ClawInstanceStatus,
    Condition,
    DeploymentStatus,
    HealthCheck,
    HealthState,
    Phase,
    RailwayRefs,
    Usage,
)
from claw_operator.controller.act import Event
from claw_operator.fleet.health import ProbeResult
from claw_operator.railway.types import Deployment
from claw_operator.rules.progress import FINISHED, IN_PROGRESS, progress_of
from claw_operator.rules.usage import usage_to_write
from claw_operator.support.clock import now_rfc3339, parse_time
from claw_operator.support.redact import redact

FAILED_REASONS = frozenset({Reason.DEPLOY_FAILED, Reason.DEPLOY_CRASHED, Reason.DEPLOY_TIMEOUT})
LIVE = frozenset({"SUCCESS", "SLEEPING"})
BROKEN = frozenset({"FAILED", "CRASHED"})


def condition(status: ClawInstanceStatus, type_: str) -> Condition | None:
    return next((x for x in status.conditions if x.type == type_), None)


def previous_cond(status: ClawInstanceStatus, type_: str, default: c.Cond) -> c.Cond:
    old = condition(status, type_)
    if old is None:
        return default
    return c.Cond(type_, old.status, old.reason or default.reason, old.message)


def not_probed(message: str = "Nothing to probe yet.") -> c.Cond:
    return c.unknown(c.HEALTHY, Reason.NOT_PROBED, message)


# ------------------------------------------------------------------ deployment


@dataclass
class DeployedView:
    deployment: DeploymentStatus | None
    condition: c.Cond
    events: list[Event] = field(default_factory=list)
    duration_sample: float | None = None  # seconds a deployment took, for the estimator


def _deployed_reason(status: str) -> str:
    return Reason.DEPLOY_CRASHED if status == "CRASHED" else Reason.DEPLOY_FAILED


def needs_log_tail(previous: ClawInstanceStatus, latest: Deployment | None) -> bool:
    """A failed deployment not yet explained in status needs its log tail read."""
    if latest is None or latest.status not in BROKEN:
        return False
    before = previous.deployment
    prior = condition(previous, c.DEPLOYED)
    same = before is not None and before.id == latest.id and before.status == latest.status
    return not (same and prior is not None and prior.reason == _deployed_reason(latest.status))


QUEUED = c.false(c.DEPLOYED, Reason.DEPLOYING, "Deployment queued on Railway.")


def queued(
    previous: ClawInstanceStatus,
    now: datetime,
    expected_seconds: float,
    why: c.Cond = QUEUED,
) -> DeployedView:
    """A deployment was just triggered (`why` says so in Deployed); the next poll sees it."""
    before = previous.deployment
    deployment = DeploymentStatus(
        status="QUEUED",
        progress=progress_of("QUEUED"),
        startedAt=now_rfc3339(now),
        estimatedSecondsRemaining=int(expected_seconds),
        lastSuccessfulId=before.lastSuccessfulId if before else None,
        lastSuccessfulRevision=before.lastSuccessfulRevision if before else None,
    )
    return DeployedView(deployment, why)


def deployed_view(
    previous: ClawInstanceStatus,
    latest: Deployment | None,
    *,
    suspended: bool,
    deploy_timeout: int,
    now: datetime,
    expected_seconds: float,
    log_tail: str | None,
    url: str | None,
    revision: str | None = None,
) -> DeployedView:
    """`revision`: the plan revision the instance's latest deployment runs, recorded with
    it once it succeeds (what an automatic rollback returns to)."""
    before = previous.deployment or DeploymentStatus()
    if suspended:
        deployment = previous.deployment
        if latest is not None:
            deployment = before.model_copy(
                update={
                    "id": latest.id or before.id,
                    "status": latest.status,
                    "progress": progress_of(latest.status),
                }
            )
        return DeployedView(
            deployment,
            c.false(
                c.DEPLOYED, Reason.SUSPENDED, "Suspended: spec.suspend is true; set it to false to resume."
            ),
        )
    if latest is None:
        if before.status == "QUEUED" and not before.id:
            return DeployedView(
                previous.deployment, c.false(c.DEPLOYED, Reason.DEPLOYING, "Deployment queued on Railway.")
            )
        return DeployedView(
            previous.deployment,
            c.false(c.DEPLOYED, Reason.PROVISIONING, "Creating the Railway project and service."),
        )

    started = parse_time(latest.createdAt)
    changed = before.id != (latest.id or None) or before.status != latest.status
    finished_at = latest.statusUpdatedAt or latest.updatedAt if latest.status in FINISHED else None
    if latest.status in FINISHED:
        estimate = None
    elif changed:
        # Estimated once per status change; recomputing it every poll would write status
        # for a number nobody acts on.
        elapsed = (now - started).total_seconds() if started is not None else 0.0
        estimate = max(0, int(expected_seconds - elapsed)) if started is not None else int(expected_seconds)
    else:
        estimate = before.estimatedSecondsRemaining
    deployment = DeploymentStatus(
        id=latest.id or None,
        status=latest.status,
        progress=progress_of(latest.status),
        startedAt=latest.createdAt or before.startedAt,
        finishedAt=finished_at,
        estimatedSecondsRemaining=estimate,
        lastSuccessfulId=latest.id if latest.status == "SUCCESS" else before.lastSuccessfulId,
        lastSuccessfulRevision=(
            revision
            if latest.status == "SUCCESS"
            and (latest.id != before.lastSuccessfulId or not before.lastSuccessfulRevision)
            else before.lastSuccessfulRevision
        ),
    )
    view = DeployedView(deployment, c.false(c.DEPLOYED, Reason.DEPLOYING, ""))
    if latest.status == "SUCCESS" and changed and before.status in IN_PROGRESS and started is not None:
        finished = parse_time(finished_at) or now
        view.duration_sample = (finished - started).total_seconds()

    prior = condition(previous, c.DEPLOYED)
    same_deployment = before.id == latest.id and before.status == latest.status
    if latest.status in LIVE:
        if changed:
            view.events.append(
                Event(
                    "Normal",
                    Reason.DEPLOYMENT_SUCCEEDED,
                    f"Deployment {latest.id} succeeded; serving at {url}.",
                )
            )
        view.condition = c.true(c.DEPLOYED, Reason.DEPLOYMENT_SUCCEEDED, f"Deployment {latest.id} is live.")
        return view
    if latest.status in BROKEN:
        reason = _deployed_reason(latest.status)
        if same_deployment and prior is not None and prior.reason == reason:
            view.condition = c.false(c.DEPLOYED, reason, prior.message)
            return view
        verb = "crashed after starting" if reason == Reason.DEPLOY_CRASHED else "failed"
        message = (
            f"Deployment {latest.id} {verb}; fix the cause, then set annotation "
            f"{REDEPLOY_REQUESTED_AT_ANNOTATION} or change the spec to deploy again. Last log lines:\n"
            f"{log_tail or '(logs unavailable)'}"
        )
        view.events.append(Event("Warning", reason, message))
        view.condition = c.false(c.DEPLOYED, reason, message)
        return view
    # A status Railway adds later is taken as still in progress (it is neither live nor broken).
    if latest.status in IN_PROGRESS or latest.status not in FINISHED:
        if started is not None and (now - started).total_seconds() > deploy_timeout:
            message = (
                f"Deployment {latest.id} is still {latest.status} after {deploy_timeout}s "
                "(plan deployTimeoutSeconds); "
                f"check the build logs, then set annotation {REDEPLOY_REQUESTED_AT_ANNOTATION} to try again."
            )
            if not (prior is not None and prior.reason == Reason.DEPLOY_TIMEOUT):
                view.events.append(Event("Warning", Reason.DEPLOY_TIMEOUT, message))
            view.condition = c.false(c.DEPLOYED, Reason.DEPLOY_TIMEOUT, message)
            return view
        if prior is not None and prior.reason == Reason.ROLLED_BACK:
            # A rollback's deployment: it says so until it ends.
            view.condition = c.false(c.DEPLOYED, Reason.ROLLED_BACK, prior.message)
            return view
        if changed:
            text = f"Deployment {latest.id or ''} is {latest.status}.".replace("  ", " ")
            view.events.append(Event("Normal", Reason.DEPLOYING, text))
        view.condition = c.false(c.DEPLOYED, Reason.DEPLOYING, f"Deployment is {latest.status} on Railway.")
        return view
    view.condition = c.false(c.DEPLOYED, Reason.DEPLOYING, f"Deployment is {latest.status}; deploying again.")
    return view


def crash_probe_due(previous: ClawInstanceStatus, latest: Deployment | None) -> bool:
    """A crash just seen: probe afresh, so that "still answering" is measured after it."""
    return latest is not None and latest.status == "CRASHED" and needs_log_tail(previous, latest)


# ------------------------------------------------------------------ health


@dataclass
class HealthView:
    health: HealthState | None
    condition: c.Cond
    events: list[Event] = field(default_factory=list)


def health_view(
    previous: HealthState | None,
    result: ProbeResult | None,
    check: HealthCheck,
    now: datetime,
    secrets: frozenset[str],
) -> HealthView:
    """Fold a probe result (None: none newer than the last) into status.health."""
    health = previous or HealthState(status="Unknown", consecutiveFailures=0, lastError="")
    events: list[Event] = []
    if result is not None:
        failures = 0 if result.ok else health.consecutiveFailures + 1
        if result.ok:
            new_status = "Healthy"
        elif failures >= check.failureThreshold:
            new_status = "Unhealthy"
        else:
            new_status = health.status
        was = previous.status if previous else None
        health = HealthState(
            status=new_status,  # type: ignore[arg-type]
            since=now_rfc3339(now) if new_status != was else (previous.since if previous else None),
            consecutiveFailures=failures,
            lastError=redact(result.error, secrets) if not result.ok else "",
        )
        if new_status != was and new_status == "Unhealthy":
            events.append(
                Event("Warning", Reason.HEALTH_CHECK_FAILING, f"Health check failing: {health.lastError}.")
            )
        if new_status != was and was == "Unhealthy" and new_status == "Healthy":
            events.append(Event("Normal", Reason.HEALTH_CHECK_PASSING, f"{check.path} answers again."))
    return HealthView(health, _health_condition(health, check), events)


def not_probed_health(previous: HealthState | None, now: datetime, why: str) -> HealthView:
    """Not probed (suspended, nothing deployed): health is Unknown, not the last result."""
    if previous is not None and previous.status == "Unknown" and not previous.consecutiveFailures:
        health = previous
    else:
        health = HealthState(status="Unknown", since=now_rfc3339(now), consecutiveFailures=0, lastError="")
    return HealthView(health, not_probed(why))


def _health_condition(health: HealthState, check: HealthCheck) -> c.Cond:
    if health.status == "Healthy":
        cond = c.true(c.HEALTHY, Reason.HEALTH_CHECK_PASSING, f"{check.path} answers.")
    elif health.status == "Unhealthy":
        cond = c.false(
            c.HEALTHY,
            Reason.HEALTH_CHECK_FAILING,
            f"{health.consecutiveFailures} health checks in a row failed ({health.lastError}); "
            "check the application logs.",
        )
    else:
        cond = not_probed("Waiting for the first passing health check.")
    return cond


# ------------------------------------------------------------------ usage


def usage_update(previous: Usage | None, sample: Usage) -> Usage | None:
    """status.usage to write for a sample, or None (rules/usage.py: a figure moved >= 5%;
    a figure the sample lacks keeps its old value)."""
    written = usage_to_write(previous.model_dump() if previous is not None else None, sample.model_dump())
    return Usage.model_validate(written) if written is not None else None


# ------------------------------------------------------------------ phase and assembly


def phase_of(
    has_run: bool,
    url: str | None,
    synced: c.Cond,
    deployed: c.Cond,
    healthy: c.Cond,
    ready: c.Cond,
    answering: bool = False,
) -> tuple[Phase, str]:
    """`answering`: the last health probe passed (used to tell a crash that still serves)."""
    if synced.status != "True":
        if synced.reason == Reason.INVALID_SPEC:
            return "Failed", synced.message
        return ("Degraded" if has_run else "Pending"), synced.message
    if deployed.reason == Reason.SUSPENDED:
        return "Suspended", deployed.message
    if deployed.reason == Reason.DEPLOY_CRASHED and answering:
        crash = deployed.message.split(";", 1)[0]
        return (
            "Degraded",
            f"{crash} on Railway, but the health check still passes; check the application logs.",
        )
    if deployed.reason in FAILED_REASONS:
        return "Failed", deployed.message.split("\n", 1)[0]
    if ready.status == "True":
        return "Running", f"Serving at {url}."
    if healthy.status == "False":
        return "Degraded", healthy.message
    if deployed.reason in (Reason.DEPLOYING, Reason.ROLLED_BACK):
        return "Deploying", deployed.message
    return "Provisioning", deployed.message


def assemble(
    previous: ClawInstanceStatus,
    *,
    generation: int | None,
    now: datetime,
    secrets: frozenset[str],
    synced: c.Cond,
    deployed: c.Cond,
    healthy: c.Cond,
    refs: dict[str, str | None],
    applied: dict[str, str | None],
    **fields: Any,
) -> ClawInstanceStatus:
    """The new status: the conditions merged with the previous ones (transition times kept),
    phase and message derived, the rest from `fields` (url, deployment, health, ...)."""
    has_run = bool(refs.get("projectId"))
    # In Observe mode, what Full would change does not make the instance less usable.
    counted = synced
    if synced.reason == Reason.WOULD_CHANGE and has_run:
        counted = c.true(c.SYNCED, Reason.IN_SYNC, synced.message)
    ready = c.ready_from(counted, deployed, healthy)
    url = fields.get("url", previous.url)
    health = fields.get("health", previous.health)
    answering = health is not None and health.status == "Healthy" and health.consecutiveFailures == 0
    phase, message = phase_of(has_run, url, counted, deployed, healthy, ready, answering)
    conds = [
        c.Cond(x.type, x.status, x.reason, redact(x.message, secrets))
        for x in (ready, synced, deployed, healthy)
    ]
    merged = c.merge(
        [x.model_dump() for x in previous.conditions], conds, generation=generation, now=now_rfc3339(now)
    )
    update: dict[str, Any] = {
        "phase": phase,
        "message": redact(message, secrets),
        "observedGeneration": generation,
        "conditions": [Condition.model_validate(x) for x in merged],
        **fields,
    }
    kept_refs = {k: v for k, v in refs.items() if v is not None}
    if kept_refs or previous.railway is not None:
        update["railway"] = RailwayRefs(**kept_refs) if kept_refs else None
    kept_applied = {k: v for k, v in applied.items() if v is not None}
    if kept_applied or previous.applied is not None:
        update["applied"] = AppliedState(**kept_applied) if kept_applied else None
    return previous.model_copy(update=update)


def with_condition(
    previous: ClawInstanceStatus, cond: c.Cond, *, generation: int | None, now: datetime
) -> ClawInstanceStatus:
    """`previous` with one condition replaced and everything else as it was."""
    [merged] = c.merge(
        [x.model_dump() for x in previous.conditions if x.type == cond.type],
        [cond],
        generation=generation,
        now=now_rfc3339(now),
    )
    replaced = Condition.model_validate(merged)
    conditions = [replaced if x.type == cond.type else x for x in previous.conditions]
    if not any(x.type == cond.type for x in previous.conditions):
        conditions.append(replaced)
    return previous.model_copy(update={"conditions": conditions})


def render(status: ClawInstanceStatus) -> dict[str, Any]:
    """The dict the status writer patches with (absent fields are left out, not null)."""
    return status.model_dump(exclude_none=True)


def parse(raw: Any) -> ClawInstanceStatus:
    """The status as last written. A field this version cannot read (written by another
    version, or by hand) is dropped rather than failing the pass: status is rebuilt from
    observation, and lost ids are found again by adoption."""
    data = dict(raw or {})
    try:
        return ClawInstanceStatus.model_validate(data)
    except ValidationError:
        kept: dict[str, Any] = {}
        for key, value in data.items():
            try:
                ClawInstanceStatus.model_validate({key: value})
            except ValidationError:
                continue
            kept[key] = value
        return ClawInstanceStatus.model_validate(kept)
