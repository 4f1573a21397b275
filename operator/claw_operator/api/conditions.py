"""Condition types, their reasons, and the rules for setting them (API.md, Status).

Reasons are stable CamelCase constants; each belongs to one condition. Conditions are
rebuilt from what was just observed on each pass; `merge` keeps `lastTransitionTime`
when the status value did not flip, so setting identical conditions is a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ConditionStatus = Literal["True", "False", "Unknown"]

READY = "Ready"
SYNCED = "Synced"
DEPLOYED = "Deployed"
HEALTHY = "Healthy"
CONDITION_TYPES = (READY, SYNCED, DEPLOYED, HEALTHY)


class Reason:
    # Synced
    APPLIED = "Applied"  #: the spec is applied to Railway
    INVALID_SPEC = "InvalidSpec"  #: the spec cannot be applied as written; fix the named field
    PLAN_NOT_FOUND = "PlanNotFound"  #: spec.planRef names no ClawPlan
    SECRET_NOT_FOUND = "SecretNotFound"  #: a referenced Secret does not exist
    SECRET_KEY_MISSING = "SecretKeyMissing"  #: a referenced Secret lacks a key or it is empty
    QUOTA_EXCEEDED = "QuotaExceeded"  #: the plan's or the cluster's instance quota is used up
    RAILWAY_AUTH_FAILED = "RailwayAuthFailed"  #: Railway refused the token
    RAILWAY_UNAVAILABLE = "RailwayUnavailable"  #: Railway failed or refused; retried with backoff
    RATE_LIMITED = "RateLimited"  #: the token's request budget is spent; retried later
    RECONCILE_PAUSED = "ReconcilePaused"  #: annotation claw.io/paused is "true"; nothing is reconciled
    IN_SYNC = "InSync"  #: managementPolicy Observe, and Railway matches the spec
    WOULD_CHANGE = "WouldChange"  #: managementPolicy Observe, and Full would change the named fields
    # Deployed
    DEPLOYMENT_SUCCEEDED = "DeploymentSucceeded"  #: the latest deployment is SUCCESS
    PROVISIONING = "Provisioning"  #: project and service are being created
    DEPLOYING = "Deploying"  #: a deployment is in progress
    DEPLOY_FAILED = "DeployFailed"  #: the latest deployment failed to build or start
    DEPLOY_CRASHED = "DeployCrashed"  #: the latest deployment crashed after starting
    DEPLOY_TIMEOUT = "DeployTimeout"  #: the latest deployment exceeded the plan's deployTimeoutSeconds
    SUSPENDED = "Suspended"  #: spec.suspend is true; the deployment is stopped
    ROLLED_BACK = (
        "RolledBack"  #: a halted plan rollout is rolling this instance back to its last good deployment
    )
    # Healthy
    HEALTH_CHECK_PASSING = "HealthCheckPassing"  #: the health probe answers
    HEALTH_CHECK_FAILING = "HealthCheckFailing"  #: failureThreshold probes in a row failed
    NOT_PROBED = "NotProbed"  #: nothing to probe yet
    # Ready
    AVAILABLE = "Available"  #: Synced and Deployed True, Healthy not False


# ClawPlan conditions.
VALID = "Valid"
ROLLOUT_COMPLETE = "RolloutComplete"


class PlanReason:
    VALID = "Valid"  #: the plan's source is set and its fields are valid
    PROGRESSING = "Progressing"  #: instances are moving to the current revision
    COMPLETE = "Complete"  #: every instance runs the current revision and is Ready
    HALTED = "Halted"  #: maxFailures instances failed; no further instance starts


class EventReason:
    """Reasons of events that belong to no condition (the rest use `Reason`)."""

    DELETED = "Deleted"  #: the Railway project was deleted with the ClawInstance
    RETAINED = "Retained"  #: deletionPolicy Retain (or Observe): the Railway project is left in place
    DELETE_RETRYING = "DeleteRetrying"  #: deleting on Railway failed; the finalizer stays and it retries
    #: a referenced Secret lacks the claw.io/watch label: read only at the slow resync (said once)
    SECRET_NOT_WATCHED = "SecretNotWatched"
    ROLLOUT_STARTED = "RolloutStarted"  #: a new plan revision started rolling out
    ROLLOUT_HALTED = "RolloutHalted"  #: a rollout halted; the message names the failed instances
    ROLLOUT_COMPLETE = "RolloutComplete"  #: every instance runs the new revision


@dataclass(frozen=True)
class Cond:
    type: str
    status: ConditionStatus
    reason: str
    message: str = ""


def true(type_: str, reason: str, message: str = "") -> Cond:
    return Cond(type_, "True", reason, message)


def false(type_: str, reason: str, message: str = "") -> Cond:
    return Cond(type_, "False", reason, message)


def unknown(type_: str, reason: str, message: str = "") -> Cond:
    return Cond(type_, "Unknown", reason, message)


def ready_from(synced: Cond, deployed: Cond, healthy: Cond) -> Cond:
    """Ready is True when Synced and Deployed are True and Healthy is not False;
    otherwise it carries the reason of the first of them that blocks it."""
    if synced.status == "True" and deployed.status == "True" and healthy.status != "False":
        return true(READY, Reason.AVAILABLE, "The instance is deployed and serving.")
    blocker = next(c for c in (synced, deployed, healthy) if c.status != "True")
    status: ConditionStatus = "Unknown" if blocker.status == "Unknown" else "False"
    return Cond(READY, status, blocker.reason, blocker.message)


def merge(
    previous: list[dict[str, object]] | None, current: list[Cond], *, generation: int | None, now: str
) -> list[dict[str, object]]:
    """New condition dicts, keeping lastTransitionTime where the status is unchanged."""
    before = {str(c.get("type")): c for c in previous or []}
    merged: list[dict[str, object]] = []
    for cond in current:
        old = before.get(cond.type)
        transition = now
        if old is not None and old.get("status") == cond.status and old.get("lastTransitionTime"):
            transition = str(old["lastTransitionTime"])
        merged.append(
            {
                "type": cond.type,
                "status": cond.status,
                "reason": cond.reason,
                "message": cond.message,
                "lastTransitionTime": transition,
                "observedGeneration": generation,
            }
        )
    return merged
