"""The API server's admission of custom resources, in-process: the Kubernetes emulator's
(claw_emulators.kubernetes_validation), applied to the CRDs generated from the models.

Order as in kube-apiserver: explicit nulls of non-nullable fields are dropped, unknown fields
are pruned (kubectl's strict field validation makes them errors), defaults are applied, then
the object is checked against the structural schema, list-map keys must be unique, and every
CEL rule (`x-kubernetes-validations`) must hold. Error strings start with the field path, as
the API server's do (`spec.source: Invalid value: ...`).

Other CRD tests import `admit`, `cel_rules` and `to_json_schema`; the tests at the bottom
check the checker.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from claw_emulators import kubernetes_errors, kubernetes_validation
from claw_emulators.kubernetes_cel import CelRule, cel_rules, compiled, evaluate
from claw_emulators.kubernetes_validation import apply_defaults
from claw_operator.api import crdgen

Schema = dict[str, Any]

__all__ = ["CelRule", "Schema", "admit", "apply_defaults", "cel_rules", "compiled", "crd_schema", "evaluate"]


def crd_schema(kind: str) -> Schema:
    for crd in crdgen.crds().values():
        if crd["spec"]["names"]["kind"] == kind:
            schema: Schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            return schema
    raise KeyError(kind)


def to_json_schema(node: Schema) -> Schema:
    """Translate a structural OpenAPI v3 schema into JSON Schema 2020-12 for `jsonschema`."""
    out: Schema = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in {"exclusiveMinimum", "exclusiveMaximum"}:
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in {"items", "additionalProperties"} and isinstance(value, dict):
            out[key] = to_json_schema(value)
        else:
            out[key] = value
    for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if node.get(exclusive) is True:
            out[exclusive] = out.pop(bound)
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False  # kubectl's default --validate=strict
    return out


def admit(obj: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The object as the API server would store it, and the errors that would reject it
    (with kubectl's `fieldValidation=Strict`, unknown fields first)."""
    admission = kubernetes_validation.admit(crd_schema(obj["kind"]), obj)
    errors = [f'{path}: strict decoding error: unknown field "{path}"' for path in admission.unknown_fields]
    # The API server's note that CEL rules were skipped names no field: not a reason here.
    errors += [str(e) for e in admission.errors if e.field != kubernetes_errors.NIL_PATH]
    return admission.obj, errors


# ---------------------------------------------------------------- the checker itself


def _instance(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "claw.io/v1alpha1",
        "kind": "ClawInstance",
        "metadata": {"name": "x", "namespace": "tenant-a"},
        "spec": {"planRef": "pro", **spec},
    }


def test_defaults_fill_nested_objects() -> None:
    stored, errors = admit(_instance())
    assert errors == []
    assert stored["spec"]["railway"] == {"mode": "Managed"}
    assert stored["spec"]["suspend"] is False
    assert stored["spec"]["deletionPolicy"] == "Delete"


def test_plan_defaults_match_the_model_defaults() -> None:
    from claw_operator.api.models import ClawPlanSpec

    plan = {"apiVersion": "claw.io/v1alpha1", "kind": "ClawPlan", "metadata": {"name": "p"}}
    stored, errors = admit({**plan, "spec": {"source": {"image": "nginx"}}})
    assert errors == []
    # What the API server stores is what the operator would assume for absent fields.
    model = ClawPlanSpec.model_validate(stored["spec"]).model_dump(exclude_none=True)
    assert stored["spec"] == {k: v for k, v in model.items() if v not in ({}, [])}


def test_explicit_nulls_are_dropped_before_validation() -> None:
    stored, errors = admit(_instance(owner=None, railway={"mode": "Managed", "tokenSecretRef": None}))
    assert errors == []
    assert "owner" not in stored["spec"]
    assert "tokenSecretRef" not in stored["spec"]["railway"]


def test_unknown_fields_are_named() -> None:
    _, errors = admit(_instance(railway={"mode": "Managed", "tokn": "x"}))
    assert errors and errors[0].startswith("spec.railway.tokn:")


def test_missing_required_field_is_named() -> None:
    obj = _instance()
    del obj["spec"]["planRef"]
    _, errors = admit(obj)
    assert [e.split(":")[0] for e in errors] == ["spec.planRef"]


def test_duplicate_list_map_keys_are_rejected() -> None:
    channel = {"type": "feishu", "secretRef": {"name": "a"}}
    _, errors = admit(_instance(channels=[channel, channel]))
    # The API server names the second item and shows the key as Go prints a map.
    assert errors == ['spec.channels[1]: Duplicate value: map[string]interface {}{"type":"feishu"}']


@pytest.mark.parametrize(
    ("schema", "value", "ok"),
    [
        ({"type": "number", "minimum": 0, "exclusiveMinimum": True}, 0, False),
        ({"type": "number", "minimum": 0, "exclusiveMinimum": True}, 0.5, True),
        ({"type": "number", "maximum": 1, "exclusiveMaximum": True}, 1, False),
    ],
)
def test_exclusive_bounds_translate(schema: Schema, value: float, ok: bool) -> None:
    assert jsonschema.Draft202012Validator(to_json_schema(schema)).is_valid(value) is ok
