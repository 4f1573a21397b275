"""Every CEL rule of the CRDs, compiled and evaluated with cel-python on good and bad objects.

The API server evaluates rules after defaulting, on the object as stored, where an absent
optional field is absent (so `has()` is False) and an empty string is present. The rules
must agree with the pydantic validators the operator applies, or the two would let
different objects through.
"""

from __future__ import annotations

import itertools
from typing import Any

import celpy
import pydantic
import pytest

from claw_operator.api.models import EnvVar, PlanSource, RailwaySpec
from tests.unit.test_crds_validator import CelRule, cel_rules, compiled, crd_schema, evaluate

ALL_RULES: list[CelRule] = [
    rule for kind in ("ClawPlan", "ClawInstance") for rule in cel_rules(crd_schema(kind))
]

SOURCE_RULE = next(r.rule for r in ALL_RULES if r.path == "spec.source")
ENV_RULE = next(r.rule for r in ALL_RULES if r.path == "spec.env[]")
RAILWAY_RULE = next(r.rule for r in ALL_RULES if r.path == "spec.railway")

IMAGE = "ghcr.io/openclaw/openclaw:2026.2.1"
REPO = {"name": "openclaw/openclaw", "branch": "main"}
TEMPLATE = {"projectId": "p", "environmentId": "e", "serviceId": "s"}
SECRET_KEY = {"secretKeyRef": {"name": "llm", "key": "apiKey"}}


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.path)
def test_rule_compiles_and_has_a_message(rule: CelRule) -> None:
    compiled(rule.rule)
    assert rule.message, "a rule without a message shows users only the CEL text"


@pytest.mark.parametrize(
    ("source", "ok"),
    [
        ({"image": IMAGE}, True),
        ({"repo": REPO}, True),
        ({"template": TEMPLATE}, True),
        ({}, False),
        ({"image": IMAGE, "repo": REPO}, False),
        ({"image": IMAGE, "template": TEMPLATE}, False),
        ({"repo": REPO, "template": TEMPLATE}, False),
        ({"image": IMAGE, "repo": REPO, "template": TEMPLATE}, False),
        # Present is present, even when empty: has() does not look at the value.
        ({"image": ""}, True),
        ({"repo": {}}, True),
    ],
)
def test_exactly_one_source(source: dict[str, Any], ok: bool) -> None:
    assert evaluate(SOURCE_RULE, source) is ok


@pytest.mark.parametrize(
    ("env", "ok"),
    [
        ({"name": "A", "value": "x"}, True),
        ({"name": "A", "value": ""}, True),  # an empty literal is a value
        ({"name": "A", "valueFrom": SECRET_KEY}, True),
        ({"name": "A"}, False),
        ({"name": "A", "value": "x", "valueFrom": SECRET_KEY}, False),
    ],
)
def test_value_xor_value_from(env: dict[str, Any], ok: bool) -> None:
    assert evaluate(ENV_RULE, env) is ok


@pytest.mark.parametrize(
    ("railway", "ok"),
    [
        ({"mode": "Managed"}, True),
        ({"mode": "Managed", "tokenSecretRef": {"name": "t", "key": "token"}}, True),
        ({"mode": "SelfHosted", "tokenSecretRef": {"name": "t", "key": "token"}}, True),
        ({"mode": "SelfHosted"}, False),
        ({"mode": "SelfHosted", "workspaceId": "ws_1"}, False),
    ],
)
def test_token_required_when_self_hosted(railway: dict[str, Any], ok: bool) -> None:
    assert evaluate(RAILWAY_RULE, railway) is ok


def test_railway_rule_relies_on_the_mode_default() -> None:
    """`self.mode` on an object without mode is an error in CEL; the CRD defaults mode to
    Managed (and railway to {mode: Managed}), so the API server never evaluates the rule
    without it."""
    railway = crd_schema("ClawInstance")["properties"]["spec"]["properties"]["railway"]
    assert railway["default"] == {"mode": "Managed"}
    assert railway["properties"]["mode"]["default"] == "Managed"
    with pytest.raises(celpy.evaluation.CELEvalError, match="mode"):
        evaluate(RAILWAY_RULE, {})


def _accepted(model: type[pydantic.BaseModel], value: dict[str, Any]) -> bool:
    try:
        model.model_validate(value)
    except pydantic.ValidationError:
        return False
    return True


def test_source_rule_agrees_with_the_model() -> None:
    options = {"image": IMAGE, "repo": REPO, "template": TEMPLATE}
    for mask in itertools.product([False, True], repeat=3):
        source = {k: v for (k, v), on in zip(options.items(), mask, strict=True) if on}
        assert evaluate(SOURCE_RULE, source) is _accepted(PlanSource, source), source


def test_env_rule_agrees_with_the_model() -> None:
    for value, value_from in itertools.product([None, "", "x"], [None, SECRET_KEY]):
        env: dict[str, Any] = {"name": "A"}
        if value is not None:
            env["value"] = value
        if value_from is not None:
            env["valueFrom"] = value_from
        assert evaluate(ENV_RULE, env) is _accepted(EnvVar, env), env


def test_railway_rule_agrees_with_the_model() -> None:
    for mode, token in itertools.product(["Managed", "SelfHosted"], [None, {"name": "t", "key": "token"}]):
        railway: dict[str, Any] = {"mode": mode}
        if token is not None:
            railway["tokenSecretRef"] = token
        assert evaluate(RAILWAY_RULE, railway) is _accepted(RailwaySpec, railway), railway


def _defaults_with_rules(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any], str]]:
    found = []
    if "default" in node:
        found += [(path, node["default"], v["rule"]) for v in node.get("x-kubernetes-validations", [])]
    for name, sub in node.get("properties", {}).items():
        found += _defaults_with_rules(sub, f"{path}.{name}" if path else name)
    if "items" in node:
        found += _defaults_with_rules(node["items"], f"{path}[]")
    return found


@pytest.mark.parametrize("kind", ["ClawPlan", "ClawInstance"])
def test_defaults_satisfy_the_rules_as_written(kind: str) -> None:
    """The API server checks each default against the CEL rules of its node when the CRD is
    created, without applying nested defaults first; a failing (or erroring) rule there
    would make it refuse the whole CRD."""
    for path, default, rule in _defaults_with_rules(crd_schema(kind)):
        assert evaluate(rule, default), f"{path}: default {default} breaks {rule}"
