"""Usage for a fleet from one Railway request per workspace per sampling period, against
the Railway emulator's grouped `metrics` and `estimatedUsage` with admin-set values."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from claw_emulators.railway.server import RailwayEmulator
from claw_emulators.railway.state import Token
from claw_operator.fleet.usage import UsageSampler
from claw_operator.railway.client import RailwayClient
from claw_operator.railway.errors import RailwayAuthError
from tests.fixtures.common import canary

# Not on a day boundary, so 30 days of daily egress samples are exactly 30.
NOW = 1_800_003_333.0
PLATFORM = canary("usage-platform-token")
TENANT = canary("usage-tenant-token")


def make_instances(
    emu: RailwayEmulator, token: Token, workspace: str | None, count: int
) -> list[tuple[str, str]]:
    """(project id, service id) of `count` one-service projects, made directly in state."""
    made = []
    for n in range(count):
        project = emu.state.create_project(
            token, name=f"claw-{n}", description=None, workspace_id=workspace, default_environment_name=None
        )
        service = emu.state.create_service(
            token,
            project_id=project.id,
            environment_id=None,
            name="openclaw",
            image="ghcr.io/openclaw/openclaw:1",
            repo=None,
            branch=None,
            variables=None,
        )
        made.append((project.id, service.id))
    return made


async def test_one_request_per_workspace_for_several_instances() -> None:
    async with RailwayEmulator(clock=lambda: NOW, tokens={}) as emu:
        platform_token = emu.add_token(PLATFORM, "ws-platform", per_hour=100_000, per_second=1000)
        tenant_token = emu.add_token(TENANT, "ws-tenant", tier="hobby")
        managed = make_instances(emu, platform_token, "ws-platform", 5)
        tenant = make_instances(emu, tenant_token, None, 3)  # the token's default workspace
        for n, (project_id, service_id) in enumerate(managed + tenant):
            emu.state.usage.set_service(
                service_id, {"CPU_USAGE": 0.1 * (n + 1), "MEMORY_USAGE_GB": 0.25, "NETWORK_TX_GB": 0.02}
            )
            emu.state.usage.set_estimate(
                project_id, {"CPU_USAGE": 10_000, "MEMORY_USAGE_GB": 10_000, "NETWORK_TX_GB": 2}
            )
        seen: list[tuple[tuple[str, str], float | None]] = []
        sampler = UsageSampler(
            period_seconds=600,
            now=lambda: datetime.fromtimestamp(NOW, UTC),
            on_sample=lambda instance, usage: seen.append((instance, usage.cpu)),
        )
        async with (
            RailwayClient(url=emu.url, token=PLATFORM) as platform,
            RailwayClient(url=emu.url, token=TENANT) as tenant_client,
        ):
            for n, (project_id, service_id) in enumerate(managed):
                sampler.follow(
                    platform,
                    service_id=service_id,
                    project_id=project_id,
                    workspace_id="ws-platform",
                    instance=("shop", f"bot-{n}"),
                )
            for project_id, service_id in tenant:
                sampler.follow(tenant_client, service_id=service_id, project_id=project_id, workspace_id=None)
            assert sampler.usage_for(managed[0][1]) is None

            await sampler.sample_once()
            first_round = [(r.operation_name, r.status) for r in emu.requests]
            # The tenant projects' workspace is looked up once (one batched read), then one usage
            # request per workspace, each with its own token.
            assert sorted(first_round) == [
                ("ProjectWorkspaces", 200),
                ("WorkspaceUsage", 200),
                ("WorkspaceUsage", 200),
            ]
            by_token = {r.token for r in emu.requests if r.operation_name == "WorkspaceUsage"}
            assert len(by_token) == 2

            await sampler.sample_once()
            assert [r.operation_name for r in emu.requests[len(first_round) :]] == ["WorkspaceUsage"] * 2

        for n, (_project_id, service_id) in enumerate(managed + tenant):
            usage = sampler.usage_for(service_id)
            assert usage is not None
            assert usage.cpu == pytest.approx(0.1 * (n + 1))
            assert usage.memoryGB == 0.25
            assert usage.networkEgressGB == pytest.approx(0.6)  # 0.02 GB a day for 30 days
            assert usage.estimatedCostUSD == 7.04
            assert usage.sampledAt == datetime.fromtimestamp(NOW, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert [instance for instance, _ in seen[:5]] == [("shop", f"bot-{n}") for n in range(5)]

        sampler.forget(managed[0][1])
        assert sampler.usage_for(managed[0][1]) is None


async def test_a_refused_workspace_keeps_its_last_figures_and_spares_the_others() -> None:
    async with RailwayEmulator(clock=lambda: NOW, tokens={}) as emu:
        token = emu.add_token(PLATFORM, "ws-a", workspaces=["ws-b"], per_hour=100_000, per_second=1000)
        ((a_project, a_service),) = make_instances(emu, token, "ws-a", 1)
        ((b_project, b_service),) = make_instances(emu, token, "ws-b", 1)
        sampler = UsageSampler(period_seconds=600, now=lambda: datetime.fromtimestamp(NOW, UTC))
        async with RailwayClient(url=emu.url, token=PLATFORM, max_retries=0) as client:
            sampler.follow(client, service_id=a_service, project_id=a_project, workspace_id="ws-a")
            sampler.follow(client, service_id=b_service, project_id=b_project, workspace_id="ws-b")
            await sampler.sample_once()
            before = sampler.usage_for(a_service)
            assert before is not None and sampler.usage_for(b_service) is not None
            token.workspaces.discard("ws-a")  # access to one workspace revoked
            emu.state.usage.set_service(b_service, {"CPU_USAGE": 2.0})
            await sampler.sample_once()
            assert sampler.usage_for(a_service) == before
            b_usage = sampler.usage_for(b_service)
            assert b_usage is not None and b_usage.cpu == 2.0
            with pytest.raises(RailwayAuthError):
                await client.workspace_usage(
                    "ws-a",
                    since=datetime.fromtimestamp(NOW - 600, UTC),
                    sample_rate_seconds=60,
                    egress_since=datetime.fromtimestamp(NOW - 86400, UTC),
                    egress_sample_rate_seconds=86400,
                )
