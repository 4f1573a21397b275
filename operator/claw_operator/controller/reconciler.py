"""observe -> decide -> act -> status, for one ClawInstance. No Kopf, no HTTP here.

`reconcile()` is level-triggered and idempotent: it reads the desired state (spec, plan,
Secrets), observes Railway, performs only the missing steps and returns the new status.
A second call with nothing changed makes no Railway write, and returns the same status
(so the caller writes nothing to Kubernetes). Ids are persisted the moment Railway
returns them, so a crash between two steps is healed by adoption on the next pass.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from claw_operator.api import conditions as c
from claw_operator.api.conditions import EventReason, Reason
from claw_operator.api.models import (
    EXTERNAL_NAME_ANNOTATION,
    REDEPLOY_REQUESTED_AT_ANNOTATION,
    RESTARTED_AT_ANNOTATION,
)
from claw_operator.config import Settings
from claw_operator.controller.resolve import Desired, SecretGetter, SpecProblem, resolve
from claw_operator.fleet.health import HealthProber
from claw_operator.fleet.observer import FleetObserver
from claw_operator.railway.errors import (
    RailwayAuthError,
    RailwayError,
    RailwayInvalidError,
    RailwayNotFoundError,
    RailwayRateLimitedError,
)
from claw_operator.railway.types import (
    Deployment,
    Project,
    ServiceInstanceRef,
    ServiceInstanceState,
    TemplateService,
)
from claw_operator.rules.naming import project_marker, project_name
from claw_operator.rules.progress import FINISHED, IN_PROGRESS, DurationEstimator, progress_of
from claw_operator.rules.quota import InstanceEntry
from claw_operator.rules.variables import without_railway_variables
from claw_operator.support.clock import now_rfc3339, parse_time
from claw_operator.support.fingerprint import fingerprint
from claw_operator.support.redact import redact, truncate_utf8

log = logging.getLogger(__name__)

LOG_TAIL_BYTES = 2048
FAILED_REASONS = {Reason.DEPLOY_FAILED, Reason.DEPLOY_CRASHED, Reason.DEPLOY_TIMEOUT}


class RailwayPort(Protocol):
    """The subset of RailwayClient the reconciler uses (a fake implements it in tests)."""

    async def find_project(self, name: str, marker: str, workspace_id: str | None) -> Project | None: ...
    async def get_project(self, project_id: str) -> Project: ...
    async def create_project(self, *, name: str, description: str, workspace_id: str | None) -> Project: ...
    async def delete_project(self, project_id: str) -> bool: ...
    async def create_service(
        self,
        *,
        project_id: str,
        environment_id: str,
        name: str,
        variables: dict[str, str],
        branch: str | None = None,
    ) -> Any: ...
    async def get_template_service(
        self, *, project_id: str, environment_id: str, service_id: str
    ) -> TemplateService: ...
    async def configure_service(
        self,
        *,
        environment_id: str,
        service_id: str,
        settings: dict[str, Any] | None,
        limits: dict[str, float] | None,
        create_domain: bool,
        source: dict[str, str] | None,
    ) -> Any: ...
    async def upsert_variables(
        self,
        *,
        project_id: str,
        environment_id: str,
        service_id: str,
        variables: dict[str, str],
        replace: bool = False,
        skip_deploys: bool = False,
    ) -> None: ...
    async def deploy(self, *, environment_id: str, service_id: str) -> str: ...
    async def redeploy(self, deployment_id: str) -> Deployment: ...
    async def restart(self, deployment_id: str) -> None: ...
    async def stop(self, deployment_id: str) -> None: ...
    async def deployment_logs(self, deployment_id: str, limit: int = 50) -> tuple[list[Any], list[Any]]: ...


@dataclass
class RailwayHandle:
    client: RailwayPort
    observer: FleetObserver


@dataclass
class Inputs:
    """Desired-state sources, read from Kubernetes by the caller."""

    plans: Mapping[str, Mapping[str, Any]]
    get_secret: SecretGetter
    instances: list[InstanceEntry]


@dataclass
class Runtime:
    """Long-lived collaborators. Everything here is a cache or a connection: losing it on
    restart costs a few extra reads, never correctness (status is the only memory)."""

    settings: Settings
    handle_for: Callable[[str | None], RailwayHandle]
    prober: HealthProber
    durations: DurationEstimator = field(default_factory=DurationEstimator)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    last_probe: dict[str, datetime] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    templates: dict[tuple[str, str, str], tuple[datetime, TemplateService]] = field(default_factory=dict)

    @property
    def fingerprint_key(self) -> bytes:
        return self.settings.fingerprint_key.get_secret_value().encode()


@dataclass
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Outcome:
    status: dict[str, Any]
    events: list[Event]
    requeue_after: float


Persist = Callable[[dict[str, Any], dict[str, str] | None], Awaitable[None]]


class _Pass:
    """The working state of one reconcile pass."""

    def __init__(self, body: Mapping[str, Any], runtime: Runtime, persist: Persist) -> None:
        self.body = body
        self.runtime = runtime
        self.persist_cb = persist
        self.meta: Mapping[str, Any] = body.get("metadata", {})
        self.uid = str(self.meta.get("uid") or f"{self.meta.get('namespace')}/{self.meta.get('name')}")
        self.status: dict[str, Any] = copy.deepcopy(dict(body.get("status") or {}))
        self.previous: dict[str, Any] = copy.deepcopy(self.status)
        self.refs: dict[str, Any] = dict(self.status.get("railway") or {})
        self.applied: dict[str, Any] = dict(self.status.get("applied") or {})
        self.events: list[Event] = []
        self.now = runtime.clock()
        self.secrets: frozenset[str] = frozenset()

    @property
    def annotations(self) -> Mapping[str, str]:
        return self.meta.get("annotations") or {}

    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.append(Event(type_, reason, redact(message, self.secrets)))

    async def persist(self, annotations: dict[str, str] | None = None) -> None:
        self.status["railway"] = {k: v for k, v in self.refs.items() if v is not None}
        await self.persist_cb({"railway": self.status["railway"]}, annotations)


# ------------------------------------------------------------------ provisioning


async def _ensure_project(p: _Pass, d: Desired, rail: RailwayPort) -> Project | None:
    """The project id in refs, adopting or creating it. Returns the project when it was
    fetched on the way (so its services can be adopted without another read)."""
    if p.refs.get("projectId"):
        return None
    external = p.annotations.get(EXTERNAL_NAME_ANNOTATION)
    project: Project | None = None
    if external:
        try:
            project = await rail.get_project(external)
        except RailwayNotFoundError:
            raise SpecProblem(
                Reason.INVALID_SPEC,
                f"Annotation {EXTERNAL_NAME_ANNOTATION}={external} names a Railway project that does not "
                "exist for this token; remove the annotation to create a new project, or fix it.",
            ) from None
        p.event(
            "Normal",
            Reason.PROVISIONING,
            f"Adopted Railway project {project.name} from {EXTERNAL_NAME_ANNOTATION}.",
        )
    else:
        project = await rail.find_project(d.project_name, d.marker, d.workspace_id)
        if project is not None:
            p.event("Normal", Reason.PROVISIONING, f"Adopted existing Railway project {project.name}.")
        else:
            project = await rail.create_project(
                name=d.project_name, description=d.marker, workspace_id=d.workspace_id
            )
            p.event("Normal", Reason.PROVISIONING, f"Created Railway project {project.name}.")
    env = project.environment("production") or (project.environments[0] if project.environments else None)
    p.refs.update(projectId=project.id, projectName=project.name, environmentId=env.id if env else None)
    # Recorded at once: a crash from here on adopts instead of creating again.
    await p.persist({EXTERNAL_NAME_ANNOTATION: project.id} if external != project.id else None)
    return project


async def _template(p: _Pass, d: Desired, rail: RailwayPort) -> TemplateService | None:
    tpl = d.plan.source.template
    if tpl is None:
        return None
    key = (tpl.projectId, tpl.environmentId, tpl.serviceId)
    cached = p.runtime.templates.get(key)
    if cached and (p.now - cached[0]).total_seconds() < p.runtime.settings.resync_seconds:
        return cached[1]
    try:
        template = await rail.get_template_service(
            project_id=tpl.projectId, environment_id=tpl.environmentId, service_id=tpl.serviceId
        )
    except RailwayNotFoundError:
        raise SpecProblem(
            Reason.INVALID_SPEC,
            f"ClawPlan {d.plan_name}: template service {tpl.serviceId} in project {tpl.projectId} was not "
            "found; fix spec.source.template of the plan.",
        ) from None
    p.runtime.templates[key] = (p.now, template)
    return template


def _desired_config(d: Desired, template: TemplateService | None) -> dict[str, Any]:
    plan = d.plan
    settings: dict[str, Any] = {}
    source: dict[str, str] = {}
    if template is not None:
        for name in ("startCommand", "restartPolicyType", "restartPolicyMaxRetries", "healthcheckTimeout"):
            value = getattr(template, name)
            if value is not None:
                settings[name] = value
        if template.source and template.source.image:
            source = {"image": template.source.image}
        elif template.source and template.source.repo:
            source = {"repo": template.source.repo}
    elif plan.source.image:
        source = {"image": plan.source.image}
    elif plan.source.repo:
        source = {"repo": plan.source.repo.name, "branch": plan.source.repo.branch}
    settings.update(healthcheckPath=plan.healthCheck.path, numReplicas=plan.replicas)
    if plan.region:
        settings["region"] = plan.region
    limits: dict[str, float] = {}
    if plan.resources:
        if plan.resources.vCPUs is not None:
            limits["vCPUs"] = plan.resources.vCPUs
        if plan.resources.memoryGB is not None:
            limits["memoryGB"] = plan.resources.memoryGB
    return {"settings": settings, "limits": limits, "source": source}


def _source_differs(observed: ServiceInstanceState, source: dict[str, str]) -> bool:
    seen = observed.source
    if seen is None or not (seen.image or seen.repo):
        return True
    if "image" in source:
        return seen.image != source["image"]
    return seen.repo != source.get("repo")


def _settings_differ(observed: ServiceInstanceState, settings: dict[str, Any]) -> bool:
    return (
        observed.healthcheckPath != settings.get("healthcheckPath")
        or observed.numReplicas != settings.get("numReplicas")
        or ("region" in settings and observed.region != settings["region"])
    )


async def _converge(p: _Pass, d: Desired, handle: RailwayHandle) -> ServiceInstanceState | None:
    """Make Railway match `d`; return the service instance as last seen."""
    rail = handle.client
    project = await _ensure_project(p, d, rail)
    template = await _template(p, d, rail)
    want_vars = d.variables(template.variables if template else None)
    want_cfg = _desired_config(d, template)
    vars_fp = fingerprint(p.runtime.fingerprint_key, want_vars)
    cfg_fp = fingerprint(p.runtime.fingerprint_key, want_cfg)
    env_id = p.refs.get("environmentId")
    project_id = p.refs["projectId"]

    if env_id is None or (not p.refs.get("serviceId") and project is None):
        # The project was recorded on an earlier pass (perhaps just before a crash): read it
        # to adopt a service created after the record.
        try:
            project = await rail.get_project(project_id)
        except RailwayNotFoundError:
            p.event(
                "Warning", Reason.PROVISIONING, f"Railway project {project_id} is gone; creating it again."
            )
            p.refs = {}
            await p.persist()
            return await _converge(p, d, handle)
        env = project.environment("production") or (project.environments[0] if project.environments else None)
        if env is None:
            raise RailwayInvalidError(f"project {project.name} has no environment", operation="Project")
        env_id = env.id
        p.refs["environmentId"] = env_id

    observed: ServiceInstanceState
    fresh = False
    if not p.refs.get("serviceId"):
        existing = next((s for s in (project.services if project else []) if s.name == d.service_name), None)
        if existing is not None:
            p.refs.update(serviceId=existing.id, serviceName=existing.name)
            await p.persist()
            p.event("Normal", Reason.PROVISIONING, f"Adopted existing Railway service {existing.name}.")
        else:
            branch = want_cfg["source"].get("branch")
            service = await rail.create_service(
                project_id=project_id,
                environment_id=env_id,
                name=d.service_name,
                variables=want_vars,
                branch=branch,
            )
            p.refs.update(serviceId=service.id, serviceName=service.name)
            p.applied["variables"] = vars_fp
            await p.persist()
            p.event("Normal", Reason.PROVISIONING, f"Created Railway service {service.name}.")
            fresh = True

    ref = ServiceInstanceRef(projectId=project_id, environmentId=env_id, serviceId=p.refs["serviceId"])
    if fresh:
        # Known without asking: variables as just sent, no source, domain or deployment.
        observed = ServiceInstanceState(ref=ref, variables=want_vars)
    else:
        deploying = (p.status.get("deployment") or {}).get("status") in IN_PROGRESS
        need_vars = not deploying or p.applied.get("variables") != vars_fp
        observed = await handle.observer.observe(ref, with_variables=need_vars)
        if not observed.found:
            p.event(
                "Warning",
                Reason.PROVISIONING,
                f"Railway service {p.refs.get('serviceName')} is gone; recreating.",
            )
            p.refs = {k: v for k, v in p.refs.items() if k in ("projectId", "projectName")}
            await p.persist()
            return await _converge(p, d, handle)

    # Decide.
    if observed.variables is not None:
        current = without_railway_variables(observed.variables)
        vars_differ = current != want_vars
        drifted = vars_differ and p.applied.get("variables") == vars_fp
    else:
        vars_differ = p.applied.get("variables") != vars_fp
        drifted = False
    source_differs = _source_differs(observed, want_cfg["source"])
    observable_settings_differ = _settings_differ(observed, want_cfg["settings"])
    settings_differ = p.applied.get("config") != cfg_fp or observable_settings_differ
    domain_missing = not observed.domains
    has_deployment = observed.latestDeployment is not None

    # Act.
    deploy_triggered = False
    if vars_differ:
        skip = source_differs or not has_deployment
        await rail.upsert_variables(
            project_id=project_id,
            environment_id=env_id,
            service_id=ref.serviceId,
            variables=want_vars,
            replace=True,
            skip_deploys=skip,
        )
        deploy_triggered = not skip
        if drifted:
            p.event(
                "Warning",
                Reason.APPLIED,
                "Variables were changed on Railway by hand; restored them from the spec.",
            )
        else:
            p.event("Normal", Reason.APPLIED, "Applied the new variables on Railway.")
    p.applied["variables"] = vars_fp
    if settings_differ or domain_missing or source_differs:
        result = await rail.configure_service(
            environment_id=env_id,
            service_id=ref.serviceId,
            settings=want_cfg["settings"] if settings_differ else None,
            limits=(want_cfg["limits"] or None) if settings_differ else None,
            create_domain=domain_missing,
            source=want_cfg["source"] if source_differs else None,
        )
        if getattr(result, "domain", None):
            p.status["url"] = f"https://{result.domain}"
        if source_differs:
            deploy_triggered = True
            p.event("Normal", Reason.DEPLOYING, "Source applied; Railway is deploying.")
    if observable_settings_differ and has_deployment and not deploy_triggered and not fresh:
        await rail.deploy(environment_id=env_id, service_id=ref.serviceId)
        deploy_triggered = True
        p.event("Normal", Reason.DEPLOYING, "Settings changed; deploying again.")
    p.applied["config"] = cfg_fp
    if observed.domains and not p.status.get("url"):
        p.status["url"] = f"https://{observed.domains[0]}"

    latest, deploy_triggered = await _imperative_actions(
        p, d, rail, env_id, ref, observed.latestDeployment, deploy_triggered
    )
    if deploy_triggered:
        p.status["deployment"] = {
            "status": "QUEUED",
            "progress": progress_of("QUEUED"),
            "startedAt": now_rfc3339(p.now),
        }
        p.status["deployment"]["estimatedSecondsRemaining"] = int(p.runtime.durations.expected(d.plan_name))
        return None
    return ServiceInstanceState(**{**observed.model_dump(), "latestDeployment": latest})


async def _imperative_actions(
    p: _Pass,
    d: Desired,
    rail: RailwayPort,
    env_id: str,
    ref: ServiceInstanceRef,
    latest: Deployment | None,
    deploy_triggered: bool,
) -> tuple[Deployment | None, bool]:
    """Suspend/resume and the restart/redeploy annotations, each acted on once.
    Returns the latest deployment and whether a new one was triggered."""
    if d.spec.suspend:
        if latest is not None and latest.status not in {"REMOVED", "REMOVING", "SKIPPED"}:
            await rail.stop(latest.id)
            p.event("Normal", Reason.SUSPENDED, "Stopped the deployment (spec.suspend is true).")
            latest = latest.model_copy(update={"status": "REMOVED"})
        return latest, False
    if latest is not None and latest.status == "REMOVED" and not deploy_triggered:
        await rail.deploy(environment_id=env_id, service_id=ref.serviceId)
        p.event("Normal", Reason.DEPLOYING, "Resumed: deploying again.")
        return latest, True
    redeploy = p.annotations.get(REDEPLOY_REQUESTED_AT_ANNOTATION)
    if redeploy and redeploy != p.applied.get("redeployRequestedAt"):
        if latest is not None and not deploy_triggered:
            latest = await rail.redeploy(latest.id)
            p.event(
                "Normal", Reason.DEPLOYING, f"Redeploy requested at {redeploy}; building and deploying again."
            )
        p.applied["redeployRequestedAt"] = redeploy
    restart = p.annotations.get(RESTARTED_AT_ANNOTATION)
    if restart and restart != p.applied.get("restartedAt"):
        if latest is not None and latest.status in {"SUCCESS", "SLEEPING", "CRASHED"}:
            await rail.restart(latest.id)
            p.event("Normal", Reason.DEPLOYING, f"Restart requested at {restart}; restarted the deployment.")
        p.applied["restartedAt"] = restart
    return latest, deploy_triggered


# ------------------------------------------------------------------ status


async def _log_tail(p: _Pass, rail: RailwayPort, deployment: Deployment, crashed: bool) -> str:
    try:
        build, runtime_logs = await rail.deployment_logs(deployment.id, limit=40)
    except RailwayError:
        return "(logs unavailable)"
    lines = runtime_logs if crashed and runtime_logs else build or runtime_logs
    text = "\n".join(str(getattr(line, "message", line)) for line in lines[-20:])
    return truncate_utf8(redact(text, p.secrets), LOG_TAIL_BYTES) or "(no log lines)"


async def _deployed_condition(
    p: _Pass, d: Desired, rail: RailwayPort, latest: Deployment | None, url: str | None
) -> c.Cond:
    previous = dict(p.status.get("deployment") or {})
    if d.spec.suspend:
        if latest is not None:
            p.status["deployment"] = {
                **previous,
                "id": latest.id or previous.get("id"),
                "status": latest.status,
                "progress": progress_of(latest.status),
            }
        return c.false(
            c.DEPLOYED, Reason.SUSPENDED, "Suspended: spec.suspend is true; set it to false to resume."
        )
    if latest is None:
        if previous.get("status") == "QUEUED" and not previous.get("id"):
            return c.false(c.DEPLOYED, Reason.DEPLOYING, "Deployment queued on Railway.")
        return c.false(c.DEPLOYED, Reason.PROVISIONING, "Creating the Railway project and service.")
    started = parse_time(latest.createdAt)
    record: dict[str, Any] = {
        "id": latest.id or None,
        "status": latest.status,
        "progress": progress_of(latest.status),
        "startedAt": latest.createdAt or previous.get("startedAt"),
    }
    changed = previous.get("id") != record["id"] or previous.get("status") != latest.status
    if latest.status in FINISHED:
        record["finishedAt"] = latest.statusUpdatedAt or latest.updatedAt
    elif changed:
        # Estimated once per status change; recomputing it every poll would write status
        # for a number nobody acts on.
        record["estimatedSecondsRemaining"] = p.runtime.durations.remaining(d.plan_name, started, p.now)
    else:
        record["estimatedSecondsRemaining"] = previous.get("estimatedSecondsRemaining")
    if latest.status == "SUCCESS" and changed and previous.get("status") in IN_PROGRESS and started:
        finished = parse_time(record.get("finishedAt")) or p.now
        p.runtime.durations.record(d.plan_name, (finished - started).total_seconds())
    p.status["deployment"] = {k: v for k, v in record.items() if v is not None}

    prior = _condition(p.previous, c.DEPLOYED)
    same_deployment = previous.get("id") == latest.id and previous.get("status") == latest.status
    if latest.status in {"SUCCESS", "SLEEPING"}:
        if changed:
            p.event(
                "Normal", Reason.DEPLOYMENT_SUCCEEDED, f"Deployment {latest.id} succeeded; serving at {url}."
            )
        return c.true(c.DEPLOYED, Reason.DEPLOYMENT_SUCCEEDED, f"Deployment {latest.id} is live.")
    if latest.status in {"FAILED", "CRASHED"}:
        reason = Reason.DEPLOY_CRASHED if latest.status == "CRASHED" else Reason.DEPLOY_FAILED
        if same_deployment and prior and prior.get("reason") == reason:
            return c.false(c.DEPLOYED, reason, str(prior.get("message", "")))
        tail = await _log_tail(p, rail, latest, crashed=latest.status == "CRASHED")
        verb = "crashed after starting" if reason == Reason.DEPLOY_CRASHED else "failed"
        message = (
            f"Deployment {latest.id} {verb}; fix the cause, then set annotation "
            f"{REDEPLOY_REQUESTED_AT_ANNOTATION} or change the spec to deploy again. Last log lines:\n{tail}"
        )
        p.event("Warning", reason, message)
        return c.false(c.DEPLOYED, reason, message)
    if latest.status in IN_PROGRESS:
        timeout = d.plan.deployTimeoutSeconds
        if started is not None and (p.now - started).total_seconds() > timeout:
            message = (
                f"Deployment {latest.id} is still {latest.status} after {timeout}s "
                "(plan deployTimeoutSeconds); "
                f"check the build logs, then set annotation {REDEPLOY_REQUESTED_AT_ANNOTATION} to try again."
            )
            if not (prior and prior.get("reason") == Reason.DEPLOY_TIMEOUT):
                p.event("Warning", Reason.DEPLOY_TIMEOUT, message)
            return c.false(c.DEPLOYED, Reason.DEPLOY_TIMEOUT, message)
        if changed:
            p.event(
                "Normal",
                Reason.DEPLOYING,
                f"Deployment {latest.id or ''} is {latest.status}.".replace("  ", " "),
            )
        return c.false(c.DEPLOYED, Reason.DEPLOYING, f"Deployment is {latest.status} on Railway.")
    return c.false(c.DEPLOYED, Reason.DEPLOYING, f"Deployment is {latest.status}; deploying again.")


async def _healthy_condition(p: _Pass, d: Desired, deployed: c.Cond) -> c.Cond:
    previous = dict(p.status.get("health") or {})
    url = p.status.get("url")
    if deployed.status != "True" or not url:
        return c.unknown(c.HEALTHY, Reason.NOT_PROBED, "Nothing to probe until the deployment succeeds.")
    check = d.plan.healthCheck
    last = p.runtime.last_probe.get(p.uid)
    due = last is None or (p.now - last).total_seconds() >= check.intervalSeconds or not previous
    health = previous or {"status": "Unknown", "consecutiveFailures": 0, "lastError": ""}
    if due:
        result = await p.runtime.prober.probe(url, check.path, check.timeoutSeconds)
        p.runtime.last_probe[p.uid] = p.now
        failures = 0 if result.ok else int(health.get("consecutiveFailures", 0)) + 1
        if result.ok:
            new_status = "Healthy"
        elif failures >= check.failureThreshold:
            new_status = "Unhealthy"
        else:
            new_status = health.get("status", "Unknown")
        health = {
            "status": new_status,
            "since": now_rfc3339(p.now) if new_status != previous.get("status") else previous.get("since"),
            "consecutiveFailures": failures,
            "lastError": redact(result.error, p.secrets) if not result.ok else "",
        }
        if new_status != previous.get("status") and new_status == "Unhealthy":
            p.event("Warning", Reason.HEALTH_CHECK_FAILING, f"Health check failing: {health['lastError']}.")
    p.status["health"] = health
    if health["status"] == "Healthy":
        return c.true(c.HEALTHY, Reason.HEALTH_CHECK_PASSING, f"{check.path} answers.")
    if health["status"] == "Unhealthy":
        return c.false(
            c.HEALTHY,
            Reason.HEALTH_CHECK_FAILING,
            f"{health['consecutiveFailures']} health checks in a row failed ({health['lastError']}); "
            "check the application logs.",
        )
    return c.unknown(c.HEALTHY, Reason.NOT_PROBED, "Waiting for the first passing health check.")


def _condition(status: Mapping[str, Any], type_: str) -> dict[str, Any] | None:
    return next((dict(x) for x in status.get("conditions") or [] if x.get("type") == type_), None)


def _previous_cond(p: _Pass, type_: str, default: c.Cond) -> c.Cond:
    old = _condition(p.previous, type_)
    if old is None:
        return default
    return c.Cond(
        type_, old.get("status", "Unknown"), old.get("reason", default.reason), old.get("message", "")
    )


def _phase(p: _Pass, synced: c.Cond, deployed: c.Cond, healthy: c.Cond, ready: c.Cond) -> tuple[str, str]:
    has_run = bool(p.refs.get("projectId"))
    if synced.status != "True":
        if synced.reason == Reason.INVALID_SPEC:
            return "Failed", synced.message
        return ("Degraded" if has_run else "Pending"), synced.message
    if deployed.reason == Reason.SUSPENDED:
        return "Suspended", deployed.message
    if deployed.reason in FAILED_REASONS:
        return "Failed", deployed.message.split("\n", 1)[0]
    if ready.status == "True":
        return "Running", f"Serving at {p.status.get('url')}."
    if healthy.status == "False":
        return "Degraded", healthy.message
    if deployed.reason == Reason.DEPLOYING:
        return "Deploying", deployed.message
    return "Provisioning", deployed.message


def _finish(p: _Pass, synced: c.Cond, deployed: c.Cond, healthy: c.Cond) -> None:
    ready = c.ready_from(synced, deployed, healthy)
    phase, message = _phase(p, synced, deployed, healthy, ready)
    generation = p.meta.get("generation")
    p.status["phase"] = phase
    p.status["message"] = redact(message, p.secrets)
    p.status["observedGeneration"] = generation
    if p.refs:
        p.status["railway"] = {k: v for k, v in p.refs.items() if v is not None}
    if p.applied:
        p.status["applied"] = {k: v for k, v in p.applied.items() if v is not None}
    conds = [ready, synced, deployed, healthy]
    conds = [c.Cond(x.type, x.status, x.reason, redact(x.message, p.secrets)) for x in conds]
    p.status["conditions"] = c.merge(
        p.previous.get("conditions"), conds, generation=generation, now=now_rfc3339(p.now)
    )


def _requeue(p: _Pass, d: Desired | None, deployed: c.Cond) -> float:
    settings = p.runtime.settings
    if deployed.reason in {Reason.DEPLOYING, Reason.PROVISIONING}:
        return settings.deploying_poll_seconds
    if d is not None and deployed.status == "True":
        return float(min(settings.resync_seconds, d.plan.healthCheck.intervalSeconds))
    return settings.resync_seconds


def _backoff(p: _Pass, hint: float | None = None) -> float:
    attempts = p.runtime.failures.get(p.uid, 0) + 1
    p.runtime.failures[p.uid] = attempts
    delay: float = min(300.0, 2.0 * 2.0 ** min(attempts, 8))
    return max(delay, float(hint or 0.0))


def _railway_failure(p: _Pass, exc: RailwayError, mode_self_hosted: bool) -> tuple[c.Cond, float]:
    text = redact(str(exc), p.secrets)
    if isinstance(exc, RailwayAuthError):
        where = "the token Secret in spec.railway.tokenSecretRef" if mode_self_hosted else "RAILWAY_TOKEN"
        return (
            c.false(
                c.SYNCED, Reason.RAILWAY_AUTH_FAILED, f"Railway refused the token ({text}); check {where}."
            ),
            _backoff(p, p.runtime.settings.resync_seconds),
        )
    if isinstance(exc, RailwayRateLimitedError):
        return (
            c.false(
                c.SYNCED, Reason.RATE_LIMITED, f"Railway rate limit reached ({text}); retrying automatically."
            ),
            _backoff(p, exc.retry_after),
        )
    if isinstance(exc, RailwayInvalidError):
        return (
            c.false(
                c.SYNCED,
                Reason.INVALID_SPEC,
                f"Railway rejected the request ({text}); check the plan and spec.",
            ),
            p.runtime.settings.resync_seconds,
        )
    return (
        c.false(
            c.SYNCED, Reason.RAILWAY_UNAVAILABLE, f"Railway is not answering ({text}); retrying with backoff."
        ),
        _backoff(p),
    )


# ------------------------------------------------------------------ entry points


async def reconcile(body: Mapping[str, Any], runtime: Runtime, inputs: Inputs, persist: Persist) -> Outcome:
    p = _Pass(body, runtime, persist)
    settings = runtime.settings
    not_probed = c.unknown(c.HEALTHY, Reason.NOT_PROBED, "Nothing to probe yet.")
    try:
        d = await resolve(
            body=body,
            plans=inputs.plans,
            get_secret=inputs.get_secret,
            instances=inputs.instances,
            prefix=settings.project_prefix,
            cluster=settings.cluster_name,
            max_managed=settings.max_managed_instances,
            default_workspace=settings.railway_workspace_id,
        )
    except SpecProblem as problem:
        synced = c.false(c.SYNCED, problem.reason, problem.message)
        prior = _condition(p.previous, c.SYNCED)
        if not prior or prior.get("reason") != problem.reason or prior.get("message") != problem.message:
            p.event("Warning", problem.reason, problem.message)
        never_ran = not p.refs.get("projectId")
        deployed = (
            c.unknown(c.DEPLOYED, Reason.PROVISIONING, "Waiting for a valid spec.")
            if never_ran
            else _previous_cond(p, c.DEPLOYED, c.unknown(c.DEPLOYED, Reason.PROVISIONING))
        )
        healthy = not_probed if never_ran else _previous_cond(p, c.HEALTHY, not_probed)
        _finish(p, synced, deployed, healthy)
        return Outcome(p.status, p.events, settings.resync_seconds)

    p.secrets = d.secret_values
    try:
        handle = runtime.handle_for(d.token)
        observed = await _converge(p, d, handle)
        synced = c.true(c.SYNCED, Reason.APPLIED, "The spec is applied on Railway.")
        latest = observed.latestDeployment if observed is not None else None
        if observed is None:  # a deployment was just triggered; the next poll sees it
            deployed = c.false(c.DEPLOYED, Reason.DEPLOYING, "Deployment queued on Railway.")
        else:
            deployed = await _deployed_condition(p, d, handle.client, latest, p.status.get("url"))
        healthy = await _healthy_condition(p, d, deployed)
        runtime.failures.pop(p.uid, None)
        requeue = _requeue(p, d, deployed)
    except SpecProblem as problem:
        synced = c.false(c.SYNCED, problem.reason, problem.message)
        p.event("Warning", problem.reason, problem.message)
        deployed = _previous_cond(p, c.DEPLOYED, c.unknown(c.DEPLOYED, Reason.PROVISIONING))
        healthy = _previous_cond(p, c.HEALTHY, not_probed)
        requeue = settings.resync_seconds
    except RailwayError as exc:
        synced, requeue = _railway_failure(p, exc, d.token is not None)
        prior = _condition(p.previous, c.SYNCED)
        if not prior or prior.get("reason") != synced.reason:
            p.event("Warning", synced.reason, synced.message)
        log.info("railway call failed for %s/%s: %s", d.namespace, d.name, synced.message)
        deployed = _previous_cond(p, c.DEPLOYED, c.unknown(c.DEPLOYED, Reason.PROVISIONING))
        healthy = _previous_cond(p, c.HEALTHY, not_probed)
    _finish(p, synced, deployed, healthy)
    return Outcome(p.status, p.events, requeue)


class FinalizeRetry(Exception):
    """Deletion must wait (Railway unreachable); the finalizer stays."""

    def __init__(self, message: str, delay: float) -> None:
        super().__init__(message)
        self.delay = delay


async def finalize(
    body: Mapping[str, Any], runtime: Runtime, get_secret: SecretGetter, persist: Persist
) -> list[Event]:
    """Honour deletionPolicy. Returns when the finalizer may go; raises FinalizeRetry."""
    p = _Pass(body, runtime, persist)
    meta = p.meta
    namespace, name = str(meta.get("namespace", "")), str(meta["name"])
    spec = dict(body.get("spec") or {})
    if p.status.get("phase") != "Deleting":
        await persist({"phase": "Deleting", "message": "Deleting the instance."}, None)
    if spec.get("deletionPolicy", "Delete") == "Retain":
        p.event(
            "Normal", EventReason.RETAINED, "deletionPolicy is Retain: the Railway project is left in place."
        )
        return p.events
    token: str | None = None
    railway = spec.get("railway") or {}
    if railway.get("mode") == "SelfHosted":
        ref = railway.get("tokenSecretRef") or {}
        data = await get_secret(namespace, str(ref.get("name", ""))) if ref.get("name") else None
        token = (data or {}).get(str(ref.get("key", "")))
        if not token:
            raise FinalizeRetry(
                "Cannot delete the Railway project: the token Secret in spec.railway.tokenSecretRef is "
                "missing; "
                "restore it, or set deletionPolicy: Retain.",
                runtime.settings.resync_seconds,
            )
        p.secrets = frozenset({token})
    rail = runtime.handle_for(token).client
    settings = runtime.settings
    try:
        project_id = p.refs.get("projectId") or p.annotations.get(EXTERNAL_NAME_ANNOTATION)
        if not project_id:
            # A crash right after create leaves no record: look it up, as for adoption.
            found = await rail.find_project(
                project_name(settings.project_prefix, namespace, name),
                project_marker(settings.cluster_name, namespace, name),
                railway.get("workspaceId") or (settings.railway_workspace_id if token is None else None),
            )
            project_id = found.id if found else None
        if project_id:
            await rail.delete_project(project_id)
            # Believe a delete only once a read says the project is gone.
            try:
                await rail.get_project(project_id)
            except RailwayNotFoundError:
                p.event(
                    "Normal",
                    EventReason.DELETED,
                    f"Deleted Railway project {p.refs.get('projectName') or project_id}.",
                )
            else:
                raise FinalizeRetry("The Railway project still exists after delete; retrying.", 5.0)
    except RailwayError as exc:
        delay = _backoff(p, getattr(exc, "retry_after", None))
        message = redact(str(exc), p.secrets)
        await persist({"message": f"Deleting: Railway failed ({message}); retrying in {delay:.0f}s."}, None)
        raise FinalizeRetry(f"Railway failed during delete: {message}", delay) from None
    runtime.last_probe.pop(p.uid, None)
    runtime.failures.pop(p.uid, None)
    return p.events
