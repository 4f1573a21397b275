"""The emulator admits custom resources as kube-apiserver does: every bad field named in a
422 `Invalid` Status, unknown fields pruned (or refused with fieldValidation=Strict),
defaults applied, CEL rules evaluated, the status subresource checked against its schema."""

from __future__ import annotations

from typing import Any

import pytest

from claw_emulators import kubernetes_errors as errors
from claw_emulators import kubernetes_validation as validation
from claw_emulators.kubernetes import KubeAPIError, KubernetesServer
from tests.emulators.k8s_http import CLAWS, JSON_PATCH, MERGE, call, claw

SECRET_KEY = {"secretKeyRef": {"name": "llm", "key": "apiKey"}}


async def test_every_bad_field_is_named_in_an_invalid_status(k8s: KubernetesServer) -> None:
    body = claw(
        "x",
        channels=[{"type": "slack", "secretRef": {"name": "creds"}}],
        env=[{"name": "1BAD", "value": "v"}],
        deletionPolicy="Orphan",
    )
    status, answer, _ = await call(k8s, "POST", CLAWS, body)
    assert status == 422
    assert answer["kind"] == "Status" and answer["status"] == "Failure" and answer["reason"] == "Invalid"
    assert answer["code"] == 422
    details = answer["details"]
    assert (details["name"], details["group"], details["kind"]) == ("x", "claw.io", "ClawInstance")
    causes = {c["field"]: c for c in details["causes"]}
    assert causes["spec.channels[0].type"] == {
        "reason": "FieldValueNotSupported",
        "message": 'Unsupported value: "slack": supported values: "feishu", "dingtalk", "wecom", "telegram"',
        "field": "spec.channels[0].type",
    }
    assert causes["spec.env[0].name"]["reason"] == "FieldValueInvalid"
    assert causes["spec.env[0].name"]["message"] == (
        "Invalid value: \"1BAD\": spec.env[0].name in body should match '^[A-Za-z_][A-Za-z0-9_]*$'"
    )
    assert causes["spec.deletionPolicy"]["reason"] == "FieldValueNotSupported"
    assert answer["message"].startswith('ClawInstance.claw.io "x" is invalid: [spec.channels[0].type: ')
    assert k8s.get("claw", "tenant-a", "x") is None


async def test_cel_rules_run_once_the_schema_holds(k8s: KubernetesServer) -> None:
    both = {"name": "BOTH", "value": "x", "valueFrom": SECRET_KEY}
    status, answer, _ = await call(k8s, "POST", CLAWS, claw("x", env=[both], railway={"mode": "SelfHosted"}))
    assert status == 422
    assert [(c["field"], c["message"]) for c in answer["details"]["causes"]] == [
        ("spec.env[0]", 'Invalid value: "object": set exactly one of value or valueFrom'),
        (
            "spec.railway",
            'Invalid value: "object": railway.tokenSecretRef is required when railway.mode is SelfHosted',
        ),
    ]
    # As the API server: an enum (or type, required, size) error means the rules are skipped.
    bad_enum = claw("x", env=[both], railway={"mode": "SelfHosted"}, deletionPolicy="Orphan")
    _, answer, _ = await call(k8s, "POST", CLAWS, bad_enum)
    fields = [c["field"] for c in answer["details"]["causes"]]
    assert fields == ["spec.deletionPolicy", "<nil>"]
    assert "some validation rules were not checked" in answer["details"]["causes"][1]["message"]


async def test_required_type_length_and_duplicates(k8s: KubernetesServer) -> None:
    body = claw("x", suspend="yes", owner={"userId": "u" * 129})
    del body["spec"]["planRef"]
    body["spec"]["channels"] = [
        {"type": "feishu", "secretRef": {"name": "a"}},
        {"type": "feishu", "secretRef": {"name": "b"}},
    ]
    _, answer, _ = await call(k8s, "POST", CLAWS, body)
    causes = {c["field"]: (c["reason"], c["message"]) for c in answer["details"]["causes"]}
    assert causes["spec.planRef"] == ("FieldValueRequired", "Required value")
    assert causes["spec.suspend"] == (
        "FieldValueTypeInvalid",
        'Invalid value: "string": spec.suspend in body must be of type boolean: "string"',
    )
    assert causes["spec.owner.userId"] == ("FieldValueTooLong", "Too long: may not be more than 128 bytes")
    assert causes["spec.channels[1]"] == (
        "FieldValueDuplicate",
        'Duplicate value: map[string]interface {}{"type":"feishu"}',
    )


