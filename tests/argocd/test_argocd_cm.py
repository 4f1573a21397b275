"""The argocd-cm patch (a kustomize component) carries exactly the tested Lua."""

from __future__ import annotations

import yaml

from tests.argocd.argocd_cm import PATCH, render
from tests.argocd.lua import CUSTOMIZATIONS, ROOT


def test_patch_is_current() -> None:
    assert PATCH.read_text(encoding="utf-8") == render(), "run `python -m tests.argocd.argocd_cm`"


def test_patch_round_trips_to_the_lua_files() -> None:
    patch = yaml.safe_load(PATCH.read_text(encoding="utf-8"))
    assert patch["kind"] == "ConfigMap" and patch["metadata"]["name"] == "argocd-cm"
    data = patch["data"]
    for kind in ("ClawInstance", "ClawPlan"):
        lua = (CUSTOMIZATIONS / kind / "health.lua").read_text(encoding="utf-8")
        assert data[f"resource.customizations.health.claw.io_{kind}"] == lua
        actions = yaml.safe_load(data[f"resource.customizations.actions.claw.io_{kind}"])
        assert actions["discovery.lua"] == (CUSTOMIZATIONS / kind / "actions" / "discovery.lua").read_text(
            encoding="utf-8"
        )
        for definition in actions["definitions"]:
            path = CUSTOMIZATIONS / kind / "actions" / definition["name"] / "action.lua"
            assert definition["action.lua"] == path.read_text(encoding="utf-8")


def test_component_applies_the_patch() -> None:
    component = yaml.safe_load(
        (ROOT / "manifests" / "argocd" / "kustomization.yaml").read_text(encoding="utf-8")
    )
    assert component["kind"] == "Component"
    assert {"path": "argocd-cm-patch.yaml"} in component["patches"]
