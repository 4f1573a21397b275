"""One token, several callers: a 429 with Retry-After silences all of them (the scheduler's
batched polls and a reconcile's mutations alike) until it has passed."""

from __future__ import annotations

import asyncio
import contextlib

from claw_emulators.railway.server import RailwayEmulator
from claw_operator.fleet.scheduler import CURRENT_OBJECT, TokenScheduler
from claw_operator.railway.budget import RateBudget
from claw_operator.railway.client import RailwayClient
from claw_operator.railway.errors import RailwayError
from claw_operator.railway.types import ServiceInstanceRef
from claw_operator.rules.naming import project_marker, project_name
from tests.fixtures.railway import TEST_TOKEN, TEST_WORKSPACE


async def test_retry_after_silences_every_caller_of_the_token(railway_emulator: RailwayEmulator) -> None:
    emu = railway_emulator
    budget = RateBudget(rps=None, rph=None, spread=False)
    mutator = RailwayClient(url=emu.url, token=TEST_TOKEN, budget=budget, backoff_base=0.01)
    poller = RailwayClient(url=emu.url, token=TEST_TOKEN, budget=budget, backoff_base=0.01)
    scheduler = TokenScheduler(poller, on_change=lambda key: None, steady_seconds=0.05, fast_seconds=0.05)
    try:
        # A few service instances for the scheduler to watch, polled every 50 ms.
        refs = []
        for n in range(3):
            project = await mutator.create_project(
                name=project_name("claw", "ns", f"w{n}"),
                description=project_marker("default", "ns", f"w{n}"),
                workspace_id=TEST_WORKSPACE,
            )
            env = project.environments[0].id
            service = await mutator.create_service(
                project_id=project.id, environment_id=env, name=f"w{n}", variables={}
            )
            refs.append((project.id, env, service.id))
        for n, (project_id, env, service_id) in enumerate(refs):
            token = CURRENT_OBJECT.set(f"ns/w{n}")
            await scheduler.observe(
                ServiceInstanceRef(projectId=project_id, environmentId=env, serviceId=service_id),
                with_variables=True,
            )
            CURRENT_OBJECT.reset(token)

        emu.add_fault(kind="throttle", mode="http", seconds=2, count=1)

        async def keep_mutating() -> None:
            for n in range(20):
                with contextlib.suppress(RailwayError):
                    await mutator.upsert_variables(
                        project_id=refs[0][0],
                        environment_id=refs[0][1],
                        service_id=refs[0][2],
                        variables={"N": str(n)},
                        skip_deploys=True,
                    )
                await asyncio.sleep(0.05)

        await keep_mutating()
    finally:
        await scheduler.aclose()
        await mutator.aclose()
        await poller.aclose()

    throttled = [r for r in emu.requests if r.status == 429]
    assert len(throttled) == 1
    during = [r for r in emu.requests if throttled[0].time < r.time < throttled[0].time + 2.0]
    # Only a request already on its way when the 429 came back may arrive after it: one
    # per other caller at most, right behind the 429; nothing is sent during the pause.
    assert len(during) <= 1, [r.operation_name for r in during]
    assert all(r.time < throttled[0].time + 0.25 for r in during)
    after = [r for r in emu.requests if r.time >= throttled[0].time + 2.0]
    assert {r.operation_name for r in after} >= {"FleetObserve", "VariableCollectionUpsert"}, (
        "both callers resume"
    )