async def test_defaults_are_applied_and_unknown_fields_pruned_with_a_warning(k8s: KubernetesServer) -> None:
    status, created, headers = await call(k8s, "POST", CLAWS, claw(ownr={"userId": "u"}))
    assert status == 201
    spec = created["spec"]
    assert "ownr" not in spec
    assert (spec["railway"], spec["suspend"], spec["deletionPolicy"]) == (
        {"mode": "Managed"},
        False,
        "Delete",
    )
    assert headers["Warning"] == ['299 - "unknown field \\"spec.ownr\\""']


async def test_strict_field_validation_refuses_unknown_fields(k8s: KubernetesServer) -> None:
    strict = {"fieldValidation": "Strict"}
    status, answer, _ = await call(k8s, "POST", CLAWS, claw(ownr={"userId": "u"}), params=strict)
    assert status == 400 and answer["reason"] == "BadRequest"
    assert answer["message"] == (
        'ClawInstance in version "v1alpha1" cannot be handled as a ClawInstance: '
        'strict decoding error: unknown field "spec.ownr"'
    )
    k8s.create("claw", claw(), namespace="tenant-a")
    patch = {"spec": {"railway": {"tokn": "x"}}}
    status, answer, _ = await call(k8s, "PATCH", f"{CLAWS}/bot", patch, headers=MERGE, params=strict)
    assert status == 422 and answer["details"]["causes"][0]["field"] == "patch"
    assert 'unknown field \\"spec.railway.tokn\\"' in answer["message"] or (
        'unknown field "spec.railway.tokn"' in answer["message"]
    )
    status, _, _ = await call(k8s, "POST", CLAWS, claw("y"), params={"fieldValidation": "Sloppy"})
    assert status == 400


async def test_updates_and_patches_are_validated(k8s: KubernetesServer) -> None:
    k8s.create("claw", claw(), namespace="tenant-a")
    status, answer, _ = await call(
        k8s, "PATCH", f"{CLAWS}/bot", {"spec": {"railway": {"mode": "Shared"}}}, headers=MERGE
    )
    assert status == 422 and answer["details"]["causes"][0]["field"] == "spec.railway.mode"
    ops = [{"op": "add", "path": "/spec/env", "value": [{"name": "A"}]}]
    status, answer, _ = await call(k8s, "PATCH", f"{CLAWS}/bot", ops, headers=JSON_PATCH)
    assert status == 422 and answer["details"]["causes"][0]["field"] == "spec.env[0]"
    status, answer, _ = await call(k8s, "PUT", f"{CLAWS}/bot", claw(planRef="Not A Name"))
    assert status == 422 and answer["details"]["causes"][0]["field"] == "spec.planRef"
    strategic = {"Content-Type": "application/strategic-merge-patch+json"}
    status, _, _ = await call(k8s, "PATCH", f"{CLAWS}/bot", {"spec": {"suspend": 1}}, headers=strategic)
    assert status == 422
    assert k8s.get("claw", "tenant-a", "bot")["spec"]["railway"] == {"mode": "Managed"}  # type: ignore[index]
    assert k8s.count_writes() == 0, "refused writes are not writes"


async def test_status_writes_check_the_status_schema_only(k8s: KubernetesServer) -> None:
    k8s.create("claw", claw(), namespace="tenant-a")
    bad = {"status": {"phase": "Exploded", "deployment": {"progress": 101}, "extra": 1}}
    status, answer, _ = await call(k8s, "PATCH", f"{CLAWS}/bot/status", bad, headers=MERGE)
    assert status == 422
    causes = {c["field"]: c["message"] for c in answer["details"]["causes"]}
    assert set(causes) == {"status.phase", "status.deployment.progress", "<nil>"}  # "<nil>": rules skipped
    assert causes["status.deployment.progress"] == (
        "Invalid value: 101: status.deployment.progress in body should be less than or equal to 100"
    )
    good = {"status": {"phase": "Running", "extra": 1}}
    status, obj, _ = await call(k8s, "PATCH", f"{CLAWS}/bot/status", good, headers=MERGE)
    assert status == 200 and obj["status"] == {"phase": "Running"}, "unknown status fields are pruned"


