"""Admission of custom resources against their CRD's structural OpenAPI v3 schema, as
kube-apiserver does it on create, update and patch.

Order as in the API server: explicit nulls of non-nullable fields are dropped (or take the
field's default), unknown fields are pruned (and reported, so that a request asking for
`fieldValidation=Strict` can be refused), defaults are applied, then the object is checked
against the schema (types, enums, patterns, lengths, bounds, sizes, required fields),
`x-kubernetes-list-type` map keys and set items must be unique, and the CEL rules run,
unless an earlier error means the object lacks the shape the rules were written for.
Errors are worded as the API server words them (go-openapi's "in body should match ...").
"""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
import functools
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from claw_emulators import kubernetes_cel as cel
from claw_emulators import kubernetes_errors as errors

Schema = Mapping[str, Any]

_ROOT_FIELDS = ("apiVersion", "kind", "metadata")
# After one of these the API server does not evaluate the CEL rules (apiextensions'
# hasBlockingErr), and says so instead of naming what the rules would have found.
_BLOCKING = {errors.NOT_SUPPORTED, errors.REQUIRED, errors.TOO_LONG, errors.TOO_MANY, errors.TYPE_INVALID}
RULES_NOT_CHECKED = (
    "some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclasses.dataclass(frozen=True)
class Admission:
    """What the API server makes of a write: the object as it would be stored, the errors
    that refuse it, and the unknown fields it pruned (`spec.ownr`, `spec.env[0].x`)."""

    obj: dict[str, Any]
    errors: list[errors.FieldError]
    unknown_fields: list[str]


def admit(
    schema: Schema | None, obj: Mapping[str, Any], *, old: Mapping[str, Any] | None = None, subtree: str = ""
) -> Admission:
    """Prune, default and validate `obj` (a whole object) against `schema`.

    `old` is the stored object on updates (for transition rules); `subtree="status"`
    checks only `.status`, as writes to the status subresource are checked. The stored
    object is built anew where the schema has objects and lists, but shares other values
    (strings, schemaless subtrees) with `obj`: copy `obj` first if it will change.
    """
    stored = dict(obj)
    if not schema:
        return Admission(stored, [], [])
    unknown: list[str] = []
    stored = _prune_and_default(schema, stored, "", unknown, root=True)
    node, value, old_value, path = schema, stored, old, ""
    if subtree:
        node = (schema.get("properties") or {}).get(subtree) or {}
        value, path = stored.get(subtree), subtree
        old_value = old.get(subtree) if old is not None else None
        if value is None:
            return Admission(stored, [], unknown)
    found = list(_schema_errors(node, value, path, root=not subtree))
    found += _list_type_errors(node, value, path)
    if any(error.type in _BLOCKING for error in found):
        if next(cel.cel_rules(schema), None) is not None:
            found.append(errors.invalid(errors.NIL_PATH, None, RULES_NOT_CHECKED))
    else:
        found += cel.cel_errors(node, value, path, old_value)
    return Admission(stored, found, unknown)


def apply_defaults(schema: Schema | None, value: Any) -> Any:
    """Structural defaulting alone (no pruning): absent fields with a `default` get it."""
    if not schema:
        return value
    return _prune_and_default(schema, value, "", None)


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _is_object_node(node: Schema) -> bool:
    return node.get("type") == "object" or "properties" in node or "additionalProperties" in node


def _prune_and_default(
    node: Schema, value: Any, path: str, unknown: list[str] | None, root: bool = False
) -> Any:
    """Drop non-nullable nulls and (when `unknown` is a list) unknown fields, recording
    their paths; fill defaults top-down, so a defaulted object gets its nested defaults."""
    if isinstance(value, dict) and _is_object_node(node):
        properties = node.get("properties") or {}
        extra = node.get("additionalProperties")
        keep_unknown = bool(node.get("x-kubernetes-preserve-unknown-fields")) or extra is True
        result: dict[str, Any] = {}
        for key, item in value.items():
            if root and key in _ROOT_FIELDS:
                result[key] = item
                continue
            sub = properties.get(key) if key in properties else extra if isinstance(extra, Mapping) else None
            if sub is None:
                if keep_unknown or unknown is None:
                    result[key] = item
                else:
                    unknown.append(_child(path, key))
                continue
            if item is None and not sub.get("nullable"):
                if "default" not in sub:
                    continue
                item = copy.deepcopy(sub["default"])
            result[key] = _prune_and_default(sub, item, _child(path, key), unknown)
        for key, sub in properties.items():
            if key not in result and "default" in sub and not (root and key in _ROOT_FIELDS):
                result[key] = _prune_and_default(
                    sub, copy.deepcopy(sub["default"]), _child(path, key), unknown
                )
        return result
    if isinstance(value, list) and isinstance(node.get("items"), Mapping):
        return [
            _prune_and_default(node["items"], item, f"{path}[{index}]", unknown)
            for index, item in enumerate(value)
        ]
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_matches(node: Schema, value: Any) -> bool:
    wanted = node.get("type")
    actual = _json_type(value)
    if node.get("x-kubernetes-int-or-string"):
        return actual in ("integer", "string")
    if not wanted:
        return True
    return actual == wanted or (wanted == "number" and actual == "integer")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


@functools.cache
def _pattern(expression: str) -> re.Pattern[str]:
    return re.compile(expression)


def _schema_errors(node: Schema, value: Any, path: str, root: bool = False) -> Iterator[errors.FieldError]:
    where = f"{path or 'body'} in body"
    if value is None and node.get("nullable"):
        return
    if not _type_matches(node, value):
        actual = _json_type(value)
        yield errors.FieldError(
            errors.TYPE_INVALID,
            path,
            actual,
            f"{where} must be of type {node.get('type')}: {json.dumps(actual)}",
        )
        return
    enum = node.get("enum")
    if enum is not None and not any(_json_equal(value, option) for option in enum):
        yield errors.not_supported(path, value, enum)
    if isinstance(value, str):
        yield from _string_errors(node, value, path, where)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield from _number_errors(node, value, path, where)
    elif isinstance(value, list):
        if "maxItems" in node and len(value) > node["maxItems"]:
            yield errors.too_many(path, len(value), node["maxItems"])
        if "minItems" in node and len(value) < node["minItems"]:
            yield errors.invalid(path, len(value), f"{where} should have at least {node['minItems']} items")
        if isinstance(node.get("items"), Mapping):
            for index, item in enumerate(value):
                yield from _schema_errors(node["items"], item, f"{path}[{index}]")
    elif isinstance(value, dict):
        yield from _object_errors(node, value, path, where, root)


def _json_equal(left: Any, right: Any) -> bool:
    # Python's True == 1; JSON's true is not 1.
    return bool(left == right and isinstance(left, bool) == isinstance(right, bool))


def _string_errors(node: Schema, value: str, path: str, where: str) -> Iterator[errors.FieldError]:
    if "maxLength" in node and len(value) > node["maxLength"]:
        yield errors.too_long(path, value, node["maxLength"])
    if "minLength" in node and len(value) < node["minLength"]:
        yield errors.invalid(path, value, f"{where} should be at least {node['minLength']} chars long")
    if "pattern" in node and not _pattern(node["pattern"]).search(value):
        yield errors.invalid(path, value, f"{where} should match '{node['pattern']}'")


def _number_errors(node: Schema, value: float, path: str, where: str) -> Iterator[errors.FieldError]:
    if "minimum" in node:
        low, exclusive = node["minimum"], bool(node.get("exclusiveMinimum"))
        if value < low or (exclusive and value == low):
            bound = "greater than" if exclusive else "greater than or equal to"
            yield errors.invalid(path, value, f"{where} should be {bound} {_number(low)}")
    if "maximum" in node:
        high, exclusive = node["maximum"], bool(node.get("exclusiveMaximum"))
        if value > high or (exclusive and value == high):
            bound = "less than" if exclusive else "less than or equal to"
            yield errors.invalid(path, value, f"{where} should be {bound} {_number(high)}")
    step = node.get("multipleOf")
    if step and (value / step) != int(value / step):
        yield errors.invalid(path, value, f"{where} should be a multiple of {_number(step)}")


def _object_errors(
    node: Schema, value: dict[str, Any], path: str, where: str, root: bool
) -> Iterator[errors.FieldError]:
    for name in node.get("required") or []:
        if name not in value:
            yield errors.required(_child(path, name))
    if "maxProperties" in node and len(value) > node["maxProperties"]:
        yield errors.too_many(path, len(value), node["maxProperties"])
    if "minProperties" in node and len(value) < node["minProperties"]:
        yield errors.invalid(
            path, len(value), f"{where} should have at least {node['minProperties']} properties"
        )
    properties = node.get("properties") or {}
    extra = node.get("additionalProperties")
    for key, item in value.items():
        if root and key == "metadata":
            continue  # ObjectMeta has its own rules (validate_metadata)
        sub = properties.get(key) if key in properties else extra if isinstance(extra, Mapping) else None
        if sub is not None:
            yield from _schema_errors(sub, item, _child(path, key))


def _list_type_errors(node: Schema, value: Any, path: str) -> Iterator[errors.FieldError]:
    if isinstance(value, list):
        list_type = node.get("x-kubernetes-list-type")
        if list_type == "map":
            keys = node.get("x-kubernetes-list-map-keys") or []
            seen: set[str] = set()
            for index, item in enumerate(value):
                if not isinstance(item, dict):
                    continue
                identity = {key: item.get(key) for key in keys}
                marker = json.dumps(identity, sort_keys=True)
                if marker in seen:
                    yield errors.duplicate(f"{path}[{index}]", identity)
                seen.add(marker)
        elif list_type == "set":
            seen_items: set[str] = set()
            for index, item in enumerate(value):
                marker = json.dumps(item, sort_keys=True)
                if marker in seen_items:
                    yield errors.duplicate(f"{path}[{index}]", item)
                seen_items.add(marker)
        if isinstance(node.get("items"), Mapping):
            for index, item in enumerate(value):
                yield from _list_type_errors(node["items"], item, f"{path}[{index}]")
    elif isinstance(value, dict):
        properties = node.get("properties") or {}
        extra = node.get("additionalProperties")
        for key, item in value.items():
            sub = properties.get(key) if key in properties else extra if isinstance(extra, Mapping) else None
            if sub is not None:
                yield from _list_type_errors(sub, item, _child(path, key))


_SUBDOMAIN_HELP = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_HELP = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)


