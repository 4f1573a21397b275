"""`kubectl claw` against the Kubernetes emulator (and the Railway emulator for logs),
with the operator running where the verbs need it to act."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import kopf
import pytest

from claw_emulators.kubernetes import KubernetesServer
from claw_emulators.railway.server import RailwayEmulator
from claw_kubectl.cli import main
from claw_operator.k8s.engine import Engine
from claw_operator.k8s.handlers import build_registry
from tests.fixtures.common import CANARY_PREFIX, canary
from tests.fixtures.kubernetes import eventually, run_kopf
from tests.fixtures.operator import operator_settings, plan
from tests.fixtures.railway import TEST_WORKSPACE

NS = "tenant-a"


async def claw(*argv: str, kubeconfig: Path) -> tuple[int, str, str]:
    """Run the plugin in a worker thread: its client is synchronous and the emulators
    serve on this test's event loop."""
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(main, [*argv, "--kubeconfig", str(kubeconfig)], out, err)
    return code, out.getvalue(), err.getvalue()


def secret(name: str, data: dict[str, str], namespace: str = NS) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def instance(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "claw.io/v1alpha1",
        "kind": "ClawInstance",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"planRef": "pro", **spec},
    }


@contextlib.asynccontextmanager
async def operator(k8s: KubernetesServer, emu: RailwayEmulator, token: str) -> AsyncIterator[None]:
    settings = operator_settings(emu, railway_token=token)
    registry = build_registry(lambda: Engine(settings=settings), plan_status_interval=0.5)
    async with run_kopf(k8s, registry, memo=kopf.Memo()):
        yield


def phase(k8s: KubernetesServer, name: str) -> str | None:
    return ((k8s.get("clawinstances", NS, name) or {}).get("status") or {}).get("phase")


@pytest.fixture
def platform_token(railway_emulator: RailwayEmulator) -> str:
    token = canary("kubectl-platform-token")
    railway_emulator.add_token(token, TEST_WORKSPACE, per_hour=100_000, per_second=1000)
    return token


async def test_status_list_wait_logs_and_verbs_on_a_live_instance(
    k8s: KubernetesServer, kubeconfig: Path, railway_emulator: RailwayEmulator, platform_token: str
) -> None:
    emu = railway_emulator
    emu.add_fault(kind="echo_variables")  # the build log prints every variable's value
    k8s.apply(
        {"apiVersion": "claw.io/v1alpha1", "kind": "ClawPlan", "metadata": {"name": "pro"}, "spec": plan()}
    )
    k8s.apply(secret("feishu", {"appId": "cli_app", "secret": canary("kubectl-feishu")}))
    k8s.apply(secret("llm", {"apiKey": canary("kubectl-env")}))
    k8s.apply(secret("railway-platform-token", {"token": platform_token}, namespace="claw-system"))
    k8s.apply(
        instance(
            "bot",
            channels=[{"type": "feishu", "secretRef": {"name": "feishu"}}],
            env=[{"name": "LLM_KEY", "valueFrom": {"secretKeyRef": {"name": "llm", "key": "apiKey"}}}],
        )
    )
    async with operator(k8s, emu, platform_token):
        code, out, err = await claw(
            "wait", "bot", "-n", NS, "--for", "condition=Ready", "--timeout", "60s", kubeconfig=kubeconfig
        )
        assert (code, err) == (0, "")
        assert out.strip() == "clawinstance.claw.io/bot condition met"
        assert phase(k8s, "bot") == "Running"

        code, out, err = await claw("status", "bot", "-n", NS, kubeconfig=kubeconfig)
        assert code == 0, err
        obj = k8s.get("clawinstances", NS, "bot")
        assert obj is not None
        assert "Phase:       Running" in out and "[####################] 100%" in out
        assert obj["status"]["url"] in out
        assert obj["status"]["railway"]["projectId"] in out
        assert "Health:      Healthy" in out
        assert "Ready" in out and "Available" in out and "DeploymentSucceeded" in out
        assert "DeploymentSucceeded" in out.split("Events:")[1], "the last events are listed"

        code, out, _ = await claw("list", "-A", kubeconfig=kubeconfig)
        assert code == 0
        assert out.splitlines()[0].split() == [
            "NAMESPACE",
            "NAME",
            "PLAN",
            "PHASE",
            "PROGRESS",
            "HEALTH",
            "URL",
        ]
        assert "by phase: Running 1" in out and "by plan:  pro 1" in out

        # Logs through Railway with the platform token from a Secret; secrets redacted.
        code, out, err = await claw(
            "logs", "bot", "-n", NS, "--build", "--tail", "200",
            "--token-secret", "claw-system/railway-platform-token",
            "--railway-api-url", emu.url, kubeconfig=kubeconfig,
        )  # fmt: skip
        assert code == 0, err
        assert "ENV LLM_KEY=[REDACTED]" in out and "ENV FEISHU_SECRET=[REDACTED]" in out
        assert "Building from" in out
        assert CANARY_PREFIX not in out + err

        code, out, err = await claw(
            "logs", "bot", "-n", NS, "--railway-api-url", emu.url, kubeconfig=kubeconfig
        )
        assert code == 1 and "set RAILWAY_TOKEN or pass --token-secret" in err

        # The verbs write what the operator acts on.
        assert (await claw("restart", "bot", "-n", NS, kubeconfig=kubeconfig))[:2] == (
            0,
            "clawinstance.claw.io/bot restart requested\n",
        )
        annotations = (k8s.get("clawinstances", NS, "bot") or {})["metadata"]["annotations"]
        assert annotations["claw.io/restartedAt"].endswith("Z")
        assert (await claw("redeploy", "bot", "-n", NS, kubeconfig=kubeconfig))[0] == 0
        assert (
            "claw.io/redeployRequestedAt"
            in (k8s.get("clawinstances", NS, "bot") or {})["metadata"]["annotations"]
        )

        assert (await claw("suspend", "bot", "-n", NS, kubeconfig=kubeconfig))[0] == 0
        await eventually(
            lambda: phase(k8s, "bot") == "Suspended", within=30, message="suspend never took effect"
        )
        code, out, _ = await claw(
            "wait", "bot", "-n", NS, "--for", "condition=Ready", "--timeout", "0.2s", kubeconfig=kubeconfig
        )
        assert code == 1
        assert (await claw("resume", "bot", "-n", NS, kubeconfig=kubeconfig))[0] == 0
        code, _, err = await claw("wait", "bot", "-n", NS, "--timeout", "60s", kubeconfig=kubeconfig)
        assert code == 0, err

        assert (await claw("pause", "bot", "-n", NS, kubeconfig=kubeconfig))[0] == 0
        assert (k8s.get("clawinstances", NS, "bot") or {})["metadata"]["annotations"][
            "claw.io/paused"
        ] == "true"
        code, out, _ = await claw("status", "bot", "-n", NS, kubeconfig=kubeconfig)
        assert "Paused:      yes" in out
        assert (await claw("unpause", "bot", "-n", NS, kubeconfig=kubeconfig))[0] == 0
        assert "claw.io/paused" not in (k8s.get("clawinstances", NS, "bot") or {})["metadata"]["annotations"]


