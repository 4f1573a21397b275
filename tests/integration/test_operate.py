"""`claw-operator run` as shipped, against the Kubernetes and Railway emulators: the
metrics port serves /metrics, /healthz and /readyz; a canary token and a canary secret
value never reach /metrics; the Argo CD health Lua reads the objects the operator
produced; and the Kubernetes calls of a whole lifecycle (an OAuth token refresh of a
SelfHosted instance included) are exactly what the RBAC of manifests/default grants."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from claw_emulators.kubernetes import KubernetesServer
from claw_emulators.railway.server import RailwayEmulator
from claw_operator.k8s.runner import run_operator
from tests.argocd.lua import CUSTOMIZATIONS, health, run
from tests.fixtures.common import CANARY_PREFIX, canary
from tests.fixtures.kubernetes import eventually
from tests.fixtures.operator import operator_settings, plan
from tests.fixtures.railway import TEST_WORKSPACE
from tests.rbac import granted_calls, recorded_calls, unused_allowed

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _secret(name: str, namespace: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


@contextlib.asynccontextmanager
async def shipped_operator(
    kubeconfig: Path, emu: RailwayEmulator, token: str, port: int
) -> AsyncIterator[asyncio.Task[None]]:
    """The operator exactly as `claw-operator run` starts it (login handler, cluster-wide,
    metrics port), stopped through its stop flag."""
    stop = asyncio.Event()
    settings = operator_settings(emu, railway_token=token, railway_oauth_token_url=emu.oauth_token_url)
    task = asyncio.create_task(
        run_operator(
            settings, kubeconfig=str(kubeconfig), stop_flag=stop, metrics_port=port, metrics_host="127.0.0.1"
        ),
        name="claw-operator-run",
    )
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


def _oauth_secret(emu: RailwayEmulator, name: str, client_secret: str) -> dict[str, Any]:
    """A tenant signed in with an OAuth app: a first grant whose access token is already
    inside the refresher's lead (ten minutes left), so the operator refreshes it at once."""
    emu.oauth.ttl_seconds = 600
    grant = emu.oauth.issue("claw-oauth-app")
    emu.oauth.ttl_seconds = 3600
    expires = datetime.now(UTC) + timedelta(seconds=grant["expires_in"])
    secret = _secret(
        name,
        "tenant-a",
        {
            "token": grant["access_token"],
            "refreshToken": grant["refresh_token"],
            "clientId": "claw-oauth-app",
            "clientSecret": client_secret,
            "expiresAt": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    )
    secret["metadata"]["labels"] = {"claw.io/watch": "true"}
    return secret


def _phase(k8s: KubernetesServer, name: str) -> str | None:
    return ((k8s.get("clawinstances", "tenant-a", name) or {}).get("status") or {}).get("phase")


def _metric(text: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    assert match, f"{series} not in /metrics"
    return float(match.group(1))


async def test_run_serves_probes_and_metrics_without_secrets_and_argo_reads_its_objects(
    k8s: KubernetesServer, kubeconfig: Path, railway_emulator: RailwayEmulator
) -> None:
    emu = railway_emulator
    token = canary("platform-token")
    emu.add_token(token, TEST_WORKSPACE, per_hour=100_000, per_second=1000)
    port = _free_port()
    k8s.apply(
        {"apiVersion": "claw.io/v1alpha1", "kind": "ClawPlan", "metadata": {"name": "pro"}, "spec": plan()}
    )
    k8s.apply(_secret("feishu", "tenant-a", {"appId": "cli_app", "secret": canary("feishu-secret")}))
    k8s.apply(_secret("llm", "tenant-a", {"apiKey": canary("env-value")}))
    emu.oauth.add_app("claw-oauth-app", canary("oauth-client-secret"), "ws-tenant", tier="pro")
    k8s.apply(_oauth_secret(emu, "railway-oauth", canary("oauth-client-secret")))
    k8s.apply(
        {
            "apiVersion": "claw.io/v1alpha1",
            "kind": "ClawInstance",
            "metadata": {"name": "tenant", "namespace": "tenant-a"},
            "spec": {
                "planRef": "pro",
                "railway": {
                    "mode": "SelfHosted",
                    "tokenSecretRef": {"name": "railway-oauth", "key": "token"},
                },
            },
        }
    )
    k8s.apply(
        {
            "apiVersion": "claw.io/v1alpha1",
            "kind": "ClawInstance",
            "metadata": {"name": "bot", "namespace": "tenant-a"},
            "spec": {
                "planRef": "pro",
                "channels": [{"type": "feishu", "secretRef": {"name": "feishu"}}],
                "env": [{"name": "LLM_KEY", "valueFrom": {"secretKeyRef": {"name": "llm", "key": "apiKey"}}}],
            },
        }
    )
    base = f"http://127.0.0.1:{port}"
    async with shipped_operator(kubeconfig, emu, token, port), httpx.AsyncClient(base_url=base) as client:

        async def answers(path: str) -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return (await client.get(path)).status_code == 200
            return False

        async def poll(path: str) -> None:
            for _ in range(400):
                if await answers(path):
                    return
                await asyncio.sleep(0.05)
            raise AssertionError(f"{path} never answered 200")

        await poll("/healthz")
        await poll("/readyz")
        await eventually(lambda: _phase(k8s, "bot") == "Running", within=30, message="bot never Running")
        # The refresher (on the replica holding shard 0) wrote the rotated tokens back.
        await eventually(lambda: emu.oauth.refreshes == 1, within=30, message="the token was never refreshed")
        await eventually(
            lambda: _phase(k8s, "tenant") == "Running", within=30, message="tenant never Running"
        )

        # The Argo CD health check agrees with the operator's own objects.
        obj = k8s.get("clawinstances", "tenant-a", "bot")
        assert obj is not None
        assert health("ClawInstance", obj) == {
            "status": "Healthy",
            "message": obj["status"].get("message", ""),
        }

        def plan_valid() -> bool:
            status = (k8s.get("clawplans", None, "pro") or {}).get("status") or {}
            return any(c["type"] == "Valid" and c["status"] == "True" for c in status.get("conditions", []))

        await eventually(plan_valid, within=10, message="the plan never became Valid")
        plan_obj = k8s.get("clawplans", None, "pro")
        assert plan_obj is not None
        assert health("ClawPlan", plan_obj)["status"] == "Healthy"

        # The Argo CD "suspend" action, applied as Argo CD would, suspends the instance.
        suspended = run(CUSTOMIZATIONS / "ClawInstance" / "actions" / "suspend" / "action.lua", obj)
        k8s.apply({**obj, "spec": suspended["spec"], "metadata": {**obj["metadata"]}})
        await eventually(lambda: _phase(k8s, "bot") == "Suspended", within=30, message="never Suspended")
        obj = k8s.get("clawinstances", "tenant-a", "bot")
        assert obj is not None and health("ClawInstance", obj)["status"] == "Suspended"

        # A failing build: the operator reports Failed, and Argo CD calls that Degraded.
        emu.add_fault(kind="fail_build")
        k8s.apply(
            {
                "apiVersion": "claw.io/v1alpha1",
                "kind": "ClawInstance",
                "metadata": {"name": "broken", "namespace": "tenant-a"},
                "spec": {"planRef": "pro"},
            }
        )
        await eventually(lambda: _phase(k8s, "broken") == "Failed", within=30, message="broken never Failed")
        broken = k8s.get("clawinstances", "tenant-a", "broken")
        assert broken is not None
        assert health("ClawInstance", broken) == {
            "status": "Degraded",
            "message": broken["status"]["message"],
        }

        page = (await client.get("/metrics")).text
        assert _metric(page, 'claw_instances{phase="Failed",plan="pro"}') == 1
        assert _metric(page, 'claw_deploy_duration_seconds_count{plan="pro",result="FAILED"}') >= 1
        assert (
            _metric(page, 'controller_runtime_reconcile_total{controller="clawinstance",result="success"}')
            >= 1
        )
        assert _metric(page, 'claw_instances{phase="Suspended",plan="pro"}') == 1
        assert _metric(page, 'claw_instance_ready{name="bot",namespace="tenant-a"}') == 0
        assert _metric(page, 'claw_railway_requests_total{operation="ProjectCreate",outcome="ok"}') >= 1
        assert _metric(page, 'claw_health_probes_total{result="pass"}') >= 1
        assert _metric(page, 'claw_time_to_ready_seconds_count{plan="pro"}') >= 1
        assert _metric(page, 'claw_deploy_duration_seconds_count{plan="pro",result="SUCCESS"}') >= 1
        assert 'claw_railway_rate_budget_remaining{token="' in page
        assert CANARY_PREFIX not in page, "a secret reached /metrics"

        k8s.delete("clawinstances", "tenant-a", "bot")
        k8s.delete("clawinstances", "tenant-a", "broken")
        k8s.delete("clawinstances", "tenant-a", "tenant")
        await eventually(lambda: k8s.get("clawinstances", "tenant-a", "tenant") is None, within=20)
        await eventually(lambda: k8s.get("clawinstances", "tenant-a", "broken") is None, within=20)
        await eventually(lambda: k8s.get("clawinstances", "tenant-a", "bot") is None, within=20)
        page = (await client.get("/metrics")).text
        assert 'claw_instance_ready{name="bot",namespace="tenant-a"}' not in page
        assert CANARY_PREFIX not in page
    assert emu.state.projects == {}

    # Least privilege: every call was granted, every grant was used.
    calls = recorded_calls(k8s)
    granted = granted_calls(ROOT / "manifests" / "default")
    assert calls - granted == set(), f"calls the RBAC does not grant: {sorted(calls - granted)}"
    unused = granted - calls - unused_allowed()
    assert unused == set(), f"grants no call used: {sorted(unused)}"
