"""Runs the Argo CD resource customizations (argocd/resource_customizations) the way
Argo CD does: the object is the global `obj`, the script returns a table. Lua 5.1 (the
language of gopher-lua, which Argo CD embeds) comes from `lupa`; tables are converted to
and from plain Python values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa.lua51

ROOT = Path(__file__).resolve().parents[2]
CUSTOMIZATIONS = ROOT / "argocd" / "resource_customizations" / "claw.io"


def _to_lua(runtime: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return runtime.table_from({k: _to_lua(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, v) for v in value])
    return value


def _from_lua(value: Any) -> Any:
    if lupa.lua51.lua_type(value) != "table":
        return value
    items = dict(value.items())
    if items and all(isinstance(k, int) for k in items) and sorted(items) == list(range(1, len(items) + 1)):
        return [_from_lua(items[i]) for i in range(1, len(items) + 1)]
    return {str(k): _from_lua(v) for k, v in items.items()}


def run(script: Path, obj: dict[str, Any]) -> Any:
    """Run one Lua file with `obj` bound; return what it returns, as Python values."""
    runtime = lupa.lua51.LuaRuntime(unpack_returned_tuples=False)
    runtime.globals().obj = _to_lua(runtime, obj)
    return _from_lua(runtime.execute(script.read_text(encoding="utf-8")))


def health(kind: str, obj: dict[str, Any]) -> dict[str, str]:
    """{"status": ..., "message": ...} of a ClawInstance or ClawPlan."""
    result = run(CUSTOMIZATIONS / kind / "health.lua", obj)
    assert isinstance(result, dict), f"health.lua returned {result!r}"
    return {"status": str(result.get("status")), "message": str(result.get("message", ""))}
