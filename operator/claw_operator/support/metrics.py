"""The operator's Prometheus series (API.md, "Metrics") on a registry of their own, and the
typed helpers the other layers call to feed them.

Names follow controller-runtime where they mean the same (so existing dashboards work);
ours carry the `claw_` prefix. No label or value is ever a secret: a token appears only as
`token_label(token)`, a short keyed hash, and everything else is a name, a phase, a plan
or a fixed word. Helpers never raise into the caller: a metric must not break a reconcile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from claw_operator.support.fingerprint import fingerprint

T = TypeVar("T")
log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = CONTENT_TYPE_LATEST

# Reconciles take milliseconds to a minute (a Railway create with retries); deploys and
# time to ready take tens of seconds to tens of minutes.
_RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_DEPLOY_BUCKETS = (5, 10, 20, 30, 60, 90, 120, 180, 300, 450, 600, 900, 1200, 1800, 3600)

reconcile_total = Counter(
    "controller_runtime_reconcile_total",
    "Reconciliations per controller and result (success, error, requeue_after).",
    ["controller", "result"],
    registry=REGISTRY,
)
reconcile_errors_total = Counter(
    "controller_runtime_reconcile_errors_total",
    "Reconciliations that ended in an exception.",
    ["controller"],
    registry=REGISTRY,
)
reconcile_time_seconds = Histogram(
    "controller_runtime_reconcile_time_seconds",
    "Time of one reconciliation.",
    ["controller"],
    buckets=_RECONCILE_BUCKETS,
    registry=REGISTRY,
)
instances = Gauge(
    "claw_instances", "ClawInstances by status.phase and plan.", ["phase", "plan"], registry=REGISTRY
)
instance_ready = Gauge(
    "claw_instance_ready",
    "1 when the ClawInstance's Ready condition is True, else 0.",
    ["namespace", "name"],
    registry=REGISTRY,
)
railway_requests_total = Counter(
    "claw_railway_requests_total",
    "HTTP requests sent to Railway, by GraphQL operation and outcome (each retry counts).",
    ["operation", "outcome"],
    registry=REGISTRY,
)
railway_rate_budget_remaining = Gauge(
    "claw_railway_rate_budget_remaining",
    "Requests left in the current hour for a Railway token (token is a short keyed hash).",
    ["token"],
    registry=REGISTRY,
)
railway_rate_budget_limit = Gauge(
    "claw_railway_rate_budget_limit",
    "The hourly request budget of a Railway token; with the remaining series, a ratio.",
    ["token"],
    registry=REGISTRY,
)
railway_throttled_total = Counter(
    "claw_railway_throttled_total",
    "Responses in which Railway refused a request for its rate limit (HTTP 429).",
    ["token"],
    registry=REGISTRY,
)
railway_token_refused_total = Counter(
    "claw_railway_token_refused_total",
    "Requests Railway refused for the token itself (authentication failed).",
    ["token"],
    registry=REGISTRY,
)
deploy_duration_seconds = Histogram(
    "claw_deploy_duration_seconds",
    "From a deployment's start to its end on Railway, by plan and final Railway status.",
    ["plan", "result"],
    buckets=_DEPLOY_BUCKETS,
    registry=REGISTRY,
)
time_to_ready_seconds = Histogram(
    "claw_time_to_ready_seconds",
    "From a ClawInstance's creation to its first Ready=True.",
    ["plan"],
    buckets=_DEPLOY_BUCKETS,
    registry=REGISTRY,
)
health_probes_total = Counter(
    "claw_health_probes_total",
    "Health probes of instances by result (pass, fail).",
    ["result"],
    registry=REGISTRY,
)
drift_corrections_total = Counter(
    "claw_drift_corrections_total",
    "Changes made on Railway by hand that the operator undid, by kind.",
    ["kind"],
    registry=REGISTRY,
)
usage_cpu = Gauge("claw_usage_cpu", "vCPUs in use (Railway).", ["namespace", "name"], registry=REGISTRY)
usage_memory_gb = Gauge(
    "claw_usage_memory_gb", "Memory in use in GB (Railway).", ["namespace", "name"], registry=REGISTRY
)
usage_network_egress_gb = Gauge(
    "claw_usage_network_egress_gb",
    "Network egress over the last 30 days in GB (Railway).",
    ["namespace", "name"],
    registry=REGISTRY,
)
usage_estimated_cost_usd = Gauge(
    "claw_usage_estimated_cost_usd",
    "Railway's cost estimate for the billing period in USD.",
    ["namespace", "name"],
    registry=REGISTRY,
)
rollout_instances = Gauge(
    "claw_rollout_instances",
    "Instances of a plan's current rollout by state (updated, pending, failed).",
    ["plan", "state"],
    registry=REGISTRY,
)
rollout_halted = Gauge(
    "claw_rollout_halted",
    "1 while a plan's rollout is halted (RolloutComplete=False reason Halted), else 0.",
    ["plan"],
    registry=REGISTRY,
)

# A well-known key still makes the label useless for guessing a high-entropy token; the
# runner sets the operator's fingerprint key so labels are stable across its restarts.
_token_key = b"claw-operator-metrics-token-label"


def configure_token_key(key: bytes) -> None:
    global _token_key
    _token_key = key


def token_label(token: str | None) -> str:
    """The `token` label: "platform" for the operator's own token, else 12 hex digits of
    a keyed hash. Never the token."""
    if token is None:
        return "platform"
    return fingerprint(_token_key, ["metrics-token", token]).removeprefix("hmac-sha256:")[:12]


def exposition() -> bytes:
    return generate_latest(REGISTRY)


# ---------------------------------------------------------------- reconciles


def observe_reconcile(controller: str, result: str, seconds: float) -> None:
    reconcile_total.labels(controller=controller, result=result).inc()
    if result == "error":
        reconcile_errors_total.labels(controller=controller).inc()
    reconcile_time_seconds.labels(controller=controller).observe(max(0.0, seconds))


async def timed_reconcile(controller: str, work: Awaitable[T]) -> T:
    """`await timed_reconcile("clawinstance", state.reconcile_object(...))`: counts and
    times the reconcile, an exception as result "error" (and re-raised)."""
    started = time.monotonic()
    try:
        value = await work
    except asyncio.CancelledError:
        raise  # a stopping operator is no reconcile error
    except Exception:
        observe_reconcile(controller, "error", time.monotonic() - started)
        raise
    observe_reconcile(controller, "success", time.monotonic() - started)
    return value


# ---------------------------------------------------------------- Railway


def railway_request(operation: str, outcome: str) -> None:
    railway_requests_total.labels(operation=operation, outcome=outcome).inc()


def railway_throttled(token: str) -> None:
    """`token` is a `token_label()`, never the token."""
    railway_throttled_total.labels(token=token).inc()


def railway_token_refused(token: str) -> None:
    railway_token_refused_total.labels(token=token).inc()


def railway_failure(token: str, outcome: str) -> None:
    """A request to Railway failed with `outcome` (accounting's words): counts throttles
    ("rate_limited") and refused tokens ("auth") for that token."""
    if outcome == "rate_limited":
        railway_throttled(token)
    elif outcome == "auth":
        railway_token_refused(token)


def set_rate_budget(token: str, remaining: float, limit: float | None = None) -> None:
    railway_rate_budget_remaining.labels(token=token).set(remaining)
    if limit is not None:
        railway_rate_budget_limit.labels(token=token).set(limit)


# ---------------------------------------------------------------- instances

# (namespace, name) -> (phase, plan), and how many instances each (phase, plan) has: a
# change moves one instance between two counts (constant time, whatever the fleet size).
_phase_of: dict[tuple[str, str], tuple[str, str]] = {}
_phase_counts: dict[tuple[str, str], int] = {}
# Deployments already measured, so a steady status is never observed twice.
_deploys_seen: dict[tuple[str, str], str] = {}
_ready_seen: set[tuple[str, str]] = set()

_TERMINAL_DEPLOYS = {"SUCCESS", "FAILED", "CRASHED", "REMOVED", "SKIPPED"}
_BEFORE_FIRST_READY = {None, "", "Pending", "Provisioning", "Deploying"}


def _move(key: tuple[str, str], to: tuple[str, str] | None) -> None:
    """Count instance `key` under `to` (None: it is gone) instead of where it was."""
    before = _phase_of.pop(key, None)
    if before is not None:
        left = _phase_counts[before] - 1
        if left:
            _phase_counts[before] = left
            instances.labels(phase=before[0], plan=before[1]).set(left)
        else:
            del _phase_counts[before]
            with contextlib.suppress(KeyError):
                instances.remove(*before)
    if to is not None:
        _phase_of[key] = to
        _phase_counts[to] = _phase_counts.get(to, 0) + 1
        instances.labels(phase=to[0], plan=to[1]).set(_phase_counts[to])


def set_instances_by_phase(counts: Mapping[tuple[str, str], int]) -> None:
    """For a fleet engine that counts the whole fleet itself: {(phase, plan): n}."""
    _phase_of.clear()
    _phase_counts.clear()
    instances.clear()
    for (phase, plan), n in counts.items():
        instances.labels(phase=phase, plan=plan).set(n)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _ready(status: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def instance_status(body: Mapping[str, Any], status: Mapping[str, Any]) -> None:
    """After a reconcile: `body` is the object as read before it (its status the old one),
    `status` the status the reconcile produced. Feeds claw_instances, claw_instance_ready,
    claw_deploy_duration_seconds and claw_time_to_ready_seconds."""
    try:
        _instance_status(body, status)
    except Exception:
        # A malformed status must cost a metric, never the reconcile that produced it.
        log.exception("metrics: could not record the status of a ClawInstance")


def _instance_status(body: Mapping[str, Any], status: Mapping[str, Any]) -> None:
    meta = body.get("metadata") or {}
    namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    plan = str((body.get("spec") or {}).get("planRef", ""))
    key = (namespace, name)
    phase = str(status.get("phase") or "Pending")
    if _phase_of.get(key) != (phase, plan):
        _move(key, (phase, plan))
    ready = _ready(status)
    instance_ready.labels(namespace=namespace, name=name).set(1 if ready else 0)
    usage = status.get("usage")
    if isinstance(usage, Mapping):
        set_usage(
            namespace,
            name,
            cpu=_number(usage.get("cpu")),
            memory_gb=_number(usage.get("memoryGB")),
            network_egress_gb=_number(usage.get("networkEgressGB")),
            estimated_cost_usd=_number(usage.get("estimatedCostUSD")),
        )

    old = body.get("status") or {}
    if ready and key not in _ready_seen:
        _ready_seen.add(key)
        created = _parse_time(meta.get("creationTimestamp"))
        # Only a first Ready seen happening now counts (not one found after a restart).
        if created is not None and not _ready(old) and old.get("phase") in _BEFORE_FIRST_READY:
            seconds = (datetime.now(created.tzinfo) - created).total_seconds()
            time_to_ready_seconds.labels(plan=plan).observe(max(0.0, seconds))

    deployment = status.get("deployment") or {}
    deploy_id, result = deployment.get("id"), deployment.get("status")
    if deploy_id and result in _TERMINAL_DEPLOYS and _deploys_seen.get(key) != deploy_id:
        _deploys_seen[key] = str(deploy_id)
        old_deploy = old.get("deployment") or {}
        started, finished = (
            _parse_time(deployment.get("startedAt")),
            _parse_time(deployment.get("finishedAt")),
        )
        already_final = old_deploy.get("id") == deploy_id and old_deploy.get("status") in _TERMINAL_DEPLOYS
        if started is not None and finished is not None and not already_final:
            deploy_duration_seconds.labels(plan=plan, result=str(result)).observe(
                max(0.0, (finished - started).total_seconds())
            )


def instance_gone(namespace: str, name: str) -> None:
    """The ClawInstance was deleted: its series go."""
    key = (namespace, name)
    _move(key, None)
    _deploys_seen.pop(key, None)
    _ready_seen.discard(key)
    for gauge in (
        instance_ready,
        usage_cpu,
        usage_memory_gb,
        usage_network_egress_gb,
        usage_estimated_cost_usd,
    ):
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, name)


def health_probe(ok: bool) -> None:
    health_probes_total.labels(result="pass" if ok else "fail").inc()


def drift_corrected(kind: str) -> None:
    """`kind`: what was restored, e.g. "variables", "settings", "source", "service"."""
    drift_corrections_total.labels(kind=kind).inc()


def set_usage(
    namespace: str,
    name: str,
    *,
    cpu: float | None = None,
    memory_gb: float | None = None,
    network_egress_gb: float | None = None,
    estimated_cost_usd: float | None = None,
) -> None:
    for gauge, value in (
        (usage_cpu, cpu),
        (usage_memory_gb, memory_gb),
        (usage_network_egress_gb, network_egress_gb),
        (usage_estimated_cost_usd, estimated_cost_usd),
    ):
        if value is not None:
            gauge.labels(namespace=namespace, name=name).set(value)


def set_rollout(plan: str, *, updated: int, pending: int, failed: int, halted: bool = False) -> None:
    rollout_halted.labels(plan=plan).set(1 if halted else 0)
    for state, n in (("updated", updated), ("pending", pending), ("failed", failed)):
        rollout_instances.labels(plan=plan, state=state).set(n)


def plan_status(plan: str, status: Mapping[str, Any]) -> None:
    """From a ClawPlan's status: its rollout's counts and whether it halted (API.md,
    status.rollout and RolloutComplete). Nothing until a rollout is reported."""
    rollout = status.get("rollout") or {}
    if not isinstance(rollout, Mapping) or not rollout:
        return
    halted = rollout.get("phase") == "Halted" or any(
        c.get("type") == "RolloutComplete" and c.get("status") == "False" and c.get("reason") == "Halted"
        for c in status.get("conditions") or []
        if isinstance(c, Mapping)
    )
    counts = {key: int(rollout.get(key) or 0) for key in ("updated", "pending", "failed")}
    set_rollout(plan, **counts, halted=halted)


def forget_plan(plan: str) -> None:
    with contextlib.suppress(KeyError):
        rollout_halted.remove(plan)
    for state in ("updated", "pending", "failed"):
        with contextlib.suppress(KeyError):
            rollout_instances.remove(plan, state)
