"""manifests/samples/: what a newcomer applies first must be accepted by the API server and
by the operator, and every reference in it must resolve. Bad variants of it must be
rejected with a message that names the field."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from claw_operator.api.models import ChannelType, ClawInstanceSpec, ClawPlanSpec
from tests.unit.test_crds_validator import admit

SAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "samples"
# API.md, "Channel Secret keys".
CHANNEL_KEYS = {
    "feishu": {"appId", "secret"},
    "dingtalk": {"appKey", "appSecret"},
    "wecom": {"corpId", "secret"},
    "telegram": {"token", "botId"},
}
Obj = dict[str, Any]


def _load() -> list[Obj]:
    docs: list[Obj] = []
    for path in sorted(SAMPLES.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return docs


DOCS = _load()


def _of(kind: str) -> list[Obj]:
    return [d for d in DOCS if d["kind"] == kind]


def _id(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata'].get('namespace', '-')}/{obj['metadata']['name']}"


def test_files_are_ordered_for_kubectl_apply() -> None:
    names = [p.name for p in sorted(SAMPLES.glob("*.yaml"))]
    assert names == ["00-namespace.yaml", "10-plans.yaml", "20-secrets.yaml", "30-instances.yaml"]
    order = ["Namespace", "ClawPlan", "Secret", "ClawInstance"]
    kinds = [d["kind"] for d in DOCS]
    assert kinds == sorted(kinds, key=order.index), "namespaces first, instances last"


def test_the_samples_cover_what_the_brief_promises() -> None:
    assert {p["metadata"]["name"] for p in _of("ClawPlan")} == {"starter", "pro"}
    instances = {i["metadata"]["name"]: i for i in _of("ClawInstance")}
    assert set(instances) == {"my-chatbot", "support-bot"}
    chatbot = instances["my-chatbot"]["spec"]
    assert chatbot["planRef"] == "pro"
    assert {c["type"] for c in chatbot["channels"]} == {"feishu", "telegram"}
    assert any("valueFrom" in e for e in chatbot["env"])
    assert instances["support-bot"]["spec"]["planRef"] == "starter"
    assert instances["support-bot"]["spec"]["owner"]


@pytest.mark.parametrize("obj", _of("ClawPlan") + _of("ClawInstance"), ids=_id)
def test_sample_is_admitted_and_parses(obj: Obj) -> None:
    stored, errors = admit(obj)
    assert errors == []
    parse = ClawPlanSpec if obj["kind"] == "ClawPlan" else ClawInstanceSpec
    parse.model_validate(stored["spec"])
    assert obj["apiVersion"] == "claw.io/v1alpha1"
    assert ("namespace" in obj["metadata"]) is (obj["kind"] == "ClawInstance")


def _secret(namespace: str, name: str) -> Obj:
    for secret in _of("Secret"):
        if (secret["metadata"]["namespace"], secret["metadata"]["name"]) == (namespace, name):
            return secret
    raise AssertionError(f"no sample Secret {namespace}/{name}")


@pytest.mark.parametrize("obj", _of("ClawInstance"), ids=_id)
def test_references_resolve(obj: Obj) -> None:
    namespace = obj["metadata"]["namespace"]
    spec = ClawInstanceSpec.model_validate(obj["spec"])
    assert namespace in {n["metadata"]["name"] for n in _of("Namespace")}
    plans = {p["metadata"]["name"]: ClawPlanSpec.model_validate(p["spec"]) for p in _of("ClawPlan")}
    assert spec.planRef in plans
    assert len(spec.channels) <= plans[spec.planRef].limits.maxChannels
    for channel in spec.channels:
        secret = _secret(namespace, channel.secretRef.name)
        data = secret.get("stringData", {})
        assert set(data) == CHANNEL_KEYS[ChannelType(channel.type).value], "API.md's Secret key table"
        assert all(data.values()), "an empty key is a validation error"
    for env in spec.env:
        if env.valueFrom is not None:
            ref = env.valueFrom.secretKeyRef
            assert _secret(namespace, ref.name).get("stringData", {}).get(ref.key)
        assert not env.name.startswith(("OPENCLAW_", "PLAN_")), "reserved names"


def test_sample_credentials_are_obviously_fake() -> None:
    for secret in _of("Secret"):
        for key, value in secret["stringData"].items():
            assert "FAKE" in value or set(value) == {"0"}, f"{secret['metadata']['name']}.{key}"


def test_plan_quota_fits_the_samples() -> None:
    """The instances on each plan, counted as the operator does (per subscription), fit."""
    plans = {p["metadata"]["name"]: ClawPlanSpec.model_validate(p["spec"]) for p in _of("ClawPlan")}
    per_subscription: dict[str, int] = {}
    for obj in _of("ClawInstance"):
        spec = ClawInstanceSpec.model_validate(obj["spec"])
        assert spec.owner and spec.owner.subscriptionId
        per_subscription[spec.owner.subscriptionId] = per_subscription.get(spec.owner.subscriptionId, 0) + 1
        assert per_subscription[spec.owner.subscriptionId] <= plans[spec.planRef].limits.maxInstances


# ---------------------------------------------------------------- bad variants


def _sample(name: str) -> Obj:
    return copy.deepcopy(
        next(d for d in DOCS if d["metadata"]["name"] == name and d["kind"].startswith("Claw"))
    )


Mutation = Callable[[Obj], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(obj: Obj) -> None:
        *parents, last = path.split(".")
        node = obj
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(obj: Obj) -> None:
        *parents, last = path.split(".")
        node = obj
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]

    return mutate


BAD: list[tuple[str, str, Mutation, str]] = [
    # (sample, what is wrong, mutation, the field path the error must start with)
    ("pro", "two sources", _set("spec.source.repo", {"name": "openclaw/openclaw"}), "spec.source"),
    ("pro", "no source", _set("spec.source", {}), "spec.source"),
    ("pro", "source missing", _delete("spec.source"), "spec.source"),
    (
        "pro",
        "template without ids",
        _set("spec.source", {"template": {"projectId": "p"}}),
        "spec.source.template.environmentId",
    ),
    ("pro", "bad repo name", _set("spec.source", {"repo": {"name": "no-slash"}}), "spec.source.repo.name"),
    ("pro", "zero replicas", _set("spec.replicas", 0), "spec.replicas"),
    ("pro", "zero vCPUs", _set("spec.resources.vCPUs", 0), "spec.resources.vCPUs"),
    ("pro", "relative health path", _set("spec.healthCheck.path", "health"), "spec.healthCheck.path"),
    ("pro", "short deploy timeout", _set("spec.deployTimeoutSeconds", 5), "spec.deployTimeoutSeconds"),
    ("pro", "non-string variable", _set("spec.variables.LOG_LEVEL", 3), "spec.variables.LOG_LEVEL"),
    ("pro", "unknown field", _set("spec.limits.maxInstance", 3), "spec.limits.maxInstance"),
    ("pro", "no spec", _delete("spec"), "spec"),
    ("my-chatbot", "no planRef", _delete("spec.planRef"), "spec.planRef"),
    ("my-chatbot", "planRef not a name", _set("spec.planRef", "Pro Plan"), "spec.planRef"),
    ("my-chatbot", "unknown channel", _set("spec.channels.0.type", "slack"), "spec.channels[0].type"),
    (
        "my-chatbot",
        "channel without secret",
        _delete("spec.channels.0.secretRef"),
        "spec.channels[0].secretRef",
    ),
    (
        "my-chatbot",
        "duplicate channel",
        _set("spec.channels.1", {"type": "feishu", "secretRef": {"name": "x"}}),
        "spec.channels[1]",
    ),
    ("my-chatbot", "env value and valueFrom", _set("spec.env.1.value", "literal"), "spec.env[1]"),
    ("my-chatbot", "env without value", _delete("spec.env.0.value"), "spec.env[0]"),
    ("my-chatbot", "env name with a dash", _set("spec.env.0.name", "MY-VAR"), "spec.env[0].name"),
    ("my-chatbot", "SelfHosted without token", _set("spec.railway", {"mode": "SelfHosted"}), "spec.railway"),
    ("my-chatbot", "unknown mode", _set("spec.railway.mode", "Shared"), "spec.railway.mode"),
    ("my-chatbot", "unknown deletion policy", _set("spec.deletionPolicy", "Orphan"), "spec.deletionPolicy"),
    ("my-chatbot", "suspend as a string", _set("spec.suspend", "yes"), "spec.suspend"),
    ("my-chatbot", "typo in a field", _set("spec.ownr", {"userId": "u"}), "spec.ownr"),
]


@pytest.mark.parametrize(
    ("sample", "mutation", "field"), [b[0:1] + b[2:] for b in BAD], ids=[b[1] for b in BAD]
)
def test_bad_variant_is_rejected_naming_the_field(sample: str, mutation: Mutation, field: str) -> None:
    obj = _sample(sample)
    mutation(obj)
    _, errors = admit(obj)
    assert errors, "the API server would have accepted this"
    assert any(e.split(":")[0] == field for e in errors), errors


# Not for the models: without a spec there is nothing to parse, and pydantic's lax mode
# reads "yes" as true (harmless: the API server never stores a string there).
NOT_FOR_MODELS = {"no spec", "suspend as a string"}


@pytest.mark.parametrize(
    ("sample", "mutation"),
    [(b[0], b[2]) for b in BAD if b[1] not in NOT_FOR_MODELS],
    ids=[b[1] for b in BAD if b[1] not in NOT_FOR_MODELS],
)
def test_the_operator_rejects_them_too(sample: str, mutation: Mutation) -> None:
    """Defence in depth: the models refuse what the CRD refuses, so an object that slipped
    past admission (an older CRD, a bypassed webhook) still becomes InvalidSpec."""
    obj = _sample(sample)
    mutation(obj)
    parse = ClawPlanSpec if obj["kind"] == "ClawPlan" else ClawInstanceSpec
    with pytest.raises(ValueError):
        parse.model_validate(obj["spec"])
