"""The argocd-cm patch (a kustomize component) carries exactly the tested Lua."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
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


@pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl (with its built-in kustomize) is not installed"
)
def test_component_patches_an_argocd_install(tmp_path: Path) -> None:
    """The component applied to a stand-in of Argo CD's own argocd-cm keeps its keys and
    adds ours."""
    (tmp_path / "argocd-cm.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "argocd-cm", "namespace": "argocd"},
                "data": {"url": "https://argocd.example.com"},
            }
        ),
        encoding="utf-8",
    )
    component = os.path.relpath(ROOT / "manifests" / "argocd", tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": ["argocd-cm.yaml"], "components": [component]}), encoding="utf-8"
    )
    built = subprocess.run(
        ["kubectl", "kustomize", str(tmp_path)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    [config_map] = [d for d in yaml.safe_load_all(built) if d]
    data = config_map["data"]
    assert data["url"] == "https://argocd.example.com"
    assert data["resource.customizations.health.claw.io_ClawInstance"] == (
        CUSTOMIZATIONS / "ClawInstance" / "health.lua"
    ).read_text(encoding="utf-8")
    assert "resource.customizations.actions.claw.io_ClawPlan" in data
