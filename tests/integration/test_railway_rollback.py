"""deploymentRollback: the client sends it, the emulator restores the earlier deployment's
image and variables through a new deployment; an image-scoped fault fails a bad release
but not the rollback from it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from claw_emulators.railway.server import RailwayEmulator
from claw_operator.railway.budget import RateBudget
from claw_operator.railway.client import RailwayClient
from claw_operator.railway.errors import RailwayError
from claw_operator.railway.types import Deployment
from tests.fixtures.railway import TEST_TOKEN, TEST_WORKSPACE

TERMINAL = {"SUCCESS", "FAILED", "CRASHED", "REMOVED", "SKIPPED"}


@pytest.fixture
async def client(railway_emulator: RailwayEmulator) -> AsyncIterator[RailwayClient]:
    async with RailwayClient(
        url=railway_emulator.url, token=TEST_TOKEN, budget=RateBudget(rps=None, rph=None), backoff_base=0.05
    ) as client:
        yield client


async def settled(
    client: RailwayClient, project: str, env: str, service: str, count: int
) -> list[Deployment]:
    """The service's deployments (newest first) once there are `count` and all ended."""
    for _ in range(400):
        deployments = await client.list_deployments(
            project_id=project, environment_id=env, service_id=service
        )
        if len(deployments) >= count and all(d.status in TERMINAL for d in deployments):
            return deployments
        await asyncio.sleep(0.02)
    raise AssertionError("deployments never settled")


async def test_rollback_restores_the_last_good_image_and_variables(
    railway_emulator: RailwayEmulator, client: RailwayClient
) -> None:
    railway_emulator.add_fault(kind="fail_build", image=":bad")
    project = await client.create_project(name="claw-ns-r", description="m", workspace_id=TEST_WORKSPACE)
    env = project.environments[0].id
    service = await client.create_service(
        project_id=project.id, environment_id=env, name="openclaw", variables={"V": "good"}
    )
    await client.configure_service(
        environment_id=env,
        service_id=service.id,
        settings=None,
        limits=None,
        create_domain=False,
        source={"image": "ghcr.io/openclaw/openclaw:good"},
    )
    (good,) = await settled(client, project.id, env, service.id, 1)
    assert good.status == "SUCCESS"

    await client.upsert_variables(
        project_id=project.id,
        environment_id=env,
        service_id=service.id,
        variables={"V": "bad"},
        replace=True,
        skip_deploys=True,
    )
    await client.configure_service(
        environment_id=env,
        service_id=service.id,
        settings=None,
        limits=None,
        create_domain=False,
        source={"image": "ghcr.io/openclaw/openclaw:bad"},
    )
    # Connecting the new source deploys it.
    bad, _ = await settled(client, project.id, env, service.id, 2)
    assert bad.status == "FAILED"

    await client.rollback(good.id)
    back, *_ = await settled(client, project.id, env, service.id, 3)
    assert back.id not in (good.id, bad.id) and back.status == "SUCCESS"
    instance = railway_emulator.state.instances[(service.id, env)]
    assert instance.image == "ghcr.io/openclaw/openclaw:good"
    assert instance.variables == {"V": "good"}
    assert railway_emulator.state.deployments[back.id].variables["V"] == "good"
    assert [r.operation_name for r in railway_emulator.requests].count("DeploymentRollback") == 1

    with pytest.raises(RailwayError):
        await client.rollback(bad.id)  # a deployment that never succeeded is no target
