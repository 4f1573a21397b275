"""The Helm chart without Helm (CI's kind job runs `helm lint` and `helm template`):
values.schema.json accepts the default and example values and refuses mistakes, the
CRDs are the generated ones, templates without logic are valid YAML, and the alerts and
the dashboard ask only for series the operator defines."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from claw_operator.support import metrics

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "claw-operator"
SCHEMA = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
EXAMPLES = sorted((CHART / "ci").glob("*.yaml"))
# Templates whose only logic is the name and label includes and the release namespace.
LOGIC_FREE = ["serviceaccount.yaml", "leases-role.yaml", "user-roles.yaml"]


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base.get(key), value) if key in base else value
        return merged
    return override


def _errors(values: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(values)]


def test_schema_is_a_valid_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)


def test_default_values_validate() -> None:
    assert _errors(DEFAULTS) == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_values_validate(path: Path) -> None:
    override = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert _errors(_merge(DEFAULTS, override)) == []


def test_there_are_examples_for_shards_monitoring_and_e2e() -> None:
    assert {p.name for p in EXAMPLES} >= {"sharded-values.yaml", "monitoring-values.yaml", "e2e-values.yaml"}


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"shards": 0}, "shards"),
        ({"replicas": "two"}, "replicas"),
        ({"logFormat": "xml"}, "logFormat"),
        ({"metrics": {"port": 70000}}, "metrics/port"),
        ({"railway": {"tokenSecretNmae": "typo"}}, "railway"),
        ({"watchNamespaces": ["Tenant_A"]}, "watchNamespaces/0"),
        ({"extraEnv": [{"name": "RAILWAY_TOKEN", "value": "in plain text"}]}, "extraEnv/0/name"),
        ({"metrics": {"prometheusRule": {"rateBudgetRatio": 2}}}, "metrics/prometheusRule/rateBudgetRatio"),
        ({"unknownTopLevel": 1}, ""),
    ],
)
def test_schema_refuses_mistakes(override: dict[str, Any], field: str) -> None:
    errors = _errors(_merge(copy.deepcopy(DEFAULTS), override))
    assert errors and any(e.startswith(f"{field}:") for e in errors), errors


@pytest.mark.parametrize("name", ["clawinstances.claw.io.yaml", "clawplans.claw.io.yaml"])
def test_chart_crds_are_identical_to_the_generated_ones(name: str) -> None:
    assert (CHART / "crds" / name).read_bytes() == (ROOT / "crds" / name).read_bytes()


def test_chart_has_no_other_crds() -> None:
    assert {p.name for p in (CHART / "crds").iterdir()} == {
        p.name for p in (ROOT / "crds").glob("*.claw.io.yaml")
    }


def _render_logic_free(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r'\{\{ include "claw-operator\.fullname" \. \}\}', "claw-operator", text)
    text = text.replace("{{ .Release.Namespace }}", "claw-system")
    text = re.sub(r'^\s*\{\{- include "claw-operator\.labels" \. \| nindent \d+ \}\}\n', "", text, flags=re.M)
    assert "{{" not in text, f"{path.name} has logic beyond names and labels"
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.mark.parametrize("name", LOGIC_FREE)
def test_logic_free_templates_are_valid_yaml(name: str) -> None:
    for obj in _render_logic_free(CHART / "templates" / name):
        assert obj["apiVersion"] and obj["kind"] and obj["metadata"]["name"].startswith("claw-operator")
        if obj["kind"] != "ClusterRole":
            assert obj["metadata"]["namespace"] == "claw-system"


def test_lease_role_matches_manifests_default() -> None:
    chart = {o["kind"]: o for o in _render_logic_free(CHART / "templates" / "leases-role.yaml")}
    default = {
        o["kind"]: o
        for o in yaml.safe_load_all(
            (ROOT / "manifests" / "default" / "rbac.yaml").read_text(encoding="utf-8")
        )
        if o["kind"] == "Role"
    }
    assert chart["Role"]["rules"] == default["Role"]["rules"]


def test_user_roles_match_manifests_default() -> None:
    chart = [
        (o["metadata"]["labels"], o["rules"])
        for o in _render_logic_free(CHART / "templates" / "user-roles.yaml")
    ]
    default = [
        (o["metadata"]["labels"], o["rules"])
        for o in yaml.safe_load_all(
            (ROOT / "manifests" / "default" / "user-roles.yaml").read_text(encoding="utf-8")
        )
    ]
    assert [rules for _, rules in chart] == [rules for _, rules in default]
    for (chart_labels, _), (default_labels, _) in zip(chart, default, strict=True):
        aggregation = {k: v for k, v in default_labels.items() if k.startswith("rbac.")}
        assert aggregation.items() <= chart_labels.items()


def _series_in(expr: str) -> set[str]:
    names = set(re.findall(r"\b((?:claw|controller_runtime)_[a-z0-9_]+)", expr))
    return {re.sub(r"_(bucket|count|sum)$", "", n) for n in names}


def _defined_series() -> set[str]:
    names = set()
    for family in metrics.REGISTRY.collect():
        names.add(family.name)
        if family.type == "counter":  # prometheus_client strips _total from the family name
            names.add(family.name + "_total")
    return names


def test_alerts_cover_the_promised_cases_with_defined_series() -> None:
    text = (CHART / "templates" / "prometheusrule.yaml").read_text(encoding="utf-8")
    alerts = re.findall(r"- alert: (\w+)", text)
    assert alerts == [
        "ClawInstancesFailedOrDegraded",
        "ClawRailwayRateBudgetLow",
        "ClawReconcileErrors",
        "ClawRailwayTokenRefused",
        "ClawRolloutHalted",
    ]
    used = set().union(*(_series_in(e) for e in re.findall(r"expr: (.+(?:\n {12}.+)*)", text)))
    assert used and used <= _defined_series(), used - _defined_series()
    assert 'phase=~"Failed|Degraded"' in text and "failedFor" in text


def test_dashboard_uses_defined_series() -> None:
    dashboard = json.loads((CHART / "dashboards" / "claw-operator.json").read_text(encoding="utf-8"))
    titles = " / ".join(p["title"] for p in dashboard["panels"])
    for topic in ("Fleet by phase", "vs budget", "Time to ready", "Deploy durations", "Usage"):
        assert topic in titles
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = set().union(*(_series_in(e) for e in exprs))
    assert used <= _defined_series(), used - _defined_series()


def test_monitoring_templates_are_off_by_default() -> None:
    for name, key in (
        ("servicemonitor.yaml", "serviceMonitor"),
        ("prometheusrule.yaml", "prometheusRule"),
        ("dashboard-configmap.yaml", "dashboard"),
    ):
        first = (CHART / "templates" / name).read_text(encoding="utf-8").splitlines()[0]
        assert first == f"{{{{- if .Values.metrics.{key}.enabled }}}}"
        assert DEFAULTS["metrics"][key]["enabled"] is False


@pytest.mark.parametrize("path", sorted((CHART / "templates").iterdir()), ids=lambda p: p.name)
def test_template_blocks_are_balanced(path: Path) -> None:
    """Every if/with/range/define has its end (helm lint in CI checks the rest)."""
    text = path.read_text(encoding="utf-8")
    actions = re.findall(r"\{\{-?\s*(?:/\*.*?\*/\s*)?(if|with|range|define|end)\b", text, re.S)
    depth = 0
    for action in actions:
        depth += -1 if action == "end" else 1
        assert depth >= 0, f"{path.name}: an end without a block"
    assert depth == 0, f"{path.name}: {depth} block(s) never ended"
    assert "\t" not in text, "YAML does not allow tabs for indentation"
