"""The krew manifest, rendered the way the release workflow renders it, is a valid krew
Plugin for the console script this package installs."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SHA = "0" * 63 + "1"


def _render(tag: str) -> dict[str, object]:
    text = (ROOT / "krew" / "claw.yaml").read_text(encoding="utf-8")
    line = re.search(r"\{\{ addURIAndSha .+ \}\}", text)
    assert line, "the krew-release-bot placeholder for uri and sha256"
    url = f"https://github.com/claw-operator/claw-operator/releases/download/{tag}/kubectl-claw.tar.gz"
    text = text.replace(line.group(0), f'uri: {url}\n      sha256: "{SHA}"').replace("{{ .TagName }}", tag)
    rendered: dict[str, object] = yaml.safe_load(text)
    return rendered


def test_rendered_manifest_is_a_krew_plugin() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    tag = f"v{project['version']}"
    manifest = _render(tag)
    assert manifest["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert manifest["kind"] == "Plugin" and manifest["metadata"] == {"name": "claw"}  # type: ignore[index]
    spec = manifest["spec"]
    assert isinstance(spec, dict)
    assert spec["version"] == tag and spec["shortDescription"] and spec["homepage"].startswith("https://")
    [platform] = spec["platforms"]
    assert platform["bin"] == "kubectl-claw"
    assert platform["uri"].endswith(f"/{tag}/kubectl-claw.tar.gz") and len(platform["sha256"]) == 64
    assert {f["from"] for f in platform["files"]} == {"kubectl-claw", "VERSION", "LICENSE"}
    assert project["scripts"]["kubectl-claw"] == "claw_kubectl.cli:main"


def test_the_shim_is_valid_sh_and_executable() -> None:
    shim = ROOT / "krew" / "kubectl-claw"
    assert shim.stat().st_mode & 0o111
    subprocess.run(["sh", "-n", str(shim)], check=True)
    assert 'exec "$venv/bin/kubectl-claw" "$@"' in shim.read_text(encoding="utf-8")


def test_the_release_workflow_renders_the_same_placeholders() -> None:
    workflow = (ROOT / ".github" / "workflows" / "release.yml").read_text(encoding="utf-8")
    template = (ROOT / "krew" / "claw.yaml").read_text(encoding="utf-8")
    placeholder = re.search(r"\{\{ addURIAndSha .+ \}\}", template)
    assert placeholder and placeholder.group(0) in workflow
