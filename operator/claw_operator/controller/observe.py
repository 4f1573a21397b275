"""Reads Railway and returns what it found as a value. No writes, no events, no status.

Where the project and the service are: recorded in status, named by the
`claw.io/external-name` annotation, or found by name and marker (adoption, so a crash
between "Railway created it" and "status recorded it" heals). A recorded project or
service that Railway no longer has is reported (`forget`), and what can be adopted in
its place is looked up right away.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from claw_operator.api.conditions import Reason
from claw_operator.api.models import EXTERNAL_NAME_ANNOTATION, RailwayRefs
from claw_operator.controller.errors import Terminal
from claw_operator.controller.ports import RailwayHandle, RailwayPort
from claw_operator.controller.resolve import Desired
from claw_operator.railway.errors import RailwayError, RailwayInvalidError, RailwayNotFoundError
from claw_operator.railway.types import (
    Deployment,
    EnvironmentRef,
    Project,
    ServiceInstanceRef,
    ServiceInstanceState,
    ServiceRef,
    TemplateService,
)
from claw_operator.support.redact import redact, truncate_utf8

LOG_TAIL_BYTES = 2048

TemplateCache = dict[tuple[str, str, str], tuple[datetime, TemplateService]]


@dataclass(frozen=True)
class Observation:
    project_id: str | None
    project_name: str | None
    environment_id: str | None
    # "external" / "name": adopted this pass (record it); None: recorded before, or none.
    project_found_by: Literal["external", "name"] | None
    # The project as read this pass (None when its record in status sufficed).
    project: Project | None
    service: ServiceInstanceState | None  # None: no service yet
    adoptable_service: ServiceRef | None  # a service of ours found in the project by name
    forget: Literal["nothing", "project", "service"] = "nothing"
    external_name: str | None = None


def _environment(project: Project) -> EnvironmentRef | None:
    return project.environment("production") or (project.environments[0] if project.environments else None)


async def read_template(
    d: Desired, rail: RailwayPort, cache: TemplateCache, now: datetime, max_age: float
) -> TemplateService | None:
    tpl = d.plan.source.template
    if tpl is None:
        return None
    key = (tpl.projectId, tpl.environmentId, tpl.serviceId)
    cached = cache.get(key)
    if cached and (now - cached[0]).total_seconds() < max_age:
        return cached[1]
    try:
        template = await rail.get_template_service(
            project_id=tpl.projectId, environment_id=tpl.environmentId, service_id=tpl.serviceId
        )
    except RailwayNotFoundError:
        raise Terminal(
            Reason.INVALID_SPEC,
            f"ClawPlan {d.plan_name}: template service {tpl.serviceId} in project {tpl.projectId} was not "
            "found; fix spec.source.template of the plan.",
        ) from None
    cache[key] = (now, template)
    return template


async def locate_project(
    d: Desired, rail: RailwayPort, annotations: dict[str, str]
) -> tuple[Project | None, Literal["external", "name"] | None]:
    """The project named by the annotation, else the one found by name and marker."""
    external = annotations.get(EXTERNAL_NAME_ANNOTATION)
    if external:
        try:
            return await rail.get_project(external), "external"
        except RailwayNotFoundError:
            raise Terminal(
                Reason.INVALID_SPEC,
                f"Annotation {EXTERNAL_NAME_ANNOTATION}={external} names a Railway project that does not "
                "exist for this token; remove the annotation to create a new project, or fix it.",
            ) from None
    project = await rail.find_project(d.project_name, d.marker, d.workspace_id)
    return project, ("name" if project is not None else None)


async def observe(
    d: Desired,
    refs: RailwayRefs,
    annotations: dict[str, str],
    handle: RailwayHandle,
    *,
    with_variables: bool,
) -> Observation:
    rail = handle.client
    forget: Literal["nothing", "project", "service"] = "nothing"
    project: Project | None = None
    found_by: Literal["external", "name"] | None = None
    project_id, project_name = refs.projectId, refs.projectName
    env_id, service_id = refs.environmentId, refs.serviceId

    if project_id and (env_id is None or not service_id):
        # Recorded on an earlier pass (perhaps just before a crash): read it, to adopt a
        # service created after the record.
        try:
            project = await rail.get_project(project_id)
        except RailwayNotFoundError:
            forget, project_id, env_id, service_id = "project", None, None, None
    if not project_id:
        project, found_by = await locate_project(d, rail, annotations)
        service_id = None
    if project is not None:
        env = _environment(project)
        if env is None:
            raise RailwayInvalidError(f"project {project.name} has no environment", operation="Project")
        project_id, project_name, env_id = project.id, project.name, env.id

    service: ServiceInstanceState | None = None
    adoptable: ServiceRef | None = None
    if project_id and env_id and service_id:
        ref = ServiceInstanceRef(projectId=project_id, environmentId=env_id, serviceId=service_id)
        service = await handle.observer.observe(ref, with_variables=with_variables)
        if not service.found:
            forget, service = "service", None
            project = await rail.get_project(project_id)
            env = _environment(project)
            env_id = env.id if env else env_id
    if project is not None and service is None:
        adoptable = next((s for s in project.services if s.name == d.service_name), None)
        if adoptable is None and found_by == "external" and len(project.services) == 1:
            # A project named by the annotation (made by another system, say) holds the
            # instance's one service under whatever name it was given.
            adoptable = project.services[0]
        if adoptable is not None and env_id:
            ref = ServiceInstanceRef(projectId=project.id, environmentId=env_id, serviceId=adoptable.id)
            service = await handle.observer.observe(ref, with_variables=with_variables)
            if not service.found:  # listed but not in this environment: create ours
                service, adoptable = None, None
    return Observation(
        project_id=project_id,
        project_name=project_name,
        environment_id=env_id,
        project_found_by=found_by,
        project=project,
        service=service,
        adoptable_service=adoptable,
        forget=forget,
        external_name=annotations.get(EXTERNAL_NAME_ANNOTATION),
    )


async def read_log_tail(rail: RailwayPort, deployment: Deployment, secrets: frozenset[str]) -> str:
    """The last lines of a failed deployment's logs (runtime logs for a crash), redacted."""
    crashed = deployment.status == "CRASHED"
    try:
        build, runtime_logs = await rail.deployment_logs(deployment.id, limit=40)
    except RailwayError:
        return "(logs unavailable)"
    lines = runtime_logs if crashed and runtime_logs else build or runtime_logs
    text = "\n".join(line.message for line in lines[-20:])
    return truncate_utf8(redact(text, secrets), LOG_TAIL_BYTES) or "(no log lines)"
