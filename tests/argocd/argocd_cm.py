"""Renders manifests/argocd/argocd-cm-patch.yaml from argocd/resource_customizations, so
the patch users apply is exactly the Lua that the tests run.

`python -m tests.argocd.argocd_cm` rewrites it; test_argocd_cm.py fails when it is stale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.argocd.lua import CUSTOMIZATIONS, ROOT

PATCH = ROOT / "manifests" / "argocd" / "argocd-cm-patch.yaml"
HEADER = (
    "# Generated from argocd/resource_customizations by `python -m tests.argocd.argocd_cm`;\n"
    "# edit the Lua there, not here. Health checks and actions for claw.io in Argo CD.\n"
)


class _Literal(str):
    pass


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")


yaml.add_representer(_Literal, _literal, Dumper=yaml.SafeDumper)


def _text(path: Path) -> _Literal:
    return _Literal(path.read_text(encoding="utf-8"))


def data() -> dict[str, str]:
    result: dict[str, Any] = {}
    for kind_dir in sorted(p for p in CUSTOMIZATIONS.iterdir() if p.is_dir()):
        key = f"claw.io_{kind_dir.name}"
        result[f"resource.customizations.health.{key}"] = _text(kind_dir / "health.lua")
        actions = kind_dir / "actions"
        definitions = [
            {"name": p.parent.name, "action.lua": _text(p)} for p in sorted(actions.glob("*/action.lua"))
        ]
        block = {"discovery.lua": _text(actions / "discovery.lua"), "definitions": definitions}
        result[f"resource.customizations.actions.{key}"] = _Literal(
            yaml.safe_dump(block, sort_keys=False, width=1000)
        )
    return result


def render() -> str:
    patch = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "argocd-cm", "namespace": "argocd"},
        "data": data(),
    }
    return HEADER + yaml.safe_dump(patch, sort_keys=False, width=1000)


if __name__ == "__main__":
    PATCH.parent.mkdir(parents=True, exist_ok=True)
    PATCH.write_text(render(), encoding="utf-8")
    print(f"wrote {PATCH.relative_to(ROOT)}")
