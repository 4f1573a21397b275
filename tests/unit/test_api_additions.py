"""docs/api-additions.md stays true: every status field it names exists in the CRDs, every
setting the operator reads is documented (in API.md or there, and in the README), every
series it serves likewise, and nothing it claims as an addition is in API.md already."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from claw_operator.api import models
from claw_operator.api.conditions import EventReason
from claw_operator.api.crdgen import clawinstance_crd, clawplan_crd
from claw_operator.support.metrics import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
ADDITIONS = (ROOT / "docs" / "api-additions.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
API_MD = ROOT.parent / "shared" / "design" / "API.md"
needs_api_md = pytest.mark.skipif(not API_MD.exists(), reason=f"API.md not found at {API_MD}")


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", ADDITIONS, re.M | re.S)
    assert match, f"docs/api-additions.md has no section {title!r}"
    return match.group(1)


def status_schema(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    return schema


def resolves(schema: dict[str, Any], path: list[str]) -> bool:
    for part in path:
        schema = schema.get("items", schema)
        properties = schema.get("properties") or {}
        if part not in properties:
            return False
        schema = properties[part]
    return True


def field_paths(text: str) -> list[list[str]]:
    """`status.a.b` and `status.a.b`, `c` (siblings) -> [a, b], [a, c]."""
    paths = []
    for row in re.findall(r"^\| (`status\.[^|]*)\|", text, re.M):
        names = re.findall(r"`([^`]+)`", row)
        first = names[0].removeprefix("status.").removesuffix("[]").split(".")
        paths.append(first)
        paths += [[*first[:-1], name.removesuffix("[]")] for name in names[1:]]
    return paths


@pytest.mark.parametrize(
    ("title", "crd"), [("ClawInstance status", clawinstance_crd()), ("ClawPlan status", clawplan_crd())]
)
def test_every_status_field_named_exists_in_the_crd(title: str, crd: dict[str, Any]) -> None:
    paths = field_paths(section(title))
    assert paths, f"no fields found in {title}"
    missing = [".".join(path) for path in paths if not resolves(status_schema(crd), path)]
    assert not missing, f"docs/api-additions.md names fields the CRD lacks: {missing}"


def test_labels_annotations_and_reasons_are_the_codes_own() -> None:
    names = set(re.findall(r"^\| `([a-z.]+/[A-Za-z-]+)", section("Labels and annotations"), re.M))
    from claw_operator.k8s.leases import REPLICA_LABEL
    from claw_operator.k8s.token_refresher import JOURNAL_ANNOTATION

    assert names == {models.CANARY_LABEL, JOURNAL_ANNOTATION, REPLICA_LABEL}
    assert EventReason.SECRET_NOT_WATCHED in section("Event reasons")


def settings_read() -> set[str]:
    package = ROOT / "operator" / "claw_operator"
    found: set[str] = set()
    for path in package.rglob("*.py"):
        found |= set(re.findall(r'"((?:CLAW|RAILWAY)_[A-Z_]+)"', path.read_text(encoding="utf-8")))
    return found


def test_every_setting_is_in_the_readme() -> None:
    undocumented = sorted(name for name in settings_read() if f"`{name}`" not in README)
    assert not undocumented, f"settings the README's Configuration table lacks: {undocumented}"


@needs_api_md
def test_settings_and_series_beyond_api_md_are_listed_as_additions() -> None:
    api = API_MD.read_text(encoding="utf-8")
    extras = section("Settings and metrics")
    settings = settings_read()
    beyond = sorted(name for name in settings if name not in api and f"`{name}`" not in extras)
    assert not beyond, f"settings in neither API.md nor docs/api-additions.md: {beyond}"
    # prometheus-client names a counter without its `_total` suffix.
    series = {m.name + "_total" if m.type == "counter" else m.name for m in REGISTRY.collect()}
    served = {name for name in series if name.startswith("claw_")}
    beyond = sorted(name for name in served if name not in api and f"`{name}{{" not in extras)
    assert not beyond, f"series in neither API.md nor docs/api-additions.md: {beyond}"
    claimed = re.findall(r"`((?:CLAW|RAILWAY)_[A-Z_]+|claw_[a-z_]+)", extras)
    already = sorted(name for name in claimed if re.search(rf"`{name}[`{{]", api))
    assert not already, f"docs/api-additions.md claims as additions what API.md has: {already}"


@needs_api_md
def test_labels_and_reasons_claimed_as_additions_are_not_in_api_md() -> None:
    api = API_MD.read_text(encoding="utf-8")
    assert models.CANARY_LABEL not in api and EventReason.SECRET_NOT_WATCHED not in api
