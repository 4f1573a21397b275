"""The metrics registry: every series of API.md, the helpers that feed them, the token
label, and the probe server's three endpoints."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from claw_operator.k8s.probes import ProbeServer, Readiness
from claw_operator.support import metrics
from tests.fixtures.common import canary

API_SERIES = {
    "controller_runtime_reconcile_total": {"controller", "result"},
    "controller_runtime_reconcile_errors_total": {"controller"},
    "controller_runtime_reconcile_time_seconds": {"controller"},
    "claw_instances": {"phase", "plan"},
    "claw_instance_ready": {"namespace", "name"},
    "claw_railway_requests_total": {"operation", "outcome"},
    "claw_railway_rate_budget_remaining": {"token"},
    "claw_railway_throttled_total": {"token"},
    "claw_deploy_duration_seconds": {"plan", "result"},
    "claw_time_to_ready_seconds": {"plan"},
    "claw_health_probes_total": {"result"},
    "claw_drift_corrections_total": {"kind"},
    "claw_usage_cpu": {"namespace", "name"},
    "claw_usage_memory_gb": {"namespace", "name"},
    "claw_usage_network_egress_gb": {"namespace", "name"},
    "claw_rollout_instances": {"plan", "state"},
}


def _families() -> dict[str, Any]:
    families = {}
    for family in metrics.REGISTRY.collect():
        families[family.name] = family
    return families


def _labelnames(name: str) -> set[str]:
    for collector in list(metrics.REGISTRY._collector_to_names):
        if name in metrics.REGISTRY._collector_to_names[collector]:
            return set(collector._labelnames)
    raise AssertionError(f"{name} is not registered")


def _value(text: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    assert match, f"{series} not in the exposition"
    return float(match.group(1))


@pytest.mark.parametrize("name", sorted(API_SERIES))
def test_every_api_series_is_defined_with_its_labels(name: str) -> None:
    assert _labelnames(name) == API_SERIES[name]


def test_series_types() -> None:
    text = metrics.exposition().decode()
    for name in (
        "controller_runtime_reconcile_time_seconds",
        "claw_deploy_duration_seconds",
        "claw_time_to_ready_seconds",
    ):
        assert f"# TYPE {name} histogram" in text
    for name in (
        "controller_runtime_reconcile_total",
        "claw_railway_requests_total",
        "claw_health_probes_total",
    ):
        assert f"# TYPE {name} counter" in text
    for name in ("claw_instances", "claw_instance_ready", "claw_rollout_instances"):
        assert f"# TYPE {name} gauge" in text


def test_token_label_is_a_short_hash_never_the_token() -> None:
    secret = canary("metrics-token")
    label = metrics.token_label(secret)
    assert re.fullmatch(r"[0-9a-f]{12}", label)
    assert label == metrics.token_label(secret) and label != metrics.token_label(secret + "x")
    assert metrics.token_label(None) == "platform"
    metrics.railway_failure(label, "rate_limited")
    metrics.railway_failure(label, "auth")
    metrics.set_rate_budget(label, 900, 1000)
    text = metrics.exposition().decode()
    assert _value(text, f'claw_railway_throttled_total{{token="{label}"}}') >= 1
    assert _value(text, f'claw_railway_token_refused_total{{token="{label}"}}') >= 1
    assert _value(text, f'claw_railway_rate_budget_remaining{{token="{label}"}}') == 900
    assert secret not in text


async def test_timed_reconcile_counts_success_and_error() -> None:
    def count(result: str) -> float:
        return metrics.reconcile_total.labels(controller="unit", result=result)._value.get()

    async def ok() -> int:
        return 7

    async def boom() -> int:
        raise RuntimeError("boom")

    before_ok, before_err = count("success"), count("error")
    assert await metrics.timed_reconcile("unit", ok()) == 7
    with pytest.raises(RuntimeError):
        await metrics.timed_reconcile("unit", boom())
    assert (count("success"), count("error")) == (before_ok + 1, before_err + 1)
    assert metrics.reconcile_errors_total.labels(controller="unit")._value.get() >= 1


def _instance(status: dict[str, Any] | None = None, name: str = "m1") -> dict[str, Any]:
    return {
        "metadata": {"namespace": "unit-ns", "name": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"planRef": "unit-plan"},
        "status": status or {},
    }


READY = {"type": "Ready", "status": "True", "reason": "Available"}


def test_instance_status_feeds_phase_ready_time_to_ready_and_deploy_duration() -> None:
    deploying = {"phase": "Deploying", "deployment": {"id": "d1", "status": "BUILDING"}}
    running = {
        "phase": "Running",
        "conditions": [READY],
        "deployment": {
            "id": "d1",
            "status": "SUCCESS",
            "startedAt": "2026-01-01T00:01:00Z",
            "finishedAt": "2026-01-01T00:02:30Z",
        },
    }
    ttr = metrics.time_to_ready_seconds.labels(plan="unit-plan")
    deploys = metrics.deploy_duration_seconds.labels(plan="unit-plan", result="SUCCESS")
    ttr_before, deploys_before = ttr._sum.get(), deploys._sum.get()
    metrics.instance_status(_instance(), deploying)
    text = metrics.exposition().decode()
    assert _value(text, 'claw_instances{phase="Deploying",plan="unit-plan"}') == 1
    assert _value(text, 'claw_instance_ready{name="m1",namespace="unit-ns"}') == 0
    metrics.instance_status(_instance(deploying), running)
    metrics.instance_status(_instance(running), running)  # steady: observed once only
    text = metrics.exposition().decode()
    assert _value(text, 'claw_instances{phase="Running",plan="unit-plan"}') == 1
    assert 'claw_instances{phase="Deploying",plan="unit-plan"}' not in text
    assert _value(text, 'claw_instance_ready{name="m1",namespace="unit-ns"}') == 1
    assert deploys._sum.get() - deploys_before == 90.0
    assert ttr._sum.get() > ttr_before
    metrics.instance_gone("unit-ns", "m1")
    text = metrics.exposition().decode()
    assert (
        'plan="unit-plan"}'
        not in text.split("# HELP claw_instance_ready")[0].split("# HELP claw_instances ")[1]
    )
    assert 'claw_instance_ready{name="m1",namespace="unit-ns"}' not in text


def test_a_ready_instance_found_after_a_restart_is_no_time_to_ready() -> None:
    ttr = metrics.time_to_ready_seconds.labels(plan="unit-plan")
    before = ttr._sum.get()
    running = {"phase": "Running", "conditions": [READY]}
    metrics.instance_status(_instance(running, name="m2"), running)
    assert ttr._sum.get() == before
    metrics.instance_gone("unit-ns", "m2")


def test_usage_rollout_and_drift_helpers() -> None:
    metrics.set_usage("unit-ns", "m3", cpu=0.5, memory_gb=1.25, network_egress_gb=3.0, estimated_cost_usd=4.2)
    metrics.set_rollout("unit-plan", updated=2, pending=3, failed=1, halted=True)
    metrics.drift_corrected("variables")
    metrics.health_probe(True)
    metrics.health_probe(False)
    text = metrics.exposition().decode()
    assert _value(text, 'claw_usage_memory_gb{name="m3",namespace="unit-ns"}') == 1.25
    assert _value(text, 'claw_rollout_instances{plan="unit-plan",state="failed"}') == 1
    assert _value(text, 'claw_rollout_halted{plan="unit-plan"}') == 1
    assert _value(text, 'claw_drift_corrections_total{kind="variables"}') >= 1
    assert _value(text, 'claw_health_probes_total{result="fail"}') >= 1
    metrics.instance_gone("unit-ns", "m3")
    metrics.forget_plan("unit-plan")
    text = metrics.exposition().decode()
    assert "m3" not in text and 'claw_rollout_halted{plan="unit-plan"}' not in text


async def test_probe_server_serves_metrics_healthz_and_readyz() -> None:
    gates = Readiness()
    gates.register("kopf")
    gates.register("caches")
    async with (
        ProbeServer(0, host="127.0.0.1", gates=gates) as server,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client,
    ):
        assert (await client.get("/healthz")).status_code == 200
        not_ready = await client.get("/readyz")
        assert not_ready.status_code == 503 and "caches, kopf" in not_ready.text
        gates.set("kopf")
        assert (await client.get("/readyz")).status_code == 503
        gates.set("caches")
        assert (await client.get("/readyz")).status_code == 200
        page = await client.get("/metrics")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/plain")
        assert "# TYPE claw_instances gauge" in page.text


def test_readiness_without_gates_is_not_ready() -> None:
    assert not Readiness().ready


def test_a_malformed_status_costs_a_metric_not_the_reconcile(caplog: pytest.LogCaptureFixture) -> None:
    metrics.instance_status(_instance(name="m4"), {"phase": "Running", "conditions": "not a list"})
    assert "could not record" in caplog.text
    metrics.instance_gone("unit-ns", "m4")


def test_plan_status_feeds_the_rollout_series() -> None:
    metrics.plan_status("unit-plan-2", {"instances": 3})  # no rollout yet: nothing
    assert 'plan="unit-plan-2"' not in metrics.exposition().decode()
    metrics.plan_status(
        "unit-plan-2",
        {
            "rollout": {"revision": "r1", "phase": "Progressing", "updated": 12, "pending": 30, "failed": 0},
            "conditions": [{"type": "RolloutComplete", "status": "False", "reason": "Progressing"}],
        },
    )
    text = metrics.exposition().decode()
    assert _value(text, 'claw_rollout_instances{plan="unit-plan-2",state="pending"}') == 30
    assert _value(text, 'claw_rollout_halted{plan="unit-plan-2"}') == 0
    metrics.plan_status(
        "unit-plan-2",
        {
            "rollout": {"revision": "r1", "updated": 12, "pending": 29, "failed": 1},
            "conditions": [{"type": "RolloutComplete", "status": "False", "reason": "Halted"}],
        },
    )
    assert _value(metrics.exposition().decode(), 'claw_rollout_halted{plan="unit-plan-2"}') == 1
    metrics.forget_plan("unit-plan-2")


def test_usage_comes_from_the_status() -> None:
    status = {
        "phase": "Running",
        "usage": {"cpu": 0.125, "memoryGB": 0.5, "networkEgressGB": 2, "sampledAt": "t"},
    }
    metrics.instance_status(_instance(name="m5"), status)
    text = metrics.exposition().decode()
    assert _value(text, 'claw_usage_cpu{name="m5",namespace="unit-ns"}') == 0.125
    assert _value(text, 'claw_usage_network_egress_gb{name="m5",namespace="unit-ns"}') == 2
    assert 'claw_usage_estimated_cost_usd{name="m5"' not in text
    metrics.instance_gone("unit-ns", "m5")