async def test_metadata_name_must_be_a_dns_subdomain(k8s: KubernetesServer) -> None:
    status, answer, _ = await call(k8s, "POST", CLAWS, claw("Bad_Name"))
    assert status == 422
    cause = answer["details"]["causes"][0]
    assert cause["field"] == "metadata.name" and "RFC 1123 subdomain" in cause["message"]
    status, _, _ = await call(k8s, "POST", "/api/v1/namespaces", {"metadata": {"name": "has.dot"}})
    assert status == 422, "namespace names are DNS labels"


async def test_helpers_go_through_the_same_admission(k8s: KubernetesServer) -> None:
    with pytest.raises(KubeAPIError) as raised:
        k8s.create("claw", claw(channels=[{"type": "slack", "secretRef": {"name": "a"}}]), "tenant-a")
    assert raised.value.code == 422
    assert [c["field"] for c in raised.value.causes] == ["spec.channels[0].type", "<nil>"]


WIDGET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "replicas": {"type": "integer", "minimum": 1, "maximum": 5, "exclusiveMaximum": True},
                "ratio": {"type": "number", "multipleOf": 0.5},
                "tags": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 2,
                    "items": {"type": "string"},
                    "x-kubernetes-list-type": "set",
                },
                "port": {"x-kubernetes-int-or-string": True},
                "note": {"type": "string", "nullable": True},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "labels": {"type": "object", "additionalProperties": {"type": "string", "minLength": 2}},
                "size": {
                    "type": "integer",
                    "x-kubernetes-validations": [
                        {"rule": "self >= oldSelf", "message": "size may only grow"},
                    ],
                },
                "pair": {
                    "type": "object",
                    "properties": {"low": {"type": "integer"}, "high": {"type": "integer"}},
                    "x-kubernetes-validations": [
                        {
                            "rule": "self.low <= self.high",
                            "messageExpression": "'low ' + string(self.low) + ' exceeds high'",
                            "fieldPath": ".low",
                            "reason": "FieldValueForbidden",
                        }
                    ],
                },
            },
        }
    },
}


def test_generic_schema_rules() -> None:
    def fields(spec: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, str]:
        admission = validation.admit(WIDGET_SCHEMA, {"spec": spec}, old={"spec": old} if old else None)
        return {e.field: str(e) for e in admission.errors}

    assert fields({"replicas": 3, "ratio": 1.5, "tags": ["a"], "port": "http", "note": None}) == {}
    found = fields({"replicas": 5, "ratio": 0.3, "tags": ["a", "a", "b"], "port": [], "labels": {"k": "v"}})
    assert found["spec.replicas"].endswith("spec.replicas in body should be less than 5")
    assert found["spec.ratio"].endswith("should be a multiple of 0.5")
    assert found["spec.tags"] == "spec.tags: Too many: 3: must have at most 2 items"
    assert found["spec.tags[1]"] == 'spec.tags[1]: Duplicate value: "a"'
    assert found["spec.port"].startswith('spec.port: Invalid value: "array"')
    assert found["spec.labels.k"].endswith("spec.labels.k in body should be at least 2 chars long")
    assert fields({"tags": []})["spec.tags"].endswith("should have at least 1 items")
    assert fields({"replicas": 0})["spec.replicas"].endswith("should be greater than or equal to 1")
    assert fields({"pair": {"low": 3, "high": 1}}) == {
        "spec.pair.low": "spec.pair.low: Forbidden: low 3 exceeds high"
    }
    # A transition rule runs only on updates, against the old value.
    assert fields({"size": 1}) == {}
    assert fields({"size": 1}, old={"size": 2}) == {
        "spec.size": 'spec.size: Invalid value: "integer": size may only grow'
    }
    kept = validation.admit(WIDGET_SCHEMA, {"spec": {"free": {"any": {"thing": 1}}, "gone": 1}})
    assert kept.obj["spec"] == {"free": {"any": {"thing": 1}}} and kept.unknown_fields == ["spec.gone"]


def test_field_error_wording() -> None:
    assert str(errors.required("spec.x")) == "spec.x: Required value"
    assert str(errors.not_supported("a", 3, [1, 2])) == 'a: Unsupported value: 3: supported values: "1", "2"'
    assert str(errors.too_long("a", "abc", 1)) == "a: Too long: may not be more than 1 byte"
    status = errors.invalid_status("Secret", "", "s", [errors.required("data")])
    assert status["message"] == 'Secret "s" is invalid: data: Required value'
