"""The emulator's in-memory Railway: tokens, workspaces, projects, services, their
instances per environment, variables, domains and deployments, and the operations the
GraphQL resolvers call. Operations raise `ApiError`s whose messages read like Railway's.

Times are epoch seconds from an injectable clock, so tests can move time explicitly.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from claw_emulators.railway.deploys import Deployment, PhaseDurations, status_of
from claw_emulators.railway.faults import FaultBook, fingerprint
from claw_emulators.railway.ratelimit import RateTier, TokenBudget, parse_tier
from claw_emulators.railway.telemetry import UsageBook

Clock = Callable[[], float]

DEFAULT_REGION = "us-west2"


class ApiError(Exception):
    """An error Railway would answer inside a 200 response."""

    kind = "invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ApiError):
    kind = "not_found"


class NotAuthorized(ApiError):
    kind = "auth"

    def __init__(self) -> None:
        super().__init__("Not Authorized")


@dataclass
class Token:
    fingerprint: str
    workspace_id: str
    workspaces: set[str]
    budget: TokenBudget
    # OAuth access tokens stop working at this epoch time; other tokens never expire.
    expires_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        tier = self.budget.tier
        return {
            "fingerprint": self.fingerprint,
            "workspaceId": self.workspace_id,
            "workspaces": sorted(self.workspaces),
            "tier": {"name": tier.name, "perHour": tier.per_hour, "perSecond": tier.per_second},
            "expiresAt": self.expires_at,
        }


@dataclass
class Workspace:
    id: str
    created_at: float


@dataclass
class Environment:
    id: str
    name: str
    project_id: str
    created_at: float
    shared_variables: dict[str, str] = field(default_factory=dict)


@dataclass
class Project:
    id: str
    seq: int
    name: str
    description: str | None
    workspace_id: str
    created_at: float
    updated_at: float
    environments: list[Environment] = field(default_factory=list)
    service_ids: list[str] = field(default_factory=list)


@dataclass
class Service:
    id: str
    name: str
    project_id: str
    created_at: float
    updated_at: float


@dataclass
class ServiceDomain:
    id: str
    domain: str
    project_id: str
    environment_id: str
    service_id: str
    target_port: int | None
    created_at: float


@dataclass
class ServiceInstance:
    """A service's configuration and history in one environment."""

    id: str
    project_id: str
    environment_id: str
    service_id: str
    created_at: float
    updated_at: float
    image: str | None = None
    repo: str | None = None
    branch: str | None = None
    start_command: str | None = None
    healthcheck_path: str | None = None
    healthcheck_timeout: int | None = None
    num_replicas: int = 1
    region: str = DEFAULT_REGION
    restart_policy_type: str = "ON_FAILURE"
    restart_policy_max_retries: int = 10
    vcpus: float | None = None
    memory_gb: float | None = None
    variables: dict[str, str] = field(default_factory=dict)
    domains: list[ServiceDomain] = field(default_factory=list)
    deployments: list[Deployment] = field(default_factory=list)  # oldest first

    @property
    def has_source(self) -> bool:
        return bool(self.image or self.repo)


_REFERENCE = re.compile(r"\$\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")
_SETTING_FIELDS = {
    "startCommand": "start_command",
    "healthcheckPath": "healthcheck_path",
    "healthcheckTimeout": "healthcheck_timeout",
    "numReplicas": "num_replicas",
    "region": "region",
    "restartPolicyType": "restart_policy_type",
    "restartPolicyMaxRetries": "restart_policy_max_retries",
}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "service"


