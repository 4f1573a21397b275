"""Typed results of Railway operations, parsed from GraphQL responses."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Result(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class EnvironmentRef(_Result):
    id: str
    name: str


class ServiceRef(_Result):
    id: str
    name: str


class Project(_Result):
    id: str
    name: str
    description: str | None = None
    workspaceId: str | None = None
    createdAt: str | None = None
    environments: list[EnvironmentRef] = Field(default_factory=list)
    services: list[ServiceRef] = Field(default_factory=list)

    def environment(self, name: str = "production") -> EnvironmentRef | None:
        return next((e for e in self.environments if e.name == name), None)


class Service(_Result):
    id: str
    name: str
    projectId: str


class Deployment(_Result):
    id: str
    status: str
    createdAt: str | None = None
    updatedAt: str | None = None
    statusUpdatedAt: str | None = None


class ServiceSource(_Result):
    image: str | None = None
    repo: str | None = None


class TemplateService(_Result):
    """A service to clone: its source, settings and (unrendered) variables."""

    serviceId: str
    serviceName: str | None = None
    source: ServiceSource | None = None
    startCommand: str | None = None
    healthcheckPath: str | None = None
    healthcheckTimeout: int | None = None
    numReplicas: int | None = None
    region: str | None = None
    restartPolicyType: str | None = None
    restartPolicyMaxRetries: int | None = None
    variables: dict[str, str] = Field(default_factory=dict)


class ServiceInstanceRef(_Result):
    """Where one service instance lives; the key of fleet reads."""

    projectId: str
    environmentId: str
    serviceId: str


class ServiceInstanceState(_Result):
    """One service instance as observed by a fleet read."""

    ref: ServiceInstanceRef
    found: bool = True
    latestDeployment: Deployment | None = None
    domains: list[str] = Field(default_factory=list)
    source: ServiceSource | None = None
    healthcheckPath: str | None = None
    numReplicas: int | None = None
    region: str | None = None
    # None when the read did not include variables.
    variables: dict[str, str] | None = None


class ConfigureResult(_Result):
    domain: str | None = None


class LogLine(_Result):
    message: str
    severity: str | None = None
    timestamp: str | None = None


class MetricSample(_Result):
    ts: int
    value: float


class MetricTags(_Result):
    serviceId: str | None = None
    projectId: str | None = None
    environmentId: str | None = None


class MetricSeries(_Result):
    measurement: str
    tags: MetricTags | None = None  # set when the request grouped by tags
    values: list[MetricSample] = Field(default_factory=list)


class EstimatedUsage(_Result):
    """Railway's estimate of one measurement of one project for the billing period
    (CPU_USAGE in vCPU-minutes, MEMORY_USAGE_GB in GB-minutes, NETWORK_TX_GB in GB)."""

    projectId: str
    measurement: str
    estimatedValue: float


class WorkspaceUsage(_Result):
    """One WorkspaceUsage answer: CPU and memory series per service over the sampling
    period, egress series per service over 30 days, estimates per project."""

    usage: list[MetricSeries] = Field(default_factory=list)
    egress: list[MetricSeries] = Field(default_factory=list)
    estimated: list[EstimatedUsage] = Field(default_factory=list)