def validate_name(name: str, *, label: bool = False) -> list[errors.FieldError]:
    """metadata.name rules: a DNS subdomain (253 characters), or for namespaces a DNS label (63)."""
    limit, pattern, help_text = (
        (63, _DNS_LABEL, _LABEL_HELP) if label else (253, _DNS_SUBDOMAIN, _SUBDOMAIN_HELP)
    )
    found = []
    if len(name) > limit:
        found.append(errors.invalid("metadata.name", name, f"must be no more than {limit} characters"))
    if not pattern.match(name):
        found.append(errors.invalid("metadata.name", name, help_text))
    return found


_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_CONFIG_KEY_HELP = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  "
    "or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)
_BASE64 = re.compile(r"[A-Za-z0-9+/=]")


def config_key_errors(obj: Mapping[str, Any], fields: tuple[str, ...]) -> list[errors.FieldError]:
    """Keys of a Secret's or ConfigMap's data maps must be config keys (`data[bad key]: ...`)."""
    found = []
    for field in fields:
        for key in obj.get(field) or {}:
            if not _CONFIG_KEY.match(key) or len(key) > 253:
                found.append(errors.invalid(f"{field}[{key}]", key, _CONFIG_KEY_HELP))
    return found


def undecodable_base64(values: Mapping[str, Any]) -> str | None:
    """Go's decoding error for the first value that is not standard base64, or None."""
    for value in values.values():
        text = str(value)
        try:
            base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            bad = next((i for i, char in enumerate(text) if not _BASE64.match(char)), len(text))
            return f"illegal base64 data at input byte {bad}"
    return None
