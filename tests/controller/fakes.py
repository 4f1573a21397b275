"""In-memory doubles of the controller's ports: a Railway that keeps projects, services and
deployments in dicts (implements RailwayPort and ObserverPort), a health port with scripted
results, and `World`, which runs `reconcile()`/`finalize()` on one object against them.
No server, no HTTP: tests move deployment states and the clock by hand."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from claw_operator.api.models import HealthCheck
from claw_operator.config import Settings
from claw_operator.controller import (
    Event,
    Inputs,
    Outcome,
    PlanChooser,
    RailwayHandle,
    Runtime,
    TokenTier,
    finalize,
    reconcile,
)
from claw_operator.fleet.health import ProbeResult
from claw_operator.k8s.kube import merge_patch
from claw_operator.railway.errors import RailwayAuthError, RailwayError, RailwayNotFoundError
from claw_operator.railway.types import (
    ConfigureResult,
    Deployment,
    EnvironmentRef,
    LogLine,
    Project,
    Service,
    ServiceInstanceRef,
    ServiceInstanceState,
    ServiceRef,
    ServiceSource,
    TemplateService,
)

IMAGE = "ghcr.io/openclaw/openclaw:2026.2.1"
T0 = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
READS = frozenset({"find_project", "get_project", "get_template_service", "deployment_logs", "observe"})


@dataclass
class FakeService:
    id: str
    name: str
    project_id: str
    environment_id: str
    variables: dict[str, str]
    image: str | None = None
    repo: str | None = None
    healthcheck_path: str | None = None
    replicas: int | None = None
    region: str | None = None
    domains: list[str] = field(default_factory=list)
    deployments: list[Deployment] = field(default_factory=list)

    @property
    def latest(self) -> Deployment | None:
        return self.deployments[-1] if self.deployments else None


@dataclass
class FakeProject:
    id: str
    name: str
    description: str
    environment_id: str
    services: dict[str, FakeService] = field(default_factory=dict)

    def model(self) -> Project:
        return Project(
            id=self.id,
            name=self.name,
            description=self.description,
            environments=[EnvironmentRef(id=self.environment_id, name="production")],
            services=[ServiceRef(id=s.id, name=s.name) for s in self.services.values()],
        )


class FakeRailway:
    """Railway in memory, as one token sees it. `calls` lists every port call by name;
    `fail` makes the next calls raise; `refuse` makes every call raise "Not Authorized"."""

    def __init__(self, clock: Any) -> None:
        self.projects: dict[str, FakeProject] = {}
        self.calls: list[str] = []
        self.fail: list[RailwayError] = []
        self.refuse = False
        self.logs: list[str] = ["build step 1", "error: build failed"]
        self.images: dict[str, str | None] = {}  # deployment id -> the image it runs
        self._ids = itertools.count(1)
        self._clock = clock

    # -- helpers for tests
    def new_id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}"

    @property
    def writes(self) -> list[str]:
        return [c for c in self.calls if c not in READS]

    def services(self) -> list[FakeService]:
        return [s for p in self.projects.values() for s in p.services.values()]

    def only_service(self) -> FakeService:
        [service] = self.services()
        return service

    def set_status(self, status: str, *, created: datetime | None = None) -> None:
        service = self.only_service()
        latest = service.latest
        assert latest is not None
        service.deployments[-1] = latest.model_copy(
            update={"status": status, "createdAt": (created or self._clock()).isoformat()}
        )

    def _deploy(self, service: FakeService) -> str:
        deployment = Deployment(id=self.new_id("dep"), status="QUEUED", createdAt=self._clock().isoformat())
        service.deployments.append(deployment)
        self.images[deployment.id] = service.image
        return deployment.id

    def _service(self, service_id: str) -> FakeService:
        found = next((s for s in self.services() if s.id == service_id), None)
        if found is None:
            raise RailwayNotFoundError("Service not found")
        return found

    def _by_deployment(self, deployment_id: str) -> FakeService:
        return next(s for s in self.services() if any(d.id == deployment_id for d in s.deployments))

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.refuse:
            raise RailwayAuthError("Not Authorized", operation=name)
        if self.fail:
            raise self.fail.pop(0)

    # -- RailwayPort
    async def find_project(self, name: str, marker: str, workspace_id: str | None) -> Project | None:
        self._call("find_project")
        found = [p for p in self.projects.values() if p.name == name and marker in p.description]
        return found[0].model() if found else None

    async def get_project(self, project_id: str) -> Project:
        self._call("get_project")
        if project_id not in self.projects:
            raise RailwayNotFoundError("Project not found", operation="Project")
        return self.projects[project_id].model()

    async def create_project(self, *, name: str, description: str, workspace_id: str | None) -> Project:
        self._call("create_project")
        project = FakeProject(self.new_id("prj"), name, description, self.new_id("env"))
        self.projects[project.id] = project
        return project.model()

    async def delete_project(self, project_id: str) -> bool:
        self._call("delete_project")
        return self.projects.pop(project_id, None) is not None

    async def create_service(
        self,
        *,
        project_id: str,
        environment_id: str,
        name: str,
        variables: dict[str, str],
        branch: str | None = None,
    ) -> Service:
        self._call("create_service")
        service = FakeService(self.new_id("svc"), name, project_id, environment_id, dict(variables))
        self.projects[project_id].services[service.id] = service
        return Service(id=service.id, name=name, projectId=project_id)

    async def get_template_service(
        self, *, project_id: str, environment_id: str, service_id: str
    ) -> TemplateService:
        self._call("get_template_service")
        raise RailwayNotFoundError("ServiceInstance not found")

    async def configure_service(
        self,
        *,
        environment_id: str,
        service_id: str,
        settings: Mapping[str, Any] | None,
        limits: dict[str, float] | None,
        create_domain: bool,
        source: dict[str, str] | None,
    ) -> ConfigureResult:
        self._call("configure_service")
        service = self._service(service_id)
        domain = None
        if settings:
            service.healthcheck_path = settings.get("healthcheckPath", service.healthcheck_path)
            service.replicas = settings.get("numReplicas", service.replicas)
            service.region = settings.get("region", service.region)
        if create_domain:
            domain = f"{service.name}-{service.id}.up.railway.app"
            service.domains.append(domain)
        if source:
            service.image, service.repo = source.get("image"), source.get("repo")
            self._deploy(service)
        return ConfigureResult(domain=domain)

    async def upsert_variables(
        self,
        *,
        project_id: str,
        environment_id: str,
        service_id: str,
        variables: dict[str, str],
        replace: bool = False,
        skip_deploys: bool = False,
    ) -> None:
        self._call("upsert_variables")
        service = self._service(service_id)
        service.variables = dict(variables) if replace else {**service.variables, **variables}
        if not skip_deploys:
            self._deploy(service)

    async def deploy(self, *, environment_id: str, service_id: str) -> str:
        self._call("deploy")
        return self._deploy(self._service(service_id))

    async def redeploy(self, deployment_id: str) -> Deployment:
        self._call("redeploy")
        service = self._by_deployment(deployment_id)
        self._deploy(service)
        latest = service.latest
        assert latest is not None
        return latest

    async def restart(self, deployment_id: str) -> None:
        self._call("restart")

    async def rollback(self, deployment_id: str) -> None:
        self._call("rollback")
        service = self._by_deployment(deployment_id)
        service.image = self.images[deployment_id]
        self._deploy(service)

    async def stop(self, deployment_id: str) -> None:
        self._call("stop")
        service = self._by_deployment(deployment_id)
        service.deployments = [
            d.model_copy(update={"status": "REMOVED"}) if d.id == deployment_id else d
            for d in service.deployments
        ]

    async def deployment_logs(
        self, deployment_id: str, limit: int = 50
    ) -> tuple[list[LogLine], list[LogLine]]:
        self._call("deployment_logs")
        lines = [LogLine(message=m) for m in self.logs]
        return lines, lines

    # -- ObserverPort
    async def observe(self, ref: ServiceInstanceRef, *, with_variables: bool) -> ServiceInstanceState:
        self._call("observe")
        service = next((s for s in self.services() if s.id == ref.serviceId), None)
        if service is None:
            return ServiceInstanceState(ref=ref, found=False)
        source = (
            ServiceSource(image=service.image, repo=service.repo) if service.image or service.repo else None
        )
        return ServiceInstanceState(
            ref=ref,
            latestDeployment=service.latest,
            domains=list(service.domains),
            source=source,
            healthcheckPath=service.healthcheck_path,
            numReplicas=service.replicas,
            region=service.region,
            variables=dict(service.variables) if with_variables else None,
        )


class FakeHealth:
    """HealthPort: every probe is due; answers with `results` in turn, then `ok`."""

    def __init__(self) -> None:
        self.results: list[ProbeResult] = []
        self.probes: list[str] = []
        self.forgotten: list[str] = []

    async def probe_if_due(self, key: str, url: str, check: HealthCheck) -> ProbeResult | None:
        self.probes.append(key)
        return self.results.pop(0) if self.results else ProbeResult(True, "", 0.01)

    def forget(self, key: str) -> None:
        self.forgotten.append(key)


def plan_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "source": {"image": IMAGE},
        "limits": {"maxInstances": 5, "maxChannels": 4, "bandwidthGB": 50},
        "variables": {"LOG_LEVEL": "info"},
        "healthCheck": {"path": "/health", "intervalSeconds": 30, "timeoutSeconds": 2, "failureThreshold": 2},
        "deployTimeoutSeconds": 600,
    }
    spec.update(overrides)
    return spec


def claw(name: str = "bot", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "claw.io/v1alpha1",
        "kind": "ClawInstance",
        "metadata": {
            "name": name,
            "namespace": "tenant-a",
            "uid": f"uid-{name}",
            "generation": 1,
            "creationTimestamp": "2026-11-30T11:00:00Z",
            "annotations": {},
        },
        "spec": {"planRef": "pro", "env": [{"name": "CUSTOM_VAR", "value": "x"}], **spec},
    }


class World:
    """One ClawInstance, its plan and Secrets, and the fakes; `run()` is one reconcile pass
    whose status (and mid-pass persists) land on `body` as the status writer would."""

    def __init__(self, body: dict[str, Any] | None = None) -> None:
        self.now = T0
        self.railway = FakeRailway(lambda: self.now)
        self.health = FakeHealth()
        self.plans: dict[str, dict[str, Any]] = {"pro": plan_spec()}
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}
        self.body = body or claw()
        self.events: list[Event] = []
        self.status_writes = 0
        self.handles: list[tuple[str | None, TokenTier]] = []
        self.plan_for: PlanChooser | None = None
        settings = Settings.model_validate(
            {"railway_token": "platform-token", "railway_workspace_id": "ws-1", "resync_seconds": 60}
        )
        self.runtime = Runtime(
            settings=settings, handle_for=self._handle_for, health=self.health, clock=lambda: self.now
        )

    def _handle_for(self, token: str | None, tier: TokenTier) -> RailwayHandle:
        self.handles.append((token, tier))
        return RailwayHandle(client=self.railway, observer=self.railway)

    async def get_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        found = self.secrets.get((namespace, name))
        return dict(found) if found is not None else None

    async def _persist(self, partial: dict[str, Any], annotations: dict[str, str] | None) -> None:
        status = self.body.setdefault("status", {})
        if merge_patch(status, {**status, **partial}):
            self.status_writes += 1
        status.update(copy.deepcopy(partial))
        if annotations:
            self.body["metadata"].setdefault("annotations", {}).update(annotations)

    async def run(self) -> Outcome:
        inputs = Inputs(plans=self.plans, get_secret=self.get_secret, instances=[], plan_for=self.plan_for)
        outcome = await reconcile(copy.deepcopy(self.body), self.runtime, inputs, self._persist)
        if merge_patch(self.body.get("status") or {}, outcome.status):
            self.status_writes += 1
        self.body["status"] = copy.deepcopy(outcome.status)
        self.events.extend(outcome.events)
        return outcome

    async def finalize(self) -> list[Event]:
        events = await finalize(copy.deepcopy(self.body), self.runtime, self.get_secret, self._persist)
        self.events.extend(events)
        return events

    async def running(self) -> None:
        """Create the instance and let its first deployment succeed."""
        await self.run()
        self.railway.set_status("SUCCESS")
        await self.run()
        assert self.status["phase"] == "Running", self.status
        self.railway.calls.clear()
        self.events.clear()

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.body.get("status") or {})

    def condition(self, type_: str) -> dict[str, Any]:
        return next((c for c in self.status.get("conditions", []) if c["type"] == type_), {})

    def shift(self, seconds: float) -> None:
        self.now = self.now + timedelta(seconds=seconds)
