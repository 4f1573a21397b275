"""An admission check that does what the API server does with a custom resource, in-process.

Order as in kube-apiserver: explicit nulls of non-nullable fields are dropped, defaults are
applied, then the object is checked against the structural schema (with kubectl's strict
field validation, so unknown fields are errors), list-map keys must be unique, and every
CEL rule (`x-kubernetes-validations`) must hold. Error strings start with the field path,
as the API server's do (`spec.source: Invalid value: ...`).

Other CRD tests import `admit` and `cel_rules`; the tests at the bottom check the checker.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import celpy
import jsonschema
import pytest

from claw_operator.api import crdgen

Schema = dict[str, Any]


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


def _drop_nulls(node: Schema, value: Any) -> Any:
    if isinstance(value, dict):
        props = node.get("properties", {})
        extra = node.get("additionalProperties")
        kept = {}
        for key, item in value.items():
            sub = props.get(key, extra if isinstance(extra, dict) else {})
            if item is None and not sub.get("nullable"):
                continue
            kept[key] = _drop_nulls(sub, item)
        return kept
    if isinstance(value, list):
        return [_drop_nulls(node.get("items", {}), item) for item in value]
    return value


def apply_defaults(node: Schema, value: Any) -> Any:
    """Structural defaulting: absent fields get their default, then nested defaults apply."""
    if isinstance(value, dict) and "properties" in node:
        for name, sub in node["properties"].items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = apply_defaults(sub, value[name])
    elif isinstance(value, dict) and isinstance(node.get("additionalProperties"), dict):
        for key in value:
            value[key] = apply_defaults(node["additionalProperties"], value[key])
    elif isinstance(value, list) and "items" in node:
        value = [apply_defaults(node["items"], item) for item in value]
    return value


@dataclass(frozen=True)
class CelRule:
    path: str  # dotted path of the schema node, `[]` for list items
    rule: str
    message: str


def cel_rules(node: Schema, path: str = "") -> Iterator[CelRule]:
    for validation in node.get("x-kubernetes-validations", []):
        yield CelRule(path or "<root>", validation["rule"], validation.get("message", ""))
    for name, sub in node.get("properties", {}).items():
        yield from cel_rules(sub, f"{path}.{name}" if path else name)
    if "items" in node:
        yield from cel_rules(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from cel_rules(node["additionalProperties"], f"{path}{{}}")


@functools.cache
def compiled(rule: str) -> celpy.Runner:
    env = celpy.Environment()
    return env.program(env.compile(rule))


def evaluate(rule: str, value: Any) -> bool:
    result = compiled(rule).evaluate({"self": celpy.json_to_cel(value)})
    if not isinstance(result, celpy.celtypes.BoolType):
        raise AssertionError(f"rule {rule!r} gave {result!r}, not a bool")
    return bool(result)


def _cel_errors(node: Schema, value: Any, path: str) -> Iterator[str]:
    for validation in node.get("x-kubernetes-validations", []):
        if not evaluate(validation["rule"], value):
            shown = "object" if isinstance(value, dict) else value
            yield f"{path}: Invalid value: {shown!r}: {validation.get('message') or validation['rule']}"
    if isinstance(value, dict):
        for name, sub in node.get("properties", {}).items():
            if name in value:
                yield from _cel_errors(sub, value[name], f"{path}.{name}" if path else name)
    elif isinstance(value, list) and "items" in node:
        for index, item in enumerate(value):
            yield from _cel_errors(node["items"], item, f"{path}[{index}]")


def _list_map_errors(node: Schema, value: Any, path: str) -> Iterator[str]:
    if isinstance(value, list) and node.get("x-kubernetes-list-type") == "map":
        keys = node["x-kubernetes-list-map-keys"]
        seen: set[tuple[Any, ...]] = set()
        for item in value:
            key = tuple(item.get(k) for k in keys) if isinstance(item, dict) else (item,)
            if key in seen:
                yield f"{path}: Duplicate value: {dict(zip(keys, key, strict=True))}"
            seen.add(key)
    if isinstance(value, dict):
        for name, sub in node.get("properties", {}).items():
            if name in value:
                yield from _list_map_errors(sub, value[name], f"{path}.{name}" if path else name)
    elif isinstance(value, list) and "items" in node:
        for index, item in enumerate(value):
            yield from _list_map_errors(node["items"], item, f"{path}[{index}]")


def _schema_path(error: jsonschema.ValidationError) -> str:
    path = ""
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    if error.validator == "additionalProperties":
        # jsonschema reports the parent; name the unknown field the way kubectl does.
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return ".".join(p for p in (path, *unknown) if p)
    if error.validator == "required":
        missing = error.message.split("'")[1]
        return f"{path}.{missing}" if path else missing
    return path or "<root>"


def admit(obj: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The object as the API server would store it, and the errors that would reject it."""
    schema = crd_schema(obj["kind"])
    stored = apply_defaults(schema, _drop_nulls(schema, copy.deepcopy(obj)))
    validator = jsonschema.Draft202012Validator(to_json_schema(schema))
    errors = [f"{_schema_path(e)}: {e.message}" for e in validator.iter_errors(stored)]
    errors += list(_list_map_errors(schema, stored, ""))
    if not errors:
        # The API server skips CEL rules on a node that failed its schema, and a rule may
        # rely on the schema (a `self.mode` of a defaulted field); simplest to run it last.
        errors += list(_cel_errors(schema, stored, ""))
    return stored, errors


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
    assert errors == ["spec.channels: Duplicate value: {'type': 'feishu'}"]


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
