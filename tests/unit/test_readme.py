"""The README: it opens with `make run` and `make test`, documents every setting of
API.md in its configuration table, and its sections cover what ships."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
API_MD = ROOT.parent / "shared" / "design" / "API.md"


def test_opens_with_make_run_and_make_test() -> None:
    first_block = README.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert first_block[0].startswith("make run") and first_block[1].startswith("make test")


def _configuration_table() -> set[str]:
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`([A-Z][A-Z0-9_]+)`", section))


@pytest.mark.skipif(
    not API_MD.exists(), reason=f"{API_MD} (the shared design docs) is not beside the repository"
)
def test_every_api_setting_is_in_the_configuration_table() -> None:
    settings = API_MD.read_text(encoding="utf-8").split("## Operator settings", 1)[1]
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)`(?:, `([A-Z][A-Z0-9_]+)`)?", settings, re.M))
    names = {n for pair in documented for n in pair if n}
    assert names and names <= _configuration_table(), names - _configuration_table()


def test_every_operator_setting_is_in_the_configuration_table() -> None:
    config = (ROOT / "operator" / "claw_operator" / "config.py").read_text(encoding="utf-8")
    from_env = set(re.findall(r'"((?:RAILWAY|CLAW)_[A-Z0-9_]+)"', config))
    missing = from_env - _configuration_table() - {"CLAW_BATCH_WINDOW_SECONDS", "CLAW_BATCH_SIZE"}
    assert not missing, f"settings read by config.py but not documented: {sorted(missing)}"


def test_sections() -> None:
    for section in (
        "## Quick start on kind",
        "## Install with Helm",
        "## Install with kustomize",
        "## GitOps with Argo CD",
        "## Metrics and alerts",
        "## The kubectl plugin",
        "## Configuration",
        "## SelfHosted and OAuth tokens",
        "## Troubleshooting by condition reason",
    ):
        assert section in README
    assert "kind: Application" in README
