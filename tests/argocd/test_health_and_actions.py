"""The Argo CD health checks and actions, run with a real Lua against their testdata and
the expectations in health_test.yaml and action_test.yaml (Argo CD's own format)."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.argocd.lua import CUSTOMIZATIONS, health, run

KINDS = ["ClawInstance", "ClawPlan"]
HEALTH_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
# Actions stamp the current time; Argo CD's tests compare against this placeholder.
PLACEHOLDER_TIME = "0001-01-01T00:00:00Z"
TIME_ANNOTATIONS = {"claw.io/restartedAt", "claw.io/redeployRequestedAt", "claw.io/rolloutResumedAt"}


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _health_cases() -> list[tuple[str, str, dict[str, str]]]:
    cases = []
    for kind in KINDS:
        for test in _load(CUSTOMIZATIONS / kind / "health_test.yaml")["tests"]:
            cases.append((kind, test["inputPath"], test["healthStatus"]))
    return cases


def _action_cases(section: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (kind, t)
        for kind in KINDS
        for t in _load(CUSTOMIZATIONS / kind / "actions" / "action_test.yaml")[section]
    ]


@pytest.mark.parametrize(
    ("kind", "path", "expected"), _health_cases(), ids=lambda v: str(v) if isinstance(v, str) else ""
)
def test_health_matches_health_test_yaml(kind: str, path: str, expected: dict[str, str]) -> None:
    obj = _load(CUSTOMIZATIONS / kind / path)
    assert health(kind, obj) == {"status": expected["status"], "message": expected.get("message", "")}


@pytest.mark.parametrize("kind", KINDS)
def test_every_testdata_file_has_an_expectation(kind: str) -> None:
    listed = {t["inputPath"] for t in _load(CUSTOMIZATIONS / kind / "health_test.yaml")["tests"]}
    on_disk = {f"testdata/{p.name}" for p in (CUSTOMIZATIONS / kind / "testdata").glob("*.yaml")}
    assert listed == on_disk
    statuses = {
        t["healthStatus"]["status"] for t in _load(CUSTOMIZATIONS / kind / "health_test.yaml")["tests"]
    }
    assert statuses <= HEALTH_STATUSES
    assert {"Healthy", "Progressing", "Degraded", "Suspended"} <= statuses


def test_every_instance_phase_is_covered() -> None:
    phases = {
        (_load(CUSTOMIZATIONS / "ClawInstance" / path).get("status") or {}).get("phase")
        for _, path, _ in [c for c in _health_cases() if c[0] == "ClawInstance"]
    }
    assert {
        "Pending",
        "Provisioning",
        "Deploying",
        "Running",
        "Degraded",
        "Failed",
        "Suspended",
        "Deleting",
    } <= phases


@pytest.mark.parametrize(
    ("kind", "test"), _action_cases("discoveryTests"), ids=lambda v: v if isinstance(v, str) else ""
)
def test_discovery(kind: str, test: dict[str, Any]) -> None:
    obj = _load(CUSTOMIZATIONS / kind / "actions" / test["inputPath"])
    found = run(CUSTOMIZATIONS / kind / "actions" / "discovery.lua", obj)
    expected = {a["name"]: {k: v for k, v in a.items() if k != "name"} for a in test["result"]}
    assert found == expected
    for name in found:
        assert (CUSTOMIZATIONS / kind / "actions" / name / "action.lua").is_file(), name


def _normalise_times(obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    for key in TIME_ANNOTATIONS & annotations.keys():
        value = annotations[key]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", value), value
        stamped = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert abs(datetime.now(UTC) - stamped) < timedelta(hours=1), "the action stamps the current UTC time"
        annotations[key] = PLACEHOLDER_TIME
    return obj


@pytest.mark.parametrize(
    ("kind", "test"), _action_cases("actionTests"), ids=lambda v: v if isinstance(v, str) else ""
)
def test_action(kind: str, test: dict[str, Any]) -> None:
    actions = CUSTOMIZATIONS / kind / "actions"
    obj = _load(actions / test["inputPath"])
    result = run(actions / test["action"] / "action.lua", copy.deepcopy(obj))
    assert _normalise_times(result) == _load(actions / test["expectedOutputPath"])


@pytest.mark.parametrize("kind", KINDS)
def test_every_action_is_tested(kind: str) -> None:
    actions = CUSTOMIZATIONS / kind / "actions"
    on_disk = {p.parent.name for p in actions.glob("*/action.lua")}
    tested = {t["action"] for t in _load(actions / "action_test.yaml")["actionTests"]}
    assert on_disk == tested


def test_instance_actions_are_the_plugin_verbs() -> None:
    on_disk = {p.parent.name for p in (CUSTOMIZATIONS / "ClawInstance" / "actions").glob("*/action.lua")}
    assert on_disk == {"restart", "redeploy", "suspend", "resume", "pause", "unpause"}
