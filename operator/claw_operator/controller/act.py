"""Performs `Changes` on Railway, in the one order that is safe to interrupt: project,
service (created with its variables), variables, then one ServiceConfigure request
(settings, limits, domain, and the source last, which triggers the first deployment),
then the imperative actions. Every id Railway hands back is recorded at once through
`persist`, so a crash from there on adopts instead of creating again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from claw_operator.api.conditions import Reason
from claw_operator.api.models import EXTERNAL_NAME_ANNOTATION
from claw_operator.controller.decide import Changes, Target
from claw_operator.controller.observe import Observation
from claw_operator.controller.ports import RailwayPort
from claw_operator.controller.resolve import Desired
from claw_operator.railway.errors import RailwayInvalidError
from claw_operator.railway.types import Deployment
from claw_operator.support import metrics
from claw_operator.support.redact import redact

Persist = Callable[[dict[str, Any], dict[str, str] | None], Awaitable[None]]


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Ledger:
    """What a pass has done so far: ids, fingerprints of what was applied, the url and the
    events. Kept outside `act` so a failure half-way still reports what was recorded."""

    refs: dict[str, str | None]
    applied: dict[str, str | None]
    url: str | None
    persist: Persist
    secrets: frozenset[str] = frozenset()
    events: list[Event] = field(default_factory=list)

    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.append(Event(type_, reason, redact(message, self.secrets)))

    def railway(self) -> dict[str, str]:
        return {k: v for k, v in self.refs.items() if v is not None}

    async def record(self, annotations: dict[str, str] | None = None) -> None:
        await self.persist({"railway": self.railway()}, annotations)


@dataclass(frozen=True)
class Acted:
    latest: Deployment | None  # the latest deployment after the imperative actions
    deploy_triggered: bool


async def record_location(ledger: Ledger, obs: Observation) -> None:
    """Record a project or service found this pass (a Kubernetes write; Railway untouched)."""
    if obs.forget == "project":
        ledger.event(
            "Warning", Reason.PROVISIONING, f"Railway project {ledger.refs.get('projectId')} is gone."
        )
        ledger.refs = {}
        await ledger.record()
    elif obs.forget == "service":
        ledger.event(
            "Warning", Reason.PROVISIONING, f"Railway service {ledger.refs.get('serviceName')} is gone."
        )
        ledger.refs = {k: v for k, v in ledger.refs.items() if k in ("projectId", "projectName")}
        await ledger.record()
    if obs.project_found_by is not None and obs.project_id:
        ledger.refs.update(
            projectId=obs.project_id, projectName=obs.project_name, environmentId=obs.environment_id
        )
        how = (
            f"from {EXTERNAL_NAME_ANNOTATION}" if obs.project_found_by == "external" else "by name and marker"
        )
        ledger.event("Normal", Reason.PROVISIONING, f"Adopted Railway project {obs.project_name} {how}.")
        annotate = obs.external_name != obs.project_id
        await ledger.record({EXTERNAL_NAME_ANNOTATION: obs.project_id} if annotate else None)
    elif obs.project_id and obs.environment_id and ledger.refs.get("environmentId") != obs.environment_id:
        ledger.refs["environmentId"] = obs.environment_id
    if obs.adoptable_service is not None and obs.service is not None:
        ledger.refs.update(serviceId=obs.adoptable_service.id, serviceName=obs.adoptable_service.name)
        await ledger.record()
        ledger.event(
            "Normal", Reason.PROVISIONING, f"Adopted existing Railway service {obs.adoptable_service.name}."
        )


async def act(
    changes: Changes, obs: Observation, d: Desired, target: Target, rail: RailwayPort, ledger: Ledger
) -> Acted:
    if obs.forget == "project" and changes.project == "create":
        ledger.event("Warning", Reason.PROVISIONING, "Creating the Railway project again.")
    if changes.project == "create":
        project = await rail.create_project(
            name=d.project_name, description=d.marker, workspace_id=d.workspace_id
        )
        env = project.environment("production") or (project.environments[0] if project.environments else None)
        if env is None:
            project = await rail.get_project(project.id)
            env = project.environment("production") or (
                project.environments[0] if project.environments else None
            )
        if env is None:
            raise RailwayInvalidError(f"project {project.name} has no environment", operation="Project")
        ledger.refs = {"projectId": project.id, "projectName": project.name, "environmentId": env.id}
        # Recorded at once: a crash from here on adopts instead of creating again.
        await ledger.record({EXTERNAL_NAME_ANNOTATION: project.id})
        ledger.event("Normal", Reason.PROVISIONING, f"Created Railway project {project.name}.")

    project_id, env_id = ledger.refs.get("projectId"), ledger.refs.get("environmentId")
    assert project_id and env_id, "a project and its environment are located before the service"
    if changes.service == "create":
        service = await rail.create_service(
            project_id=project_id,
            environment_id=env_id,
            name=d.service_name,
            variables=target.variables,
            branch=target.source.get("branch"),
        )
        ledger.refs.update(serviceId=service.id, serviceName=service.name)
        ledger.applied["variables"] = target.variables_fp
        await ledger.record()
        ledger.event("Normal", Reason.PROVISIONING, f"Created Railway service {service.name}.")
    service_id = ledger.refs.get("serviceId")
    assert service_id

    if changes.variables is not None:
        await rail.upsert_variables(
            project_id=project_id,
            environment_id=env_id,
            service_id=service_id,
            variables=target.variables,
            replace=True,
            skip_deploys=changes.variables.skip_deploys,
        )
        if changes.variables.drifted:
            metrics.drift_corrected("variables")
            ledger.event(
                "Warning",
                Reason.APPLIED,
                "Variables were changed on Railway by hand; restored them from the spec.",
            )
        else:
            ledger.event("Normal", Reason.APPLIED, "Applied the new variables on Railway.")
    ledger.applied["variables"] = target.variables_fp

    configure = changes.configure
    if configure is not None:
        result = await rail.configure_service(
            environment_id=env_id,
            service_id=service_id,
            settings=configure.settings,
            limits=configure.limits,
            create_domain=configure.create_domain,
            source=configure.source,
        )
        if result.domain:
            ledger.url = f"https://{result.domain}"
        if configure.source is not None:
            ledger.event("Normal", Reason.DEPLOYING, "Source applied; Railway is deploying.")
    if changes.deploy_for_settings:
        await rail.deploy(environment_id=env_id, service_id=service_id)
        ledger.event("Normal", Reason.DEPLOYING, "Settings changed; deploying again.")
    ledger.applied["config"] = target.config_fp
    seen = obs.service
    if seen is not None and seen.domains and not ledger.url:
        ledger.url = f"https://{seen.domains[0]}"

    latest = seen.latestDeployment if seen is not None else None
    if changes.stop is not None and latest is not None:
        await rail.stop(changes.stop)
        ledger.event("Normal", Reason.SUSPENDED, "Stopped the deployment (spec.suspend is true).")
        latest = latest.model_copy(update={"status": "REMOVED"})
    if changes.resume:
        await rail.deploy(environment_id=env_id, service_id=service_id)
        ledger.event("Normal", Reason.DEPLOYING, "Resumed: deploying again.")
    if changes.redeploy is not None:
        latest = await rail.redeploy(changes.redeploy)
        ledger.event(
            "Normal",
            Reason.DEPLOYING,
            f"Redeploy requested at {changes.redeploy_requested_at}; building and deploying again.",
        )
    if changes.redeploy_requested_at is not None:
        ledger.applied["redeployRequestedAt"] = changes.redeploy_requested_at
    if changes.restart is not None:
        await rail.restart(changes.restart)
        ledger.event(
            "Normal",
            Reason.DEPLOYING,
            f"Restart requested at {changes.restarted_at}; restarted the deployment.",
        )
    if changes.restarted_at is not None:
        ledger.applied["restartedAt"] = changes.restarted_at
    return Acted(latest=latest, deploy_triggered=changes.deploy_triggered)
