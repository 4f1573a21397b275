"""The shipped install on kind (CI's e2e job, once after `helm install` and once after
`kubectl apply -k tests/e2e/overlay`): the samples become Ready against the in-cluster
Railway emulator, `kubectl get claw` shows the columns, /metrics answers, the Argo CD
health Lua calls the live objects Healthy, the plugin reads them, and deleting them
deletes their Railway projects.

Runs only with CLAW_E2E_INSTALL=helm|kustomize (and CLAW_E2E_KIND=1, see conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.argocd.lua import health

ROOT = Path(__file__).resolve().parents[2]
INSTALL = os.environ.get("CLAW_E2E_INSTALL", "")
OPERATOR_NAMESPACE = "claw-system"
METRICS = f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/services/claw-operator-metrics:metrics/proxy/metrics"
EMULATOR_STATE = "/api/v1/namespaces/railway-emulator/services/railway-emulator:http/proxy/_admin/state"
SAMPLES = sorted((ROOT / "manifests" / "samples").glob("*.yaml"))
TENANTS = ["tenant-a", "tenant-b"]

pytestmark = pytest.mark.skipif(
    INSTALL not in {"helm", "kustomize"},
    reason="set CLAW_E2E_INSTALL=helm or kustomize after installing the operator as CI's e2e job does",
)


def kubectl(*args: str, timeout: int = 300) -> str:
    result = subprocess.run(["kubectl", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def instances() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(kubectl("get", "clawinstances", "-A", "-o", "json"))["items"]
    return items


@pytest.fixture(scope="module")
def applied_samples() -> Any:
    for path in SAMPLES:
        kubectl("apply", "-f", str(path))
    yield [d for path in SAMPLES for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def test_samples_become_ready(applied_samples: Any) -> None:
    for namespace in TENANTS:
        kubectl("wait", "--for=condition=Ready", "clawinstance", "--all", "-n", namespace, "--timeout=300s")


def test_get_claw_shows_the_columns(applied_samples: Any) -> None:
    lines = kubectl("get", "claw", "-n", "tenant-a").splitlines()
    assert lines[0].split() == ["NAME", "PLAN", "PHASE", "PROGRESS", "HEALTH", "URL", "AGE"]
    row = lines[1].split()
    assert row[2:5] == ["Running", "100", "Healthy"] and row[5].startswith("https://")
    header = kubectl("get", "clawplan").splitlines()[0].split()
    assert header[:3] == ["NAME", "IMAGE", "INSTANCES"]


def test_metrics_are_served(applied_samples: Any) -> None:
    page = kubectl("get", "--raw", METRICS)
    assert 'claw_instances{phase="Running",plan="pro"}' in page
    assert "controller_runtime_reconcile_total" in page
    assert "e2e-platform-token" not in page


def test_argocd_health_of_the_live_objects(applied_samples: Any) -> None:
    for obj in instances():
        assert health("ClawInstance", obj)["status"] == "Healthy", obj["metadata"]["name"]
    for plan in json.loads(kubectl("get", "clawplans", "-o", "json"))["items"]:
        assert health("ClawPlan", plan)["status"] in {"Healthy", "Progressing"}


def test_the_plugin_reads_the_live_objects(applied_samples: Any) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "claw_kubectl.cli", "status", "my-chatbot", "-n", "tenant-a"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Phase:       Running" in result.stdout


def test_deleting_removes_the_railway_projects(applied_samples: Any) -> None:
    projects = {o["status"]["railway"]["projectId"] for o in instances()}
    state = json.loads(kubectl("get", "--raw", EMULATOR_STATE))
    assert projects <= {p["id"] for p in state["projects"]}
    for namespace in TENANTS:
        kubectl("delete", "clawinstances", "--all", "-n", namespace, "--timeout=180s")
    state = json.loads(kubectl("get", "--raw", EMULATOR_STATE))
    assert not projects & {p["id"] for p in state["projects"]}