async def test_self_hosted_logs_use_the_instance_token(
    k8s: KubernetesServer, kubeconfig: Path, railway_emulator: RailwayEmulator, platform_token: str
) -> None:
    emu = railway_emulator
    tenant_token = canary("kubectl-tenant-token")
    emu.add_token(tenant_token, "ws-tenant", per_hour=100_000, per_second=1000)
    k8s.apply(
        {"apiVersion": "claw.io/v1alpha1", "kind": "ClawPlan", "metadata": {"name": "pro"}, "spec": plan()}
    )
    k8s.apply(secret("tenant-railway", {"token": tenant_token}))
    k8s.apply(
        instance(
            "own",
            railway={"mode": "SelfHosted", "tokenSecretRef": {"name": "tenant-railway", "key": "token"}},
        )
    )
    async with operator(k8s, emu, platform_token):
        await eventually(lambda: phase(k8s, "own") == "Running", within=30, message="never Running")
        code, out, err = await claw(
            "logs", "own", "-n", NS, "--railway-api-url", emu.url, kubeconfig=kubeconfig
        )
    assert code == 0, err
    assert "OpenClaw gateway starting" in out
    assert CANARY_PREFIX not in out + err


async def test_rollout_status_reads_the_plan(k8s: KubernetesServer, kubeconfig: Path) -> None:
    k8s.apply(
        {"apiVersion": "claw.io/v1alpha1", "kind": "ClawPlan", "metadata": {"name": "pro"}, "spec": plan()}
    )
    rollout = {
        "revision": "7f3a9c2e",
        "phase": "Halted",
        "updated": 12,
        "pending": 30,
        "failed": 2,
        "message": "halted: 2 failed",
    }
    k8s.patch(
        "clawplans",
        None,
        "pro",
        {"status": {"revision": "7f3a9c2e", "rollout": rollout}},
        subresource="status",
    )
    code, out, err = await claw("rollout", "status", "pro", kubeconfig=kubeconfig)
    assert code == 0, err
    assert "Revision:    7f3a9c2e" in out
    assert "Rollout:     Halted (revision 7f3a9c2e)" in out
    assert "12 updated, 30 pending, 2 failed" in out and "[#####---------------]  27%" in out
    assert "kubectl claw rollout resume pro" in out
    code, out, err = await claw("rollout", "resume", "pro", kubeconfig=kubeconfig)
    assert (code, out, err) == (0, "clawplan.claw.io/pro rollout resume requested\n", "")
    annotations = (k8s.get("clawplans", None, "pro") or {})["metadata"]["annotations"]
    assert annotations["claw.io/rolloutResumedAt"].endswith("Z")


async def test_errors_and_usage_exit_1_like_kubectl(k8s: KubernetesServer, kubeconfig: Path) -> None:
    code, out, err = await claw("status", "ghost", "-n", NS, kubeconfig=kubeconfig)
    assert (code, out) == (1, "")
    assert err.strip() == 'error: clawinstance "ghost" in namespace "tenant-a" not found'
    code, _, err = await claw("frobnicate", kubeconfig=kubeconfig)
    assert code == 1 and err.startswith("usage: kubectl claw") and "invalid choice" in err
    code, _, err = await claw("wait", "ghost", "--for", "ready", kubeconfig=kubeconfig)
    assert code == 1 and "condition=TYPE" in err
    code, _, err = await claw("status", "x", "--context", "nope", kubeconfig=kubeconfig)
    assert code == 1 and 'context "nope" is not in the kubeconfig' in err
    code, out, _ = await claw(kubeconfig=kubeconfig)
    assert code == 0 and "rollout" in out
    code, out, _ = await claw("list", kubeconfig=kubeconfig)  # the context's namespace: default
    assert (code, out.strip()) == (0, "No ClawInstances found.")
