"""Railway requests the usage sampler spends per hour, printed (never asserted).

Builds a fleet in the Railway emulator (Managed instances in the platform workspace, and
optionally SelfHosted tenants, each with its own token and workspace), follows every
instance with one `UsageSampler`, and runs the rounds of one simulated hour
(3600 / CLAW_USAGE_SAMPLE_SECONDS) on the emulator's clock, counting the requests the
emulator saw, by operation and by token, and the size of the answers.

Usage: .venv/bin/python bench/usage.py [--instances 1000] [--tenants 0] [--period 600]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from datetime import UTC, datetime

from claw_emulators.railway.faults import fingerprint
from claw_emulators.railway.server import RailwayEmulator
from claw_emulators.railway.state import Token
from claw_operator.fleet.usage import UsageSampler
from claw_operator.railway.budget import RateBudget
from claw_operator.railway.client import RailwayClient

PLATFORM, WORKSPACE = "bench-platform-token", "ws-platform"
START = 1_800_003_333.0


def make_fleet(
    emu: RailwayEmulator, token: Token, workspace: str, count: int, tag: str
) -> list[tuple[str, str]]:
    made = []
    for n in range(count):
        project = emu.state.create_project(
            token,
            name=f"claw-{tag}-{n}",
            description=None,
            workspace_id=workspace,
            default_environment_name=None,
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


async def main(instances: int, tenants: int, period: float) -> None:
    clock = [START]
    async with RailwayEmulator(clock=lambda: clock[0], tokens={}) as emu:
        platform_token = emu.add_token(PLATFORM, WORKSPACE, per_hour=10**7, per_second=10**5)
        sampler = UsageSampler(period_seconds=period, now=lambda: datetime.fromtimestamp(clock[0], UTC))
        clients: list[RailwayClient] = []

        def client(token: str) -> RailwayClient:
            made = RailwayClient(url=emu.url, token=token, budget=RateBudget(rps=None, rph=None))
            clients.append(made)
            return made

        managed_count = instances - tenants
        platform = client(PLATFORM)
        followed: list[str] = []
        for project_id, service_id in make_fleet(emu, platform_token, WORKSPACE, managed_count, "m"):
            sampler.follow(platform, service_id=service_id, project_id=project_id, workspace_id=WORKSPACE)
            followed.append(service_id)
        for n in range(tenants):
            raw = f"bench-tenant-{n}"
            token = emu.add_token(raw, f"ws-tenant-{n}", per_hour=10**7, per_second=10**5)
            tenant = client(raw)
            for project_id, service_id in make_fleet(emu, token, f"ws-tenant-{n}", 1, f"t{n}"):
                # SelfHosted without spec.railway.workspaceId: the sampler looks it up once.
                sampler.follow(tenant, service_id=service_id, project_id=project_id, workspace_id=None)
                followed.append(service_id)

        rounds = max(1, round(3600 / period))
        started = time.perf_counter()
        for _ in range(rounds):
            await sampler.sample_once()
            clock[0] += period
        elapsed = time.perf_counter() - started
        for made in clients:
            await made.aclose()

        by_operation = Counter(r.operation_name for r in emu.requests)
        by_token = Counter(r.token for r in emu.requests)
        with_figures = sum(1 for service_id in followed if sampler.usage_for(service_id) is not None)
        # The size of one platform-workspace answer (read after counting, so not counted).
        async with RailwayClient(
            url=emu.url, token=PLATFORM, budget=RateBudget(rps=None, rph=None)
        ) as reader:
            answer = await reader.workspace_usage(
                WORKSPACE,
                since=datetime.fromtimestamp(clock[0] - period, UTC),
                sample_rate_seconds=max(60, int(period) // 10),
                egress_since=datetime.fromtimestamp(clock[0] - 30 * 86400, UTC),
                egress_sample_rate_seconds=86400,
            )
        one_answer = len(answer.model_dump_json())
        print(
            json.dumps(
                {
                    "instances": instances,
                    "managed": managed_count,
                    "selfhosted_tenants": tenants,
                    "period_seconds": period,
                    "rounds_in_one_hour": rounds,
                    "instances_with_figures": with_figures,
                    "railway_requests_in_one_hour": sum(by_operation.values()),
                    "by_operation": dict(by_operation),
                    "platform_token_requests_per_hour": by_token[fingerprint(PLATFORM)],
                    "most_per_tenant_token_per_hour": max(
                        (n for t, n in by_token.items() if t != fingerprint(PLATFORM)), default=0
                    ),
                    "requests_per_instance_per_hour": round(
                        sum(by_operation.values()) / max(1, instances), 4
                    ),
                    "platform_answer_bytes_per_round": one_answer,
                    "wall_seconds_for_the_hour": round(elapsed, 2),
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument(
        "--tenants", type=int, default=0, help="how many of them are SelfHosted, one per tenant"
    )
    parser.add_argument("--period", type=float, default=600.0, help="CLAW_USAGE_SAMPLE_SECONDS")
    args = parser.parse_args()
    asyncio.run(main(args.instances, args.tenants, args.period))
