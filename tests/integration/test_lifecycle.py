"""ClawInstance lifecycle through reconcile()/finalize() against the Railway emulator."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from claw_operator.api.models import EXTERNAL_NAME_ANNOTATION, REDEPLOY_REQUESTED_AT_ANNOTATION
from tests.fixtures.common import CANARY_PREFIX, canary
from tests.fixtures.operator import PLAN_IMAGE, Crash, Harness, instance, plan


def running(status: dict[str, Any]) -> bool:
    return status.get("phase") == "Running"


def service_instance(h: Harness, name: str, namespace: str = "tenant-a") -> Any:
    refs = h.status(name, namespace)["railway"]
    return h.emu.state.instances[(refs["serviceId"], refs["environmentId"])]


def with_channels(h: Harness) -> dict[str, Any]:
    h.secrets[("tenant-a", "feishu")] = {"appId": "cli_app", "secret": canary("feishu")}
    h.secrets[("tenant-a", "llm")] = {"apiKey": canary("llm")}
    return instance(
        "bot",
        owner={"userId": "user_1", "subscriptionId": "sub_1"},
        channels=[{"type": "feishu", "secretRef": {"name": "feishu"}}],
        env=[
            {"name": "CUSTOM_VAR", "value": "x"},
            {"name": "ANTHROPIC_API_KEY", "valueFrom": {"secretKeyRef": {"name": "llm", "key": "apiKey"}}},
        ],
    )


def assert_no_canary(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    for body in h.objects.values():
        assert CANARY_PREFIX not in json.dumps(body.get("status") or {})
    for event in h.events:
        assert CANARY_PREFIX not in event.message
    assert CANARY_PREFIX not in caplog.text


async def test_image_instance_reaches_running_with_expected_variables(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    h = harness
    h.apply(with_channels(h))
    status = await h.until("bot", running)

    assert status["url"].startswith("https://") and status["url"].endswith(".up.railway.app")
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Ready": "True",
        "Synced": "True",
        "Deployed": "True",
        "Healthy": "True",
    }
    assert status["deployment"]["status"] == "SUCCESS" and status["deployment"]["progress"] == 100
    assert status["observedGeneration"] == 1
    [project] = h.projects()
    assert project.name == "claw-tenant-a-bot"
    assert project.description == "claw-operator default/tenant-a/bot"

    si = service_instance(h, "bot")
    assert si.image == PLAN_IMAGE and si.healthcheck_path == "/health"
    v = si.variables
    assert v["FEISHU_APP_ID"] == "cli_app" and v["FEISHU_SECRET"] == canary("feishu")
    assert json.loads(v["FEISHU_CONFIG"]) == {"appId": "cli_app", "secret": canary("feishu")}
    assert v["ANTHROPIC_API_KEY"] == canary("llm") and v["CUSTOM_VAR"] == "x"
    assert v["OPENCLAW_PLAN"] == "PRO" and v["OPENCLAW_USER_ID"] == "user_1"
    assert v["OPENCLAW_SUBSCRIPTION_ID"] == "sub_1" and v["OPENCLAW_INSTANCE_NAME"] == "claw-tenant-a-bot"
    assert v["PLAN_MAX_INSTANCES"] == "5" and v["PLAN_SUPPORT_LEVEL"] == "priority"
    assert v["NODE_ENV"] == "production" and v["LOG_LEVEL"] == "info"
    assert not any(k.startswith("RAILWAY_") for k in v)
    assert_no_canary(h, caplog)


async def test_creation_costs_four_requests_up_to_the_first_deployment(harness: Harness) -> None:
    h = harness
    h.apply(instance("bot"))
    await h.reconcile("bot")
    operations = [r.operation_name for r in h.emu.requests]
    assert operations == ["Projects", "ProjectCreate", "ServiceCreate", "ServiceConfigure"]
    [si] = h.emu.state.instances.values()
    assert si.deployments, "the configure request must trigger the first deployment"


async def test_second_pass_changes_nothing(harness: Harness) -> None:
    h = harness
    h.apply(with_channels(h))
    await h.until("bot", running)
    writes, mutations = h.status_writes, len(h.mutations())
    for _ in range(3):
        await h.reconcile("bot")
    assert h.status_writes == writes, "a steady instance must cause no status writes"
    assert len(h.mutations()) == mutations, "a steady instance must cause no Railway writes"


@pytest.mark.parametrize(
    ("mutate", "reason", "needle"),
    [
        (lambda h, b: b["spec"].update(planRef="gold"), "PlanNotFound", "gold"),
        (lambda h, b: h.secrets.pop(("tenant-a", "feishu")), "SecretNotFound", "tenant-a/feishu"),
        (lambda h, b: h.secrets[("tenant-a", "feishu")].pop("secret"), "SecretKeyMissing", "'secret'"),
        (lambda h, b: h.secrets[("tenant-a", "llm")].update(apiKey=""), "SecretKeyMissing", "'apiKey'"),
        (
            lambda h, b: b["spec"]["env"].append({"name": "OPENCLAW_PLAN", "value": "x"}),
            "InvalidSpec",
            "env[2]",
        ),
        (
            lambda h, b: b["spec"]["env"].append({"name": "FEISHU_SECRET", "value": "x"}),
            "InvalidSpec",
            "channel",
        ),
        (lambda h, b: h.plans["pro"]["limits"].update(maxChannels=0), "InvalidSpec", "spec.channels"),
        (
            lambda h, b: b["spec"].update(
                railway={"mode": "SelfHosted", "tokenSecretRef": {"name": "t", "key": "k"}}
            ),
            "SecretNotFound",
            "tokenSecretRef",
        ),
    ],
)
async def test_validation_failures_touch_nothing_on_railway(
    harness: Harness, mutate: Any, reason: str, needle: str
) -> None:
    h = harness
    body = with_channels(h)
    mutate(h, body)
    h.apply(body)
    await h.reconcile("bot")
    synced = h.condition("bot", "Synced")
    assert synced["status"] == "False" and synced["reason"] == reason
    assert needle in synced["message"]
    assert h.status("bot")["phase"] in {"Pending", "Failed"}
    assert h.condition("bot", "Ready")["reason"] == reason
    assert any(e.type == "Warning" and e.reason == reason for e in h.events)
    assert h.emu.requests == [], "validation failures must not call Railway"


async def test_fixing_the_cause_lets_the_instance_proceed(harness: Harness) -> None:
    h = harness
    body = with_channels(h)
    secret = h.secrets.pop(("tenant-a", "feishu"))
    h.apply(body)
    await h.reconcile("bot")
    assert h.condition("bot", "Synced")["reason"] == "SecretNotFound"
    h.secrets[("tenant-a", "feishu")] = secret
    await h.until("bot", running)


async def test_quota_keeps_places_for_the_oldest(harness: Harness) -> None:
    h = harness
    h.plans["pro"]["limits"]["maxInstances"] = 1
    h.apply(instance("older", created="2026-01-01T00:00:00Z"))
    h.apply(instance("newer", created="2026-01-02T00:00:00Z"))
    await h.reconcile("newer")
    synced = h.condition("newer", "Synced")
    assert synced["reason"] == "QuotaExceeded" and "maxInstances" in synced["message"]
    assert h.emu.requests == []
    await h.until("older", running)
    await h.finalize("older")
    await h.until("newer", running)


async def test_cluster_wide_managed_cap(harness: Harness) -> None:
    h = harness
    h.runtime.settings = h.settings.model_copy(update={"max_managed_instances": 1})
    h.apply(instance("a", created="2026-01-01T00:00:00Z", owner={"subscriptionId": "s1"}))
    h.apply(instance("b", created="2026-01-02T00:00:00Z", owner={"subscriptionId": "s2"}))
    await h.reconcile("b")
    assert h.condition("b", "Synced")["reason"] == "QuotaExceeded"
    assert "CLAW_MAX_MANAGED_INSTANCES" in h.condition("b", "Synced")["message"]


async def test_repo_source(harness: Harness) -> None:
    h = harness
    h.plans["pro"] = plan(source={"repo": {"name": "openclaw/openclaw", "branch": "release"}})
    h.apply(instance("bot"))
    await h.until("bot", running)
    si = service_instance(h, "bot")
    assert si.repo == "openclaw/openclaw" and si.branch == "release"


async def test_template_source_clones_source_settings_and_variables(harness: Harness) -> None:
    h = harness
    rail = h.runtime.handle_for(None).client
    project = await rail.create_project(name="templates", description="t", workspace_id="ws-test")
    env = project.environments[0]
    tpl = await rail.create_service(
        project_id=project.id,
        environment_id=env.id,
        name="tpl",
        variables={"FROM_TEMPLATE": "1", "LOG_LEVEL": "debug"},
    )
    await rail.update_service_instance(
        environment_id=env.id,
        service_id=tpl.id,
        settings={"startCommand": "node bot.js", "source": {"image": "tpl:1"}},
    )
    h.plans["pro"] = plan(
        source={"template": {"projectId": project.id, "environmentId": env.id, "serviceId": tpl.id}}
    )
    h.apply(instance("bot"))
    await h.until("bot", running)
    si = service_instance(h, "bot")
    assert si.image == "tpl:1" and si.start_command == "node bot.js"
    assert si.variables["FROM_TEMPLATE"] == "1"
    assert si.variables["LOG_LEVEL"] == "debug", "template variables win over plan variables"


async def test_spec_change_applies_variables_once_and_deploys(harness: Harness) -> None:
    h = harness
    body = h.apply(with_channels(h))
    await h.until("bot", running)
    first = h.status("bot")["deployment"]["id"]
    body["spec"]["env"][0]["value"] = "y"
    body["metadata"]["generation"] += 1
    before = len(h.mutations())
    status = await h.until("bot", lambda s: running(s) and s["deployment"]["id"] != first)
    assert h.mutations()[before:] == ["VariableCollectionUpsert"]
    assert service_instance(h, "bot").variables["CUSTOM_VAR"] == "y"
    assert status["observedGeneration"] == 2


async def test_secret_rotation_is_applied(harness: Harness) -> None:
    h = harness
    h.apply(with_channels(h))
    await h.until("bot", running)
    h.secrets[("tenant-a", "llm")]["apiKey"] = canary("rotated")
    await h.until(
        "bot", lambda s: service_instance(h, "bot").variables["ANTHROPIC_API_KEY"] == canary("rotated")
    )


async def test_drift_is_restored_with_an_event(harness: Harness) -> None:
    h = harness
    h.apply(with_channels(h))
    await h.until("bot", running)
    service_instance(h, "bot").variables["CUSTOM_VAR"] = "changed-by-hand"
    await h.reconcile("bot")
    assert service_instance(h, "bot").variables["CUSTOM_VAR"] == "x"
    assert any(e.type == "Warning" and "by hand" in e.message for e in h.events)


@pytest.mark.parametrize("policy", ["Delete", "Retain"])
async def test_deletion_policies(harness: Harness, policy: str) -> None:
    h = harness
    h.apply(instance("bot", deletionPolicy=policy))
    await h.until("bot", running)
    await h.finalize("bot")
    assert len(h.projects()) == (0 if policy == "Delete" else 1)


async def test_railway_outage_during_delete_keeps_the_finalizer(harness: Harness) -> None:
    from claw_operator.controller import FinalizeRetry

    h = harness
    h.apply(instance("bot"))
    await h.until("bot", running)
    h.emu.add_fault(kind="http_error", status=503, mode="http")
    with pytest.raises(FinalizeRetry):
        await h.finalize("bot")
    assert len(h.projects()) == 1


@pytest.mark.parametrize("crash_at", [0, 1, 2])
async def test_crash_between_steps_heals_by_adoption(harness: Harness, crash_at: int) -> None:
    """crash_at 0: after the project was created, before status recorded it; 1: after the
    service; 2: after the configure request (the final status write lost)."""
    h = harness
    body = h.apply(instance("bot"))
    if crash_at < 2:
        h.crash_after_persists = crash_at
        with pytest.raises(Crash):
            await h.reconcile("bot")
        h.crash_after_persists = None
    else:
        await h.reconcile("bot")
    body.pop("status", None)  # what a restarted operator may see: nothing recorded
    body["metadata"]["annotations"] = {}
    await h.until("bot", running)
    assert len(h.projects()) == 1
    assert len(h.emu.state.services) == 1
    assert len(service_instance(h, "bot").domains) == 1


async def test_rebuilt_cluster_adopts_by_external_name(harness: Harness) -> None:
    h = harness
    h.apply(instance("bot"))
    await h.until("bot", running)
    project_id = h.status("bot")["railway"]["projectId"]
    assert h.objects[("tenant-a", "bot")]["metadata"]["annotations"][EXTERNAL_NAME_ANNOTATION] == project_id
    # The cluster is rebuilt from Git: the object comes back with its annotation only.
    del h.objects[("tenant-a", "bot")]
    restored = instance("bot")
    restored["metadata"]["annotations"] = {EXTERNAL_NAME_ANNOTATION: project_id}
    restored["metadata"]["creationTimestamp"] = "2027-01-01T00:00:00Z"  # a new object: new variables
    h.apply(restored)
    await h.until("bot", running)
    assert h.status("bot")["railway"]["projectId"] == project_id
    assert len(h.projects()) == 1


async def test_failed_build_reports_redacted_log_tail(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    h.emu.add_fault(kind="fail_build")
    h.emu.add_fault(kind="echo_variables")
    h.apply(with_channels(h))
    status = await h.until("bot", lambda s: s.get("phase") == "Failed")
    deployed = h.condition("bot", "Deployed")
    assert deployed["reason"] == "DeployFailed"
    assert "Last log lines" in deployed["message"] and len(deployed["message"].encode()) < 2600
    # The canary really was in Railway's build log, so keeping it out of status is redaction.
    rail = h.runtime.handle_for(None).client
    build, _ = await rail.deployment_logs(status["deployment"]["id"], limit=500)  # type: ignore[attr-defined]
    assert any(canary("feishu") in line.message for line in build)
    assert status["deployment"]["status"] == "FAILED" and status["deployment"]["progress"] == 0
    assert any(e.type == "Warning" and e.reason == "DeployFailed" for e in h.events)
    assert_no_canary(h, caplog)
    # A fixed cause plus a redeploy request recovers.
    h.emu.clear_faults()
    h.objects[("tenant-a", "bot")]["metadata"]["annotations"][REDEPLOY_REQUESTED_AT_ANNOTATION] = (
        "2026-11-23T00:00:00Z"
    )
    await h.until("bot", running)


async def test_crash_after_start_is_deploy_crashed(harness: Harness) -> None:
    h = harness
    h.emu.add_fault(kind="crash_after_start", seconds=0.05)
    h.apply(instance("bot"))
    await h.until("bot", lambda s: h.condition("bot", "Deployed").get("reason") == "DeployCrashed")
    assert h.status("bot")["phase"] == "Failed"


async def test_stuck_deploy_times_out(harness: Harness) -> None:
    h = harness
    h.emu.add_fault(kind="hang_deploy")
    h.plans["pro"]["deployTimeoutSeconds"] = 60
    h.apply(instance("bot"))
    await h.until("bot", lambda s: s.get("phase") == "Deploying")
    h.shift_clock(120)
    await h.reconcile("bot")
    assert h.condition("bot", "Deployed")["reason"] == "DeployTimeout"
    assert h.status("bot")["phase"] == "Failed"


async def test_suspend_and_resume(harness: Harness) -> None:
    h = harness
    body = h.apply(instance("bot"))
    await h.until("bot", running)
    body["spec"]["suspend"] = True
    await h.until("bot", lambda s: s.get("phase") == "Suspended")
    body["spec"]["suspend"] = False
    await h.until("bot", running)


async def test_auth_failure_is_reported_without_the_token(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    h.emu.add_fault(kind="invalid_token")
    h.apply(instance("bot"))
    await h.reconcile("bot")
    synced = h.condition("bot", "Synced")
    assert synced["reason"] == "RailwayAuthFailed" and "RAILWAY_TOKEN" in synced["message"]
    assert "test-platform-token" not in json.dumps(h.status("bot")) + caplog.text


async def test_missing_platform_token_is_reported_not_raised(harness: Harness) -> None:
    from claw_operator.railway.errors import RailwayAuthError

    h = harness

    def no_token(token: str | None, tier: str = "hobby") -> Any:
        raise RailwayAuthError("RAILWAY_TOKEN is not set; Managed instances need the platform token")

    h.runtime.handle_for = no_token
    h.apply(instance("bot"))
    await h.reconcile("bot")
    synced = h.condition("bot", "Synced")
    assert synced["reason"] == "RailwayAuthFailed" and "RAILWAY_TOKEN" in synced["message"]
    assert h.status("bot")["phase"] == "Pending"
