"""Field errors and `v1 Status` failures worded as kube-apiserver words them.

A `FieldError` is apimachinery's `field.Error`: a type (`FieldValueRequired`, ...), the
field path, the bad value and a detail. `invalid_status` aggregates them into the 422
`Invalid` Status that kubectl turns into "The ClawInstance "x" is invalid: * field: ...".
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any, Final

REQUIRED: Final = "FieldValueRequired"
INVALID: Final = "FieldValueInvalid"
TYPE_INVALID: Final = "FieldValueTypeInvalid"
NOT_SUPPORTED: Final = "FieldValueNotSupported"
TOO_LONG: Final = "FieldValueTooLong"
TOO_MANY: Final = "FieldValueTooMany"
DUPLICATE: Final = "FieldValueDuplicate"
FORBIDDEN: Final = "FieldValueForbidden"

_TITLES: Final = {
    REQUIRED: "Required value",
    INVALID: "Invalid value",
    TYPE_INVALID: "Invalid value",
    NOT_SUPPORTED: "Unsupported value",
    TOO_LONG: "Too long",
    TOO_MANY: "Too many",
    DUPLICATE: "Duplicate value",
    FORBIDDEN: "Forbidden",
}
# These types never print the value, whatever it is (apimachinery's ErrorBody).
_VALUE_HIDDEN: Final = {REQUIRED, FORBIDDEN, TOO_LONG}


class _Omitted:
    def __repr__(self) -> str:
        return "OMITTED"


OMITTED: Final = _Omitted()
NIL_PATH: Final = "<nil>"  # how apimachinery prints the path of an error about no field


def go_value(value: Any) -> str:
    """A value the way Go's `%v`/`%q`/`%#v` shows it in field errors."""
    if value is None:
        return '"null"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        inner = ", ".join(f"{json.dumps(str(k))}:{_go_literal(v)}" for k, v in value.items())
        return f"map[string]interface {{}}{{{inner}}}"
    if isinstance(value, list):
        return f"[]interface {{}}{{{', '.join(_go_literal(v) for v in value)}}}"
    return json.dumps(value)


def _go_literal(value: Any) -> str:
    if isinstance(value, dict | list):
        return go_value(value)
    return json.dumps(value, ensure_ascii=False)


@dataclasses.dataclass(frozen=True)
class FieldError:
    """One bad field, as apimachinery's `field.Error`."""

    type: str
    field: str
    value: Any = OMITTED
    detail: str = ""

    def body(self) -> str:
        """The message without the path: `Unsupported value: "slack": supported values: ...`."""
        text = _TITLES.get(self.type, self.type)
        if self.type not in _VALUE_HIDDEN and self.value is not OMITTED:
            text += f": {go_value(self.value)}"
        if self.detail:
            text += f": {self.detail}"
        return text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"

    def cause(self) -> dict[str, str]:
        return {"reason": self.type, "message": self.body(), "field": self.field}


def required(field: str, detail: str = "") -> FieldError:
    return FieldError(REQUIRED, field, detail=detail)


def invalid(field: str, value: Any, detail: str) -> FieldError:
    return FieldError(INVALID, field, value, detail)


def not_supported(field: str, value: Any, supported: Sequence[Any]) -> FieldError:
    shown = ", ".join(json.dumps(v if isinstance(v, str) else json.dumps(v)) for v in supported)
    return FieldError(NOT_SUPPORTED, field, value, f"supported values: {shown}" if supported else "")


def too_long(field: str, value: Any, max_length: int) -> FieldError:
    unit = "byte" if max_length == 1 else "bytes"
    return FieldError(TOO_LONG, field, value, f"may not be more than {max_length} {unit}")


def too_many(field: str, actual: int, maximum: int) -> FieldError:
    return FieldError(TOO_MANY, field, actual, f"must have at most {maximum} items")


def duplicate(field: str, value: Any) -> FieldError:
    return FieldError(DUPLICATE, field, value)


def aggregate(errors: Sequence[FieldError]) -> str:
    """apimachinery's aggregate error text: one message, or `[a, b]`, duplicates once."""
    messages = list(dict.fromkeys(str(e) for e in errors))
    return messages[0] if len(messages) == 1 else f"[{', '.join(messages)}]"


def invalid_status(kind: str, group: str, name: str, errors: Sequence[FieldError]) -> dict[str, Any]:
    """The 422 `Invalid` Status body for `errors` on object `name` of `kind`."""
    qualified = f"{kind}.{group}" if group else kind
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"{qualified} {json.dumps(name)} is invalid: {aggregate(errors)}",
        "reason": "Invalid",
        "details": {"name": name, "group": group, "kind": kind, "causes": [e.cause() for e in errors]},
        "code": 422,
    }