class RailwayState:
    def __init__(
        self,
        *,
        clock: Clock = time.time,
        phases: PhaseDurations | None = None,
        faults: FaultBook | None = None,
        seed: int = 0,
    ) -> None:
        self.clock = clock
        self.phases = phases or PhaseDurations()
        self.faults = faults or FaultBook(seed=seed)
        self._random = random.Random(seed)
        self.tokens: dict[str, Token] = {}
        self.workspaces: dict[str, Workspace] = {}
        self.usage = UsageBook()
        self.clear()

    def clear(self) -> None:
        """Forget every project and what is in it; tokens stay, with fresh budgets."""
        self.projects: dict[str, Project] = {}
        self.environments: dict[str, Environment] = {}
        self.services: dict[str, Service] = {}
        self.instances: dict[tuple[str, str], ServiceInstance] = {}
        self.deployments: dict[str, Deployment] = {}
        self.domains: dict[str, ServiceDomain] = {}
        self._project_seq = 0
        self.usage.clear()
        for token in self.tokens.values():
            token.budget = TokenBudget(token.budget.tier)

    def _id(self) -> str:
        return str(uuid.UUID(int=self._random.getrandbits(128), version=4))

    # ---- tokens -------------------------------------------------------------------------

    def add_token(
        self,
        token: str,
        workspace: str,
        *,
        workspaces: Iterable[str] = (),
        tier: RateTier | str = "hobby",
    ) -> Token:
        rate = parse_tier(tier) if isinstance(tier, str) else tier
        allowed = {workspace, *workspaces}
        for workspace_id in allowed:
            self.workspaces.setdefault(workspace_id, Workspace(workspace_id, self.clock()))
        entry = Token(fingerprint(token), workspace, allowed, TokenBudget(rate))
        self.tokens[entry.fingerprint] = entry
        return entry

    def token(self, raw: str | None) -> Token | None:
        """The token's entry; None for an unknown or expired one (Railway: "Not Authorized")."""
        entry = self.tokens.get(fingerprint(raw)) if raw else None
        if entry is not None and entry.expires_at is not None and self.clock() >= entry.expires_at:
            return None
        return entry

    # ---- lookups, with access checks ----------------------------------------------------

    def project(self, token: Token, project_id: str) -> Project:
        project = self.projects.get(project_id)
        if project is None:
            raise NotFound("Project not found")
        if project.workspace_id not in token.workspaces:
            raise NotAuthorized()
        return project

    def environment(self, token: Token, environment_id: str) -> tuple[Project, Environment]:
        env = self.environments.get(environment_id)
        if env is None:
            raise NotFound("Environment not found")
        return self.project(token, env.project_id), env

    def service(self, token: Token, service_id: str) -> Service:
        service = self.services.get(service_id)
        if service is None:
            raise NotFound("Service not found")
        self.project(token, service.project_id)
        return service

    def instance(self, token: Token, environment_id: str, service_id: str) -> ServiceInstance:
        self.service(token, service_id)
        instance = self.instances.get((service_id, environment_id))
        if instance is None:
            raise NotFound("Service instance not found")
        return instance

    def deployment(self, token: Token, deployment_id: str) -> Deployment:
        dep = self.deployments.get(deployment_id)
        if dep is None:
            raise NotFound("Deployment not found")
        self.project(token, dep.project_id)
        return dep

    def instance_of(self, dep: Deployment) -> ServiceInstance:
        return self.instances[(dep.service_id, dep.environment_id)]

    def status(self, dep: Deployment, at: float | None = None) -> tuple[str, float]:
        siblings = self.instance_of(dep).deployments
        return status_of(siblings, siblings.index(dep), self.clock() if at is None else at)

    def latest(self, instance: ServiceInstance) -> Deployment | None:
        return instance.deployments[-1] if instance.deployments else None

    def visible_projects(self, token: Token, workspace_id: str | None) -> list[Project]:
        workspace = workspace_id or token.workspace_id
        if workspace not in token.workspaces:
            raise NotAuthorized()
        return sorted((p for p in self.projects.values() if p.workspace_id == workspace), key=lambda p: p.seq)

    def deployments_matching(
        self, token: Token, project_id: str | None, environment_id: str | None, service_id: str | None
    ) -> list[Deployment]:
        """Newest first, only where the token may look."""
        found = [
            dep
            for dep in self.deployments.values()
            if (project_id is None or dep.project_id == project_id)
            and (environment_id is None or dep.environment_id == environment_id)
            and (service_id is None or dep.service_id == service_id)
            and self.projects[dep.project_id].workspace_id in token.workspaces
        ]
        return sorted(found, key=lambda dep: dep.created_at, reverse=True)

    # ---- projects -----------------------------------------------------------------------

    def create_project(
        self,
        token: Token,
        *,
        name: str | None,
        description: str | None,
        workspace_id: str | None,
        default_environment_name: str | None,
    ) -> Project:
        workspace = workspace_id or token.workspace_id
        if workspace not in token.workspaces:
            raise NotAuthorized()
        now = self.clock()
        self._project_seq += 1
        # Railway invents a name when none is given; duplicates are allowed on purpose.
        project = Project(
            id=self._id(),
            seq=self._project_seq,
            name=name or f"project-{self._project_seq}",
            description=description,
            workspace_id=workspace,
            created_at=now,
            updated_at=now,
        )
        env = Environment(self._id(), default_environment_name or "production", project.id, now)
        project.environments.append(env)
        self.environments[env.id] = env
        self.projects[project.id] = project
        return project

    def delete_project(self, token: Token, project_id: str) -> None:
        project = self.project(token, project_id)
        for service_id in project.service_ids:
            self.services.pop(service_id, None)
            for env in project.environments:
                instance = self.instances.pop((service_id, env.id), None)
                if instance is None:
                    continue
                for dep in instance.deployments:
                    self.deployments.pop(dep.id, None)
                for domain in instance.domains:
                    self.domains.pop(domain.domain, None)
        for env in project.environments:
            self.environments.pop(env.id, None)
        del self.projects[project.id]

    # ---- services -----------------------------------------------------------------------

    def create_service(
        self,
        token: Token,
        *,
        project_id: str,
        environment_id: str | None,
        name: str | None,
        image: str | None,
        repo: str | None,
        branch: str | None,
        variables: dict[str, str] | None,
    ) -> Service:
        project = self.project(token, project_id)
        targets = project.environments
        if environment_id is not None:
            targets = [env for env in project.environments if env.id == environment_id]
            if not targets:
                raise NotFound("Environment not found")
        now = self.clock()
        service = Service(
            self._id(), name or (image or repo or "service").split("/")[-1], project.id, now, now
        )
        self.services[service.id] = service
        project.service_ids.append(service.id)
        # Railway creates the service in every environment and configures the named one.
        for env in project.environments:
            instance = ServiceInstance(self._id(), project.id, env.id, service.id, now, now)
            self.instances[(service.id, env.id)] = instance
            if env in targets:
                instance.image, instance.repo, instance.branch = image, repo, branch
                instance.variables = dict(variables or {})
                if instance.has_source:
                    self._deploy(instance)
        return service

    def update_instance(
        self, token: Token, environment_id: str | None, service_id: str, settings: dict[str, Any]
    ) -> None:
        """Store settings (and a source) without deploying, like Railway."""
        service = self.service(token, service_id)
        project = self.projects[service.project_id]
        env_ids = [environment_id] if environment_id else [env.id for env in project.environments]
        for env_id in env_ids:
            instance = self.instance(token, env_id, service_id)
            for key, attribute in _SETTING_FIELDS.items():
                if key in settings and settings[key] is not None:
                    setattr(instance, attribute, settings[key])
            source = settings.get("source")
            if source is not None:
                instance.image, instance.repo = source.get("image"), source.get("repo")
            instance.updated_at = self.clock()

    def update_limits(
        self, token: Token, environment_id: str, service_id: str, vcpus: float | None, memory_gb: float | None
    ) -> None:
        instance = self.instance(token, environment_id, service_id)
        if vcpus is not None:
            instance.vcpus = vcpus
        if memory_gb is not None:
            instance.memory_gb = memory_gb
        instance.updated_at = self.clock()

    def connect(
        self, token: Token, service_id: str, image: str | None, repo: str | None, branch: str | None
    ) -> Service:
        """Set the source in every environment and deploy it."""
        if not image and not repo:
            raise ApiError("Either image or repo must be provided")
        service = self.service(token, service_id)
        for env in self.projects[service.project_id].environments:
            instance = self.instances[(service.id, env.id)]
            instance.image, instance.repo, instance.branch = image, repo, branch
            instance.updated_at = self.clock()
            self._deploy(instance)
        return service

    # ---- variables ----------------------------------------------------------------------

    def upsert_variables(
        self,
        token: Token,
        *,
        project_id: str,
        environment_id: str,
        service_id: str | None,
        variables: dict[str, str],
        replace: bool,
        skip_deploys: bool,
    ) -> None:
        project, env = self.environment(token, environment_id)
        if project.id != project_id:
            raise NotFound("Environment not found")
        if service_id is None:
            # Shared variables: services that reference a changed key redeploy.
            env.shared_variables = {**({} if replace else env.shared_variables), **variables}
            affected = [
                self.instances[(sid, env.id)]
                for sid in project.service_ids
                if any(
                    f"shared.{key}" in value
                    for key in variables
                    for value in self.instances[(sid, env.id)].variables.values()
                )
            ]
        else:
            instance = self.instance(token, environment_id, service_id)
            instance.variables = {**({} if replace else instance.variables), **variables}
            instance.updated_at = self.clock()
            affected = [instance]
        if not skip_deploys:
            for instance in affected:
                if instance.has_source:
                    self._deploy(instance)

    def railway_variables(self, instance: ServiceInstance) -> dict[str, str]:
        project = self.projects[instance.project_id]
        env = self.environments[instance.environment_id]
        service = self.services[instance.service_id]
        provided = {
            "RAILWAY_PROJECT_ID": project.id,
            "RAILWAY_PROJECT_NAME": project.name,
            "RAILWAY_ENVIRONMENT_ID": env.id,
            "RAILWAY_ENVIRONMENT_NAME": env.name,
            "RAILWAY_ENVIRONMENT": env.name,
            "RAILWAY_SERVICE_ID": service.id,
            "RAILWAY_SERVICE_NAME": service.name,
            "RAILWAY_PRIVATE_DOMAIN": f"{_slug(service.name)}.railway.internal",
        }
        if instance.domains:
            provided["RAILWAY_PUBLIC_DOMAIN"] = instance.domains[0].domain
            provided["RAILWAY_STATIC_URL"] = instance.domains[0].domain
        return provided

    def rendered_variables(self, instance: ServiceInstance) -> dict[str, str]:
        """The service's variables with `${{NAME}}`, `${{shared.NAME}}` and
        `${{service.NAME}}` references resolved (unresolvable ones become empty, as on
        Railway), plus Railway's own RAILWAY_* variables."""
        provided = self.railway_variables(instance)
        env_instances = {
            self.services[sid].name: self.instances[(sid, instance.environment_id)]
            for sid in self.projects[instance.project_id].service_ids
        }
        env = self.environments[instance.environment_id]

        def lookup(reference: str) -> str:
            scope, _, name = reference.rpartition(".")
            if not scope:
                return instance.variables.get(name, provided.get(name, ""))
            if scope == "shared":
                return env.shared_variables.get(name, "")
            other = env_instances.get(scope)
            if other is None:
                return ""
            return other.variables.get(name, self.railway_variables(other).get(name, ""))

        rendered = {
            key: _REFERENCE.sub(lambda m: lookup(m.group(1)), value)
            for key, value in instance.variables.items()
        }
        return {**provided, **rendered}

    # ---- domains ------------------------------------------------------------------------

    def create_domain(
        self, token: Token, environment_id: str, service_id: str, target_port: int | None
    ) -> ServiceDomain:
        instance = self.instance(token, environment_id, service_id)
        project, env = self.environment(token, environment_id)
        base = f"{_slug(self.services[service_id].name)}-{_slug(env.name)}"
        while True:
            name = f"{base}-{self._random.getrandbits(16):04x}.up.railway.app"
            if name not in self.domains:
                break
        domain = ServiceDomain(self._id(), name, project.id, env.id, service_id, target_port, self.clock())
        instance.domains.append(domain)
        self.domains[name] = domain
        return domain

    def domain_healthy(self, name: str) -> bool | None:
        """None for an unknown domain, else whether its service is up."""
        domain = self.domains.get(name)
        if domain is None:
            return None
        latest = self.latest(self.instances[(domain.service_id, domain.environment_id)])
        return latest is not None and self.status(latest)[0] == "SUCCESS"

    # ---- deployments --------------------------------------------------------------------

    def _deploy(self, instance: ServiceInstance, template: Deployment | None = None) -> Deployment:
        project = self.projects[instance.project_id]
        source = template or instance
        outcome = self.faults.deployment_outcome(
            project.name, self.services[instance.service_id].name, source.image
        )
        dep = Deployment(
            id=self._id(),
            project_id=instance.project_id,
            environment_id=instance.environment_id,
            service_id=instance.service_id,
            created_at=self.clock(),
            phases=self.phases,
            image=source.image,
            repo=source.repo,
            branch=source.branch,
            variables=dict(template.variables if template else self.rendered_variables(instance)),
            fail_build=outcome.fail_build,
            hang=outcome.hang,
            crash_after=outcome.crash_after,
            echo_variables=outcome.echo_variables,
        )
        instance.deployments.append(dep)
        self.deployments[dep.id] = dep
        return dep

    def deploy(self, token: Token, environment_id: str, service_id: str) -> Deployment:
        instance = self.instance(token, environment_id, service_id)
        if not instance.has_source:
            raise ApiError("Service has no source to deploy; connect an image or a repo first")
        return self._deploy(instance)

    def redeploy(self, token: Token, deployment_id: str) -> Deployment:
        old = self.deployment(token, deployment_id)
        return self._deploy(self.instance_of(old), template=old)

    def redeploy_instance(self, token: Token, environment_id: str, service_id: str) -> Deployment:
        instance = self.instance(token, environment_id, service_id)
        latest = self.latest(instance)
        if latest is None:
            return self.deploy(token, environment_id, service_id)
        return self._deploy(instance, template=latest)

    def rollback(self, token: Token, deployment_id: str) -> Deployment:
        """Like Railway: the service instance takes the earlier deployment's source and
        variables again, and a new deployment of them goes through the state machine."""
        old = self.deployment(token, deployment_id)
        instance = self.instance_of(old)
        if old.success_at() is None:
            raise ApiError("Only a deployment that succeeded can be rolled back to")
        instance.image, instance.repo, instance.branch = old.image, old.repo, old.branch
        # Railway provides RAILWAY_* itself; the rest is what the service had then.
        instance.variables = {k: v for k, v in old.variables.items() if not k.startswith("RAILWAY_")}
        instance.updated_at = self.clock()
        return self._deploy(instance, template=old)

    def restart(self, token: Token, deployment_id: str) -> None:
        dep = self.deployment(token, deployment_id)
        if self.status(dep)[0] not in ("SUCCESS", "CRASHED"):
            raise ApiError("Deployment is not running and cannot be restarted")
        dep.restarts.append(self.clock())

    def crash(self, project_name: str) -> Deployment | None:
        """Make the running deployment of the project's service crash now (admin only,
        for tests and benchmarks); None when nothing there is running."""
        now = self.clock()
        for project in self.projects.values():
            if project.name != project_name:
                continue
            for instance in self.iter_instances(project):
                dep = self.latest(instance)
                if dep is None:
                    continue
                status, since = self.status(dep, now)
                if status == "SUCCESS":
                    dep.crash_after = max(0.0, now - since)
                    return dep
        return None

    def stop(self, token: Token, deployment_id: str) -> None:
        dep = self.deployment(token, deployment_id)
        if dep.stopped_at is None:
            dep.stopped_at = self.clock()

    # ---- dump ---------------------------------------------------------------------------

    def iter_instances(self, project: Project) -> Iterator[ServiceInstance]:
        for service_id in project.service_ids:
            for env in project.environments:
                yield self.instances[(service_id, env.id)]

    def to_json(self, *, reveal_values: bool = False) -> dict[str, Any]:
        """A readable dump. Variable values are left out unless asked for: they are secrets."""

        def variables(values: dict[str, str]) -> Any:
            return dict(values) if reveal_values else sorted(values)

        projects = []
        for project in sorted(self.projects.values(), key=lambda p: p.seq):
            instances = []
            for instance in self.iter_instances(project):
                instances.append(
                    {
                        "serviceId": instance.service_id,
                        "serviceName": self.services[instance.service_id].name,
                        "environmentId": instance.environment_id,
                        "source": {"image": instance.image, "repo": instance.repo, "branch": instance.branch},
                        "settings": {key: getattr(instance, attr) for key, attr in _SETTING_FIELDS.items()},
                        "limits": {"vCPUs": instance.vcpus, "memoryGB": instance.memory_gb},
                        "variables": variables(instance.variables),
                        "domains": [d.domain for d in instance.domains],
                        "deployments": [
                            {
                                "id": dep.id,
                                "status": self.status(dep)[0],
                                "createdAt": dep.created_at,
                                "restarts": len(dep.restarts),
                            }
                            for dep in instance.deployments
                        ],
                    }
                )
            projects.append(
                {
                    "id": project.id,
                    "name": project.name,
                    "description": project.description,
                    "workspaceId": project.workspace_id,
                    "createdAt": project.created_at,
                    "environments": [
                        {"id": e.id, "name": e.name, "sharedVariables": variables(e.shared_variables)}
                        for e in project.environments
                    ],
                    "serviceInstances": instances,
                }
            )
        return {
            "workspaces": sorted(self.workspaces),
            "tokens": [token.to_json() for token in self.tokens.values()],
            "projects": projects,
            "faults": [fault.to_json() for fault in self.faults.faults],
        }
