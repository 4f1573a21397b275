"""The `x-kubernetes-validations` CEL rules of a structural schema, evaluated with cel-python.

As the API server does: each rule runs with `self` bound to the value of its schema node
(every item of a list, every value of a map), only where that value is present; a
transition rule (one that mentions `oldSelf`) runs only on updates where the old value
exists. A failing rule is a field error at the node (or at its `fieldPath`), worded with
its `message` or `messageExpression`, typed by its `reason` (FieldValueInvalid by default).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import celpy
import celpy.adapter
import celpy.celtypes
import celpy.evaluation

from claw_emulators import kubernetes_errors as errors

Schema = Mapping[str, Any]

_OLD_SELF = re.compile(r"\boldSelf\b")


@dataclasses.dataclass(frozen=True)
class CelRule:
    """A rule found in a schema: `path` is the dotted schema path (`[]` for list items,
    `{}` for map values, `<root>` for the top)."""

    path: str
    rule: str
    message: str


def cel_rules(node: Schema, path: str = "") -> Iterator[CelRule]:
    """Every rule of `node` and below, in schema order."""
    for validation in node.get("x-kubernetes-validations", []):
        yield CelRule(path or "<root>", validation["rule"], validation.get("message", ""))
    for name, sub in (node.get("properties") or {}).items():
        yield from cel_rules(sub, f"{path}.{name}" if path else name)
    if isinstance(node.get("items"), Mapping):
        yield from cel_rules(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), Mapping):
        yield from cel_rules(node["additionalProperties"], f"{path}{{}}")


@functools.cache
def compiled(rule: str) -> celpy.Runner:
    """The program for a rule (compiled once per process); raises CELParseError if malformed."""
    env = celpy.Environment()
    return env.program(env.compile(rule))


def _run(rule: str, self_value: Any, old_value: Any = None) -> Any:
    activation = {"self": celpy.adapter.json_to_cel(self_value)}
    if old_value is not None:
        activation["oldSelf"] = celpy.adapter.json_to_cel(old_value)
    result = compiled(rule).evaluate(activation)
    if isinstance(result, celpy.evaluation.CELEvalError):
        raise result
    return result


def evaluate(rule: str, value: Any, old_value: Any = None) -> bool:
    """The rule's verdict on `value`; raises if it is not a bool or cannot be evaluated."""
    result = _run(rule, value, old_value)
    if not isinstance(result, celpy.celtypes.BoolType):
        raise TypeError(f"rule {rule!r} gave {result!r}, not a bool")
    return bool(result)


@functools.lru_cache(maxsize=65_536)
def _cached_verdict(rule: str, value_json: str, old_json: str | None) -> bool:
    # CEL is pure, and a fleet repeats the same values (railway {mode: Managed}, the same env
    # entries) across thousands of objects: cel-python takes about a millisecond per rule.
    return evaluate(rule, json.loads(value_json), json.loads(old_json) if old_json is not None else None)


def verdict(rule: str, value: Any, old_value: Any = None) -> bool:
    """`evaluate`, remembered for values seen before."""
    old_json = json.dumps(old_value, sort_keys=True) if old_value is not None else None
    return _cached_verdict(rule, json.dumps(value, sort_keys=True), old_json)


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _failure(validation: Mapping[str, Any], path: str, node: Schema, value: Any) -> errors.FieldError:
    message = validation.get("message") or ""
    if validation.get("messageExpression"):
        try:
            message = str(_run(validation["messageExpression"], value))
        except Exception:  # the API server falls back to the static message, too
            message = message or f"failed rule: {validation['rule']}"
    message = message or f"failed rule: {validation['rule']}"
    field = path
    if validation.get("fieldPath"):
        field = path + validation["fieldPath"] if path else validation["fieldPath"].lstrip(".")
    reason = validation.get("reason") or errors.INVALID
    if reason == errors.REQUIRED:
        return errors.required(field, message)
    if reason == errors.FORBIDDEN:
        return errors.FieldError(errors.FORBIDDEN, field, detail=message)
    if reason == errors.DUPLICATE:
        return errors.FieldError(errors.DUPLICATE, field, errors.OMITTED, message)
    return errors.invalid(field, node.get("type") or "object", message)


def cel_errors(node: Schema, value: Any, path: str = "", old: Any = None) -> Iterator[errors.FieldError]:
    """The field errors of every rule that fails on `value` (and `old`, on updates)."""
    for validation in node.get("x-kubernetes-validations", []):
        rule = validation["rule"]
        if _OLD_SELF.search(rule) and old is None:
            continue
        try:
            ok = verdict(rule, value, old)
        except Exception as exc:
            yield errors.invalid(path, node.get("type") or "object", f"rule evaluation error: {exc}")
            continue
        if not ok:
            yield _failure(validation, path, node, value)
    if isinstance(value, dict):
        properties = node.get("properties") or {}
        extra = node.get("additionalProperties")
        old_map = old if isinstance(old, dict) else {}
        for key, item in value.items():
            sub = properties.get(key) if key in properties else extra if isinstance(extra, Mapping) else None
            if sub is not None:
                yield from cel_errors(sub, item, _child(path, key), old_map.get(key))
    elif isinstance(value, list) and isinstance(node.get("items"), Mapping):
        old_items = old if isinstance(old, list) else []
        for index, item in enumerate(value):
            yield from cel_errors(node["items"], item, f"{path}[{index}]", _old_item(node, item, old_items))


def _old_item(node: Schema, item: Any, old_items: list[Any]) -> Any:
    # Transition rules compare list items by their map keys (x-kubernetes-list-type: map);
    # items of other lists have no identity, so they are treated as new.
    keys = node.get("x-kubernetes-list-map-keys") or []
    if node.get("x-kubernetes-list-type") != "map" or not keys or not isinstance(item, dict):
        return None
    for candidate in old_items:
        if isinstance(candidate, dict) and all(candidate.get(k) == item.get(k) for k in keys):
            return candidate
    return None
