"""Against a real API server (kind): the CRDs install, valid objects are stored with the
defaults API.md promises, invalid ones are refused by the schema and the CEL rules,
`kubectl get claw` shows the columns, and (with CLAW_E2E_OPERATOR=1, when the operator is
deployed as CI does) the operator takes an instance in hand.

Skipped without CLAW_E2E_KIND=1 (see conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_FILES = [ROOT / "crds" / "clawplans.claw.io.yaml", ROOT / "crds" / "clawinstances.claw.io.yaml"]
IMAGE = "ghcr.io/openclaw/openclaw:2026.2.1"
Obj = dict[str, Any]
OPERATOR_DEPLOYED = os.environ.get("CLAW_E2E_OPERATOR") == "1"


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["kubectl", *args], input=stdin, capture_output=True, text=True, timeout=120, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def apply(*objects: Obj, dry_run: bool = False, check: bool = True) -> subprocess.CompletedProcess[str]:
    args = ["apply", "-f", "-"] + (["--dry-run=server"] if dry_run else [])
    return kubectl(*args, stdin=yaml.safe_dump_all(objects), check=check)


def get(kind: str, name: str, namespace: str | None = None) -> Obj:
    args = ["get", kind, name, "-o", "json"] + (["-n", namespace] if namespace else [])
    result: Obj = json.loads(kubectl(*args).stdout)
    return result


@pytest.fixture(scope="session")
def crds() -> None:
    for path in CRD_FILES:
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/clawplans.claw.io",
        "crd/clawinstances.claw.io",
    )


@pytest.fixture
def suffix() -> str:
    return uuid.uuid4().hex[:6]


@pytest.fixture
def namespace(crds: None, suffix: str) -> Iterator[str]:
    name = f"claw-e2e-{suffix}"
    kubectl("create", "namespace", name)
    yield name
    # An operator that cannot reach Railway may hold its finalizer; the test cluster is
    # not Railway's concern, so let the objects go. Deleted first, so that no operator
    # adds the finalizer back (Kopf does not add finalizers to objects being deleted).
    kubectl("delete", "clawinstances", "--all", "-n", name, "--wait=false", check=False)
    listed = json.loads(kubectl("get", "clawinstances", "-n", name, "-o", "json").stdout)
    for item in listed["items"]:
        kubectl(
            "patch", "clawinstance", item["metadata"]["name"], "-n", name,
            "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False,
        )  # fmt: skip
    kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def plan(crds: None, suffix: str) -> Iterator[str]:
    name = f"e2e-{suffix}"
    apply(
        {
            "apiVersion": "claw.io/v1alpha1",
            "kind": "ClawPlan",
            "metadata": {"name": name},
            "spec": {"source": {"image": IMAGE}},
        }
    )
    yield name
    kubectl("delete", "clawplan", name, "--wait=false", check=False)


def instance(name: str, namespace: str, plan: str, **spec: Any) -> Obj:
    return {
        "apiVersion": "claw.io/v1alpha1",
        "kind": "ClawInstance",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"planRef": plan, **spec},
    }


def secret(name: str, namespace: str, **data: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": data,
    }


def test_plan_is_stored_with_defaults(plan: str) -> None:
    spec = get("clawplan", plan)["spec"]
    assert spec["limits"] == {"maxInstances": 5, "maxChannels": 10, "bandwidthGB": 50}
    assert spec["healthCheck"]["path"] == "/health"
    assert spec["deployTimeoutSeconds"] == 600
    assert spec["replicas"] == 1


def test_instance_is_stored_with_defaults(namespace: str, plan: str) -> None:
    apply(
        secret("feishu", namespace, appId="cli_FAKE", secret="FAKE"),
        secret("llm", namespace, apiKey="sk-FAKE"),
        instance(
            "bot",
            namespace,
            plan,
            channels=[{"type": "feishu", "secretRef": {"name": "feishu"}}],
            env=[
                {"name": "CUSTOM_VAR", "value": "x"},
                {
                    "name": "ANTHROPIC_API_KEY",
                    "valueFrom": {"secretKeyRef": {"name": "llm", "key": "apiKey"}},
                },
            ],
        ),
    )
    spec = get("clawinstance", "bot", namespace)["spec"]
    assert spec["railway"] == {"mode": "Managed"}
    assert spec["deletionPolicy"] == "Delete"
    assert spec["suspend"] is False


def test_the_samples_are_accepted(crds: None) -> None:
    """All of manifests/samples, server-side dry run: namespaces, plans, secrets, instances."""
    docs = []
    for path in sorted((ROOT / "manifests" / "samples").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    # Namespaces must exist for a dry run of what lives in them.
    for doc in docs:
        if doc["kind"] == "Namespace":
            apply(doc)
    apply(*[d for d in docs if d["kind"] != "Namespace"], dry_run=True)


INVALID: list[tuple[str, Obj, str]] = [
    (
        "two sources",
        {"source": {"image": IMAGE, "repo": {"name": "openclaw/openclaw"}}},
        "set exactly one of source",
    ),
    ("no source", {"source": {}}, "set exactly one of source"),
    ("source missing", {}, "spec.source"),
    ("zero replicas", {"source": {"image": IMAGE}, "replicas": 0}, "spec.replicas"),
]

INVALID_INSTANCES: list[tuple[str, Obj, str]] = [
    ("self-hosted without token", {"railway": {"mode": "SelfHosted"}}, "tokenSecretRef is required"),
    (
        "env value and valueFrom",
        {"env": [{"name": "A", "value": "x", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
        "set exactly one of value or valueFrom",
    ),
    ("env without value", {"env": [{"name": "A"}]}, "set exactly one of value or valueFrom"),
    (
        "unknown channel",
        {"channels": [{"type": "slack", "secretRef": {"name": "s"}}]},
        "spec.channels[0].type",
    ),
    (
        "duplicate channel",
        {
            "channels": [
                {"type": "feishu", "secretRef": {"name": "a"}},
                {"type": "feishu", "secretRef": {"name": "b"}},
            ]
        },
        "Duplicate value",
    ),
    ("unknown deletion policy", {"deletionPolicy": "Orphan"}, "spec.deletionPolicy"),
]


@pytest.mark.parametrize(("spec", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_plan_is_rejected(crds: None, suffix: str, spec: Obj, message: str) -> None:
    obj = {
        "apiVersion": "claw.io/v1alpha1",
        "kind": "ClawPlan",
        "metadata": {"name": f"bad-{suffix}"},
        "spec": spec,
    }
    result = apply(obj, dry_run=True, check=False)
    assert result.returncode != 0, "the API server accepted it"
    assert message in result.stderr


@pytest.mark.parametrize(
    ("spec", "message"), [c[1:] for c in INVALID_INSTANCES], ids=[c[0] for c in INVALID_INSTANCES]
)
def test_invalid_instance_is_rejected(namespace: str, plan: str, spec: Obj, message: str) -> None:
    result = apply(instance("bad", namespace, plan, **spec), dry_run=True, check=False)
    assert result.returncode != 0, "the API server accepted it"
    assert message in result.stderr


def test_short_names_and_explain(namespace: str, plan: str) -> None:
    apply(instance("bot", namespace, plan))
    for name in ("claw", "claws", "clawinstances"):
        assert "bot" in kubectl("get", name, "-n", namespace, "-o", "name").stdout
    assert plan in kubectl("get", "clawplan", "-o", "name").stdout
    explained = kubectl("explain", "clawinstance.spec.channels").stdout
    assert "unique by type" in explained
    explained = kubectl("explain", "clawinstance.status.conditions").stdout
    assert "Ready is True when" in explained


def test_get_claw_prints_the_columns(namespace: str, plan: str) -> None:
    apply(instance("bot", namespace, plan))
    header = kubectl("get", "claw", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "PLAN", "PHASE", "PROGRESS", "HEALTH", "URL", "AGE"]


def test_columns_and_wait_read_the_status(namespace: str, plan: str) -> None:
    if OPERATOR_DEPLOYED:
        pytest.skip("a running operator owns status; this test writes it")
    apply(instance("bot", namespace, plan))
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    status = {
        "phase": "Running",
        "url": "https://bot.up.railway.app",
        "deployment": {"status": "SUCCESS", "progress": 100},
        "health": {"status": "Healthy", "consecutiveFailures": 0},
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Available",
                "message": "",
                "lastTransitionTime": now,
            }
        ],
    }
    kubectl(
        "patch", "clawinstance", "bot", "-n", namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps({"status": status}),
    )  # fmt: skip
    row = kubectl("get", "claw", "bot", "-n", namespace, "--no-headers").stdout.split()
    assert row[:6] == ["bot", plan, "Running", "100", "Healthy", "https://bot.up.railway.app"]
    kubectl("wait", "--for=condition=Ready", "--timeout=10s", "clawinstance/bot", "-n", namespace)


def test_the_operator_takes_an_instance_in_hand(namespace: str, plan: str) -> None:
    """CI points the operator at an unresolvable Railway URL: it must still add its
    finalizer and report, through conditions, why the instance is not ready."""
    if not OPERATOR_DEPLOYED:
        pytest.skip("set CLAW_E2E_OPERATOR=1 with the operator deployed (as CI's e2e job does)")
    apply(instance("bot", namespace, plan))
    deadline = time.monotonic() + 120
    obj: Obj = {}
    while time.monotonic() < deadline:
        obj = get("clawinstance", "bot", namespace)
        types = {c["type"] for c in obj.get("status", {}).get("conditions", [])}
        if "claw.io/finalizer" in obj["metadata"].get("finalizers", []) and "Ready" in types:
            break
        time.sleep(2)
    else:
        raise AssertionError(f"the operator did not take the instance in hand: {json.dumps(obj)}")
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] != "True"
    assert ready["reason"]
