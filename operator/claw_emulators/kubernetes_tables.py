"""Server-side printing for the Kubernetes emulator: `meta.k8s.io/v1 Table` responses.

`kubectl get` asks for a Table and prints its cells verbatim, so the columns a user sees
(the CRD's `additionalPrinterColumns`) are computed here, the way the API server does it:
a leading Name column, then one cell per column from a simple JSONPath, dates rendered as
an age ("5m", "3h12m")."""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

TABLE_MEDIA_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"

_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+|\*)\]|\[\?\(@\.([\w.]+)\s*==\s*[\"']([^\"']*)[\"']\)\]")


def wants_table(accept: str) -> bool:
    """True when the client (kubectl) prefers a Table over the raw object or list."""
    return any("as=Table" in part and "g=meta.k8s.io" in part for part in accept.split(","))


def jsonpath(obj: Any, path: str) -> Any:
    """Evaluate the JSONPath subset used in printer columns, returning the first match or None.

    Supports `.a.b`, `[0]`, `[*]` and `[?(@.type=="Ready")]`, with or without `{...}`.
    """
    expr = path.strip()
    if expr.startswith("{") and expr.endswith("}"):
        expr = expr[1:-1]
    expr = expr.lstrip("$")
    nodes: list[Any] = [obj]
    pos = 0
    while pos < len(expr):
        if expr[pos] == ".":
            pos += 1
            continue
        match = _SEGMENT.match(expr, pos)
        if match is None:
            return None
        pos = match.end()
        key, index, filter_key, filter_value = match.groups()
        found: list[Any] = []
        for node in nodes:
            if key is not None and isinstance(node, dict) and key in node:
                found.append(node[key])
            elif index == "*" and isinstance(node, list):
                found.extend(node)
            elif index is not None and index != "*" and isinstance(node, list) and int(index) < len(node):
                found.append(node[int(index)])
            elif filter_key is not None and isinstance(node, list):
                found.extend(
                    item
                    for item in node
                    if isinstance(item, dict) and str(jsonpath(item, filter_key)) == filter_value
                )
        nodes = found
        if not nodes:
            return None
    return nodes[0] if nodes else None


def human_age(timestamp: str | None, now: datetime.datetime | None = None) -> str | None:
    """Age in the style of the API server's printers (Go's duration.HumanDuration)."""
    if not timestamp:
        return None
    try:
        then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return timestamp
    seconds = int(((now or datetime.datetime.now(datetime.UTC)) - then).total_seconds())
    if seconds < -1:
        return "<invalid>"
    seconds = max(seconds, 0)
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 192:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 730:
        return f"{days}d"
    years = days // 365
    return f"{years}y{days % 365}d" if years < 8 else f"{years}y"


def _cell(value: Any, column_type: str) -> Any:
    if value is None:
        return None
    if column_type == "date":
        return human_age(str(value))
    if column_type == "integer":
        return value if isinstance(value, int) else None
    if column_type == "number":
        return value if isinstance(value, int | float) else None
    if column_type == "boolean":
        return value if isinstance(value, bool) else None
    return value if isinstance(value, str) else json.dumps(value)


AGE_COLUMN: dict[str, Any] = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def column_definitions(columns: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The Table's columnDefinitions for the given printer columns, after the Name column."""
    definitions = [
        {
            "name": "Name",
            "type": "string",
            "format": "name",
            "description": "Name must be unique within a namespace.",
            "priority": 0,
        }
    ]
    for column in columns or [AGE_COLUMN]:
        definitions.append(
            {
                "name": column["name"],
                "type": "string" if column.get("type", "string") == "date" else column.get("type", "string"),
                "format": column.get("format", ""),
                "description": column.get("description", ""),
                "priority": column.get("priority", 0),
            }
        )
    return definitions


def table_row(
    obj: dict[str, Any], columns: Sequence[Mapping[str, Any]], include_object: str
) -> dict[str, Any]:
    """One Table row; `include_object` is the request's includeObject (None|Metadata|Object)."""
    cells: list[Any] = [obj.get("metadata", {}).get("name")]
    for column in columns or [AGE_COLUMN]:
        cells.append(_cell(jsonpath(obj, column["jsonPath"]), column.get("type", "string")))
    row: dict[str, Any] = {"cells": cells}
    if include_object == "Object":
        row["object"] = obj
    elif include_object != "None":
        row["object"] = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata", {}),
        }
    return row


def table(
    objs: list[dict[str, Any]],
    columns: Sequence[Mapping[str, Any]],
    *,
    resource_version: str,
    include_object: str = "Metadata",
    with_definitions: bool = True,
) -> dict[str, Any]:
    """A `meta.k8s.io/v1 Table`; watch events after the first carry no column definitions."""
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": column_definitions(columns) if with_definitions else [],
        "rows": [table_row(obj, columns, include_object) for obj in objs],
    }
