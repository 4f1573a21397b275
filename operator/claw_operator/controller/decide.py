"""Pure decisions: what Railway should look like (`Target`) and what to change to get there
(`Changes`), from an `Observation`. No I/O, no clock.

The diff in `Changes.diff` names fields and variable names, never values: it is logged, and
shown to users in Observe mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from claw_operator.api.models import (
    REDEPLOY_REQUESTED_AT_ANNOTATION,
    RESTARTED_AT_ANNOTATION,
    AppliedState,
    ManagementPolicy,
)
from claw_operator.controller.observe import Observation
from claw_operator.controller.ports import SettingValue
from claw_operator.controller.resolve import Desired
from claw_operator.railway.types import Deployment, ServiceInstanceState, TemplateService
from claw_operator.rules.variables import without_railway_variables
from claw_operator.support.fingerprint import fingerprint

# Settings Railway reports back on a service instance, so drift in them is visible.
OBSERVABLE_SETTINGS = ("healthcheckPath", "numReplicas", "region")
STOPPED = frozenset({"REMOVED", "REMOVING", "SKIPPED"})
RESTARTABLE = frozenset({"SUCCESS", "SLEEPING", "CRASHED"})


@dataclass(frozen=True)
class Target:
    """The service as it should be on Railway."""

    variables: dict[str, str]
    settings: dict[str, SettingValue]
    limits: dict[str, float]
    source: dict[str, str]
    variables_fp: str
    config_fp: str


def target_of(d: Desired, template: TemplateService | None, key: bytes) -> Target:
    plan = d.plan
    settings: dict[str, SettingValue] = {}
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
    variables = d.variables(template.variables if template else None)
    config = {"settings": settings, "limits": limits, "source": source}
    return Target(
        variables=variables,
        settings=settings,
        limits=limits,
        source=source,
        variables_fp=fingerprint(key, variables),
        config_fp=fingerprint(key, config),
    )


@dataclass(frozen=True)
class VariablesChange:
    skip_deploys: bool  # a deploy follows anyway (new source), or nothing runs yet
    drifted: bool  # changed on Railway by hand since the operator applied them


@dataclass(frozen=True)
class Configure:
    """One ServiceConfigure request: any of settings+limits, a domain, the source."""

    settings: dict[str, SettingValue] | None
    limits: dict[str, float] | None
    create_domain: bool
    source: dict[str, str] | None


@dataclass(frozen=True)
class Changes:
    forget: Literal["nothing", "project", "service"] = "nothing"  # recorded on Railway, now gone
    project: Literal["keep", "create", "adopt"] = "keep"
    service: Literal["keep", "create", "adopt"] = "keep"
    variables: VariablesChange | None = None
    configure: Configure | None = None
    deploy_for_settings: bool = False
    stop: str | None = None  # deployment id
    resume: bool = False
    redeploy: str | None = None  # deployment id
    restart: str | None = None  # deployment id
    # Annotation values acted on now (applied.restartedAt / redeployRequestedAt).
    restarted_at: str | None = None
    redeploy_requested_at: str | None = None
    diff: tuple[str, ...] = field(default_factory=tuple)

    @property
    def deploy_triggered(self) -> bool:
        return bool(
            (self.variables is not None and not self.variables.skip_deploys)
            or (self.configure is not None and self.configure.source is not None)
            or self.deploy_for_settings
            or self.resume
        )

    @property
    def writes(self) -> bool:
        """Whether any Railway write is needed."""
        return bool(
            self.project == "create"
            or self.service == "create"
            or self.variables is not None
            or self.configure is not None
            or self.deploy_for_settings
            or self.stop
            or self.resume
            or self.redeploy
            or self.restart
        )


def _source_differs(seen: ServiceInstanceState | None, source: dict[str, str]) -> bool:
    observed = seen.source if seen is not None else None
    if observed is None or not (observed.image or observed.repo):
        return True
    if "image" in source:
        return observed.image != source["image"]
    return observed.repo != source.get("repo")


def _settings_diff(seen: ServiceInstanceState | None, settings: dict[str, SettingValue]) -> list[str]:
    if seen is None:
        return ["healthcheckPath", "numReplicas"] + (["region"] if "region" in settings else [])
    out = []
    if seen.healthcheckPath != settings.get("healthcheckPath"):
        out.append("healthcheckPath")
    if seen.numReplicas != settings.get("numReplicas"):
        out.append("numReplicas")
    if "region" in settings and seen.region != settings["region"]:
        out.append("region")
    return out


def _variable_names_differing(current: dict[str, str], wanted: dict[str, str]) -> list[str]:
    return sorted(k for k in set(current) | set(wanted) if current.get(k) != wanted.get(k))


def decide(
    obs: Observation,
    target: Target,
    d: Desired,
    applied: AppliedState,
    annotations: dict[str, str],
) -> Changes:
    observe_only = d.spec.managementPolicy == ManagementPolicy.Observe
    project: Literal["keep", "create", "adopt"] = "keep"
    if obs.project_id is None:
        project = "create"
    elif obs.project_found_by is not None:
        project = "adopt"
    service: Literal["keep", "create", "adopt"] = "keep"
    if obs.service is None and obs.adoptable_service is None:
        service = "create"
    elif obs.adoptable_service is not None:
        service = "adopt"
    fresh = service == "create"
    seen = obs.service
    diff: list[str] = []
    if project == "create":
        diff.append("project (does not exist)")
    elif fresh:
        diff.append("service (does not exist)")

    # Variables.
    if fresh:
        vars_differ, drifted = False, False  # created with them
    elif seen is not None and seen.variables is not None:
        current = without_railway_variables(seen.variables)
        names = _variable_names_differing(current, target.variables)
        vars_differ = bool(names)
        drifted = vars_differ and applied.variables == target.variables_fp
        if names:
            diff.append("variables: " + ", ".join(names))
    else:
        vars_differ = applied.variables != target.variables_fp
        drifted = False
        if vars_differ:
            diff.append("variables")

    source_differs = _source_differs(seen, target.source)
    if source_differs and not fresh:
        diff.append("source")
    observable = _settings_diff(seen, target.settings)
    observable_differ = bool(observable)
    # Limits and template settings cannot be read back: the fingerprint of what was applied
    # tells. In Observe mode nothing was applied by us, so only what is visible counts.
    settings_differ = observable_differ or (not observe_only and applied.config != target.config_fp)
    if observable and not fresh:
        diff.append("settings: " + ", ".join(observable))
    elif settings_differ and not fresh:
        diff.append("settings")
    domain_missing = seen is None or not seen.domains
    if domain_missing and not fresh:
        diff.append("domain")
    has_deployment = seen is not None and seen.latestDeployment is not None

    variables = None
    deploy_triggered = False
    if vars_differ:
        skip = source_differs or not has_deployment
        variables = VariablesChange(skip_deploys=skip, drifted=drifted)
        deploy_triggered = not skip
    configure = None
    if settings_differ or domain_missing or source_differs:
        configure = Configure(
            settings=dict(target.settings) if settings_differ else None,
            limits=(dict(target.limits) or None) if settings_differ else None,
            create_domain=domain_missing,
            source=dict(target.source) if source_differs else None,
        )
        deploy_triggered = deploy_triggered or source_differs
    deploy_for_settings = observable_differ and has_deployment and not deploy_triggered and not fresh
    deploy_triggered = deploy_triggered or deploy_for_settings

    latest: Deployment | None = seen.latestDeployment if seen is not None else None
    stop = redeploy = restart = None
    resume = False
    restarted_at = redeploy_requested_at = None
    if d.spec.suspend:
        if latest is not None and latest.status not in STOPPED:
            stop = latest.id
            diff.append("suspend")
    elif latest is not None and latest.status == "REMOVED" and not deploy_triggered:
        resume = True
        diff.append("suspend")
    else:
        wanted = annotations.get(REDEPLOY_REQUESTED_AT_ANNOTATION)
        if wanted and wanted != applied.redeployRequestedAt:
            if latest is not None and not deploy_triggered:
                redeploy = latest.id
                diff.append(f"redeploy ({REDEPLOY_REQUESTED_AT_ANNOTATION})")
            redeploy_requested_at = wanted
        wanted = annotations.get(RESTARTED_AT_ANNOTATION)
        if wanted and wanted != applied.restartedAt:
            if latest is not None and latest.status in RESTARTABLE:
                restart = latest.id
                diff.append(f"restart ({RESTARTED_AT_ANNOTATION})")
            restarted_at = wanted
    return Changes(
        forget=obs.forget,
        project=project,
        service=service,
        variables=variables,
        configure=configure,
        deploy_for_settings=deploy_for_settings,
        stop=stop,
        resume=resume,
        redeploy=redeploy,
        restart=restart,
        restarted_at=restarted_at,
        redeploy_requested_at=redeploy_requested_at,
        diff=tuple(diff),
    )
