"""Health through the prober pool, end to end: an instance whose health endpoint starts
failing turns Unhealthy after failureThreshold probes (phase Degraded, a Warning event),
and back (Running, a Normal event); a healthy fleet's probes write nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import kopf
import pytest
from aiohttp import web

from claw_emulators.kubernetes import KubernetesServer
from claw_emulators.railway.server import RailwayEmulator
from claw_operator.k8s.engine import Engine
from claw_operator.k8s.handlers import build_registry
from tests.fixtures.cluster import claw_manifest, phase_of, plan_manifest, status_of
from tests.fixtures.kubernetes import eventually, run_kopf
from tests.fixtures.operator import operator_settings


class HealthEndpoints:
    """Every instance's health endpoint; `failing` ones answer 503."""

    def __init__(self) -> None:
        self.failing = False
        self.hits = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        return web.Response(status=503 if self.failing else 200, text="")


@pytest.fixture
async def endpoints() -> AsyncIterator[tuple[HealthEndpoints, str]]:
    app = web.Application()
    health = HealthEndpoints()
    app.router.add_get("/{tail:.*}", health.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield health, f"http://127.0.0.1:{port}/{{domain}}{{path}}"
    finally:
        await runner.cleanup()


async def test_unhealthy_after_threshold_and_back(
    k8s: KubernetesServer,
    railway_emulator: RailwayEmulator,
    endpoints: tuple[HealthEndpoints, str],
) -> None:
    health, template = endpoints
    check = {"path": "/health", "intervalSeconds": 5, "timeoutSeconds": 1, "failureThreshold": 2}
    k8s.apply(plan_manifest(healthCheck=check))
    k8s.apply(claw_manifest("bot"))
    settings = operator_settings(railway_emulator, health_url_template=template, resync_seconds=3600.0)
    memo = kopf.Memo()
    registry = build_registry(lambda: Engine(settings=settings), plan_status_interval=0.5)
    async with run_kopf(k8s, registry, memo=memo):
        await eventually(lambda: phase_of(k8s, "bot") == "Running", within=30)
        writes = len(k8s.writes(resource="clawinstances"))
        probes = health.hits
        await eventually(lambda: health.hits >= probes + 2, within=20)
        assert len(k8s.writes(resource="clawinstances")) == writes, "passing probes write nothing"

        health.failing = True
        await eventually(lambda: phase_of(k8s, "bot") == "Degraded", within=30)
        status = status_of(k8s, "bot")
        assert status["health"]["status"] == "Unhealthy"
        assert status["health"]["consecutiveFailures"] >= 2
        # Events go out through Kopf's posting queue, a moment after the status write.
        warnings = await eventually(lambda: _events(k8s, "HealthCheckFailing"), within=10)
        assert len(warnings) == 1 and warnings[0]["type"] == "Warning"

        health.failing = False
        await eventually(lambda: phase_of(k8s, "bot") == "Running", within=30)
        assert status_of(k8s, "bot")["health"]["status"] == "Healthy"
        passing = await eventually(lambda: _events(k8s, "HealthCheckPassing"), within=10)
        assert len(passing) == 1 and passing[0]["type"] == "Normal"


def _events(k8s: KubernetesServer, reason: str) -> list[dict[str, Any]]:
    return [e for e in k8s.events("tenant-a", involved_name="bot") if e["reason"] == reason]
