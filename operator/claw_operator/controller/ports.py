"""What the controller needs from the world, as typed protocols (no Any). The fleet engine
and the tests plug their implementations in through `Runtime`.

- `RailwayPort`: the subset of the Railway client the controller calls.
- `ObserverPort`: one service instance as last observed (the fleet batches these reads).
- `HealthPort`: health probe results, handed out once each; `forget` stops probing.
- `UsagePort`: the usage sampler's latest figures for a service.
- `TokenRefreshPort`: why a token Secret's OAuth refresh is failing, if it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from claw_operator.api.models import HealthCheck, Usage
from claw_operator.fleet.health import ProbeResult
from claw_operator.railway.types import (
    ConfigureResult,
    Deployment,
    LogLine,
    Project,
    Service,
    ServiceInstanceRef,
    ServiceInstanceState,
    TemplateService,
)

TokenTier = Literal["free", "hobby", "pro"]
TOKEN_TIERS: tuple[TokenTier, ...] = ("free", "hobby", "pro")
DEFAULT_TOKEN_TIER: TokenTier = "hobby"

# Service settings as Railway's ServiceInstanceUpdateInput takes them (scalars only).
SettingValue = str | int | float | bool
ServiceSettings = Mapping[str, SettingValue]


class RailwayPort(Protocol):
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
    ) -> Service: ...
    async def get_template_service(
        self, *, project_id: str, environment_id: str, service_id: str
    ) -> TemplateService: ...
    async def configure_service(
        self,
        *,
        environment_id: str,
        service_id: str,
        settings: dict[str, SettingValue] | None,
        limits: dict[str, float] | None,
        create_domain: bool,
        source: dict[str, str] | None,
    ) -> ConfigureResult: ...
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
    async def rollback(self, deployment_id: str) -> None: ...
    async def deployment_logs(
        self, deployment_id: str, limit: int = 50
    ) -> tuple[list[LogLine], list[LogLine]]: ...


class ObserverPort(Protocol):
    async def observe(self, ref: ServiceInstanceRef, *, with_variables: bool) -> ServiceInstanceState: ...


class HealthPort(Protocol):
    async def probe_if_due(self, key: str, url: str, check: HealthCheck) -> ProbeResult | None:
        """A result newer than the last one handed out for `key`, else None."""
        ...

    def forget(self, key: str) -> None:
        """Stop probing `key` (suspended, paused, deleted) and forget its last result."""
        ...


class UsagePort(Protocol):
    def usage_for(self, service_id: str) -> Usage | None: ...


class TokenRefreshPort(Protocol):
    def problem(self, namespace: str, name: str) -> str | None:
        """Why the OAuth token in this Secret cannot be refreshed (a sentence naming the
        Secret and what to do, never a token or client secret), or None."""
        ...


@dataclass
class RailwayHandle:
    """The client and the observer of one token."""

    client: RailwayPort
    observer: ObserverPort


# (token or None for the platform token, tier) -> the handle of that token.
HandleFactory = Callable[[str | None, TokenTier], RailwayHandle]


@dataclass(frozen=True)
class PlanChoice:
    """Which plan spec an instance applies now (the rollout gate's answer)."""

    spec: Mapping[str, object]
    revision: str
    note: str | None = None  # e.g. "waiting for rollout of plan revision R"
    # A halted rollout's automatic rollback: go back to this deployment (the instance's
    # last good one, which runs `revision`) instead of applying `spec` step by step.
    rollback_to: str | None = None


class PlanChooser(Protocol):
    def __call__(
        self, namespace: str, name: str, plan_name: str, plan_spec: Mapping[str, object]
    ) -> PlanChoice: ...
