"""The usage sampler: status.usage and the claw_usage_* gauges for the whole fleet from one
Railway request per workspace per sampling period (CLAW_USAGE_SAMPLE_SECONDS), never one
per instance.

Each round sends, per (token, workspace), one `WorkspaceUsage` request: grouped `metrics`
(groupBy SERVICE_ID) for CPU and memory over the period, for egress over 30 days, and
`estimatedUsage` per project, as three aliased root fields that Railway counts once. Each
token's requests draw from that token's own budget (the reader is the token's client).

The controller reads `usage_for(service_id)` (the UsagePort) and writes status.usage when
`rules.usage.moved` says so; whoever knows an instance's Railway ids tells the sampler with
`follow(...)` and `forget(...)`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from claw_operator.api.models import Usage
from claw_operator.railway.errors import RailwayError
from claw_operator.railway.types import WorkspaceUsage
from claw_operator.rules.usage import UsageFigures, average, cost_usd, total
from claw_operator.support.clock import now_rfc3339

log = logging.getLogger(__name__)

EGRESS_WINDOW = timedelta(days=30)
EGRESS_SAMPLE_SECONDS = 86_400
# At most this many samples per series over a sampling period: enough for an average,
# small enough that a thousand services stay a modest response.
SAMPLES_PER_PERIOD = 10
MIN_SAMPLE_SECONDS = 60
# Services handled between two turns of the event loop after a round's answer.
YIELD_EVERY = 500


class UsageReader(Protocol):
    """What the sampler needs of a token's Railway client (RailwayClient implements it)."""

    async def workspace_usage(
        self,
        workspace_id: str,
        *,
        since: datetime,
        sample_rate_seconds: int,
        egress_since: datetime,
        egress_sample_rate_seconds: int,
    ) -> WorkspaceUsage: ...

    async def project_workspaces(self, project_ids: Sequence[str]) -> dict[str, str]: ...


@dataclass(frozen=True)
class _Followed:
    reader: UsageReader
    project_id: str
    workspace_id: str | None
    instance: tuple[str, str] | None


UsageListener = Callable[[tuple[str, str], Usage], None]


class UsageSampler:
    """Implements the controller's UsagePort. `on_sample(instance, usage)` is called for
    each followed instance (namespace, name) after every round, e.g. to set gauges."""

    def __init__(
        self,
        *,
        period_seconds: float,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_sample: UsageListener | None = None,
    ) -> None:
        self._period = period_seconds
        self._now = now
        self._on_sample = on_sample
        self._followed: dict[str, _Followed] = {}
        self._usage: dict[str, Usage] = {}
        # Projects created without a workspace live in their token's default one; asked once.
        self._project_workspace: dict[str, str] = {}

    # ------------------------------------------------------------ the port
    def usage_for(self, service_id: str) -> Usage | None:
        return self._usage.get(service_id)

    def follow(
        self,
        reader: UsageReader,
        *,
        service_id: str,
        project_id: str,
        workspace_id: str | None,
        instance: tuple[str, str] | None = None,
    ) -> None:
        """Sample this service from the next round on, through `reader` (its token's
        client). `workspace_id` None: the project's workspace is looked up once."""
        self._followed[service_id] = _Followed(reader, project_id, workspace_id, instance)

    def forget(self, service_id: str) -> None:
        followed = self._followed.pop(service_id, None)
        self._usage.pop(service_id, None)
        if followed is not None:
            self._project_workspace.pop(followed.project_id, None)

    # ------------------------------------------------------------ sampling
    async def run(self) -> None:
        while True:
            try:
                await self.sample_once()
            except Exception:
                # Usage is informational: a bug here must not end sampling for good.
                log.exception("usage sampling round failed")
            await asyncio.sleep(self._period)

    async def sample_once(self) -> None:
        """One round: one request per (token, workspace) that has followed services."""
        await self._resolve_workspaces()
        groups: dict[tuple[int, str], list[str]] = {}
        readers: dict[int, UsageReader] = {}
        for service_id, followed in list(self._followed.items()):
            workspace = followed.workspace_id or self._project_workspace.get(followed.project_id)
            if workspace is None:
                continue
            readers[id(followed.reader)] = followed.reader
            groups.setdefault((id(followed.reader), workspace), []).append(service_id)
        for (reader_id, workspace), service_ids in groups.items():
            await self._sample_workspace(readers[reader_id], workspace, service_ids)

    async def _resolve_workspaces(self) -> None:
        """Projects followed without a workspace: ask each token once for all of its own
        (batched), and remember the answers."""
        unknown: dict[int, tuple[UsageReader, list[str]]] = {}
        for followed in self._followed.values():
            if followed.workspace_id is None and followed.project_id not in self._project_workspace:
                entry = unknown.setdefault(id(followed.reader), (followed.reader, []))
                entry[1].append(followed.project_id)
        for reader, project_ids in unknown.values():
            try:
                self._project_workspace.update(await reader.project_workspaces(project_ids))
            except RailwayError as error:
                log.warning("usage: cannot find the workspaces of %d projects: %s", len(project_ids), error)

    async def _sample_workspace(self, reader: UsageReader, workspace: str, service_ids: list[str]) -> None:
        now = self._now()
        sample_rate = max(MIN_SAMPLE_SECONDS, int(self._period) // SAMPLES_PER_PERIOD)
        try:
            answer = await reader.workspace_usage(
                workspace,
                since=now - timedelta(seconds=self._period),
                sample_rate_seconds=sample_rate,
                egress_since=now - EGRESS_WINDOW,
                egress_sample_rate_seconds=EGRESS_SAMPLE_SECONDS,
            )
        except RailwayError as error:
            # Keep the last figures; the next round tries again.
            log.warning("usage of workspace %s not sampled: %s", workspace, error)
            return
        series: dict[tuple[str, str], list[float]] = {}
        for result in [*answer.usage, *answer.egress]:
            service = result.tags.serviceId if result.tags else None
            if service:
                series.setdefault((service, result.measurement), []).extend(v.value for v in result.values)
        estimates: dict[str, dict[str, float]] = {}
        for estimate in answer.estimated:
            per_project = estimates.setdefault(estimate.projectId, {})
            per_project[estimate.measurement] = per_project.get(estimate.measurement, 0.0) + (
                estimate.estimatedValue
            )
        sampled_at = now_rfc3339(now)
        for done, service_id in enumerate(service_ids, 1):
            if done % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # thousands of services: let the event loop breathe
            followed = self._followed.get(service_id)
            if followed is None:
                continue
            figures = UsageFigures(
                cpu=average(series.get((service_id, "CPU_USAGE"), [])),
                memory_gb=average(series.get((service_id, "MEMORY_USAGE_GB"), [])),
                network_egress_gb=total(series.get((service_id, "NETWORK_TX_GB"), [])),
                estimated_cost_usd=cost_usd(estimates.get(followed.project_id, {})),
            )
            if figures == UsageFigures():
                continue  # Railway knows nothing of it (yet): keep what we had
            usage = Usage(**figures.as_status(), sampledAt=sampled_at)
            self._usage[service_id] = usage
            if self._on_sample is not None and followed.instance is not None:
                self._on_sample(followed.instance, usage)
