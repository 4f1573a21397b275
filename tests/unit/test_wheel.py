"""The wheel the image installs: its unconditional requirements are the operator's
runtime dependencies only (no emulator, dev or test packages), it carries the console
scripts, and the operator's code imports nothing those requirements do not bring."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

import grimp
import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = {
    "kopf",
    "kubernetes",
    "httpx",
    "sniffio",
    "cryptography",
    "pydantic",
    "pyyaml",
    "prometheus-client",
}
NEVER_AT_RUNTIME = {
    "kmock",
    "graphql-core",
    "aiohttp",
    "attrs",
    "lupa",
    "pytest",
    "jsonschema",
    "cel-python",
    "build",
}
# Top-level modules each runtime requirement provides (their own dependencies included,
# where the operator's code uses them: aiohttp comes with kopf, urllib3 with kubernetes).
PROVIDED = {
    "kopf": {"kopf", "aiohttp"},
    "kubernetes": {"kubernetes", "urllib3"},
    "httpx": {"httpx"},
    "cryptography": {"cryptography"},
    "pydantic": {"pydantic", "pydantic_core"},
    "pyyaml": {"yaml"},
    "prometheus-client": {"prometheus_client"},
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy of exactly what the Docker build context holds."""
    source = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "operator", source / "operator", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [built] = out.glob("claw_operator-*.whl")
    return built


def _metadata(wheel: Path) -> tuple[list[Requirement], str]:
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        text = archive.read(name).decode()
        [entry_points] = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
        scripts = archive.read(entry_points).decode()
    requires = [Requirement(r) for r in Parser().parsestr(text).get_all("Requires-Dist") or []]
    return requires, scripts


def test_unconditional_requirements_are_the_runtime_ones(wheel: Path) -> None:
    requires, _ = _metadata(wheel)
    unconditional = {r.name.lower() for r in requires if r.marker is None}
    assert unconditional == RUNTIME
    assert not unconditional & NEVER_AT_RUNTIME
    extras = {r.name.lower() for r in requires if r.marker is not None}
    assert {"kmock", "graphql-core"} <= extras, "the emulators' packages are behind an extra"


def test_console_scripts(wheel: Path) -> None:
    _, scripts = _metadata(wheel)
    assert "claw-operator = claw_operator.cli:main" in scripts
    assert "kubectl-claw = claw_kubectl.cli:main" in scripts


def test_wheel_carries_the_packages(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "claw_operator/py.typed" in names
    assert any(n.startswith("claw_kubectl/") for n in names)
    assert not any(n.startswith("tests/") for n in names)


@pytest.mark.parametrize("package", ["claw_operator", "claw_kubectl"])
def test_code_imports_only_what_the_runtime_requirements_bring(package: str) -> None:
    graph = grimp.build_graph(package, "claw_operator", include_external_packages=True)
    external = {
        module
        for module in graph.modules
        if not module.startswith(("claw_operator", "claw_kubectl"))
        and graph.find_modules_that_directly_import(module)
    }
    stdlib = set(sys.stdlib_module_names)
    third_party = {m.split(".")[0] for m in external} - stdlib
    allowed = set().union(*PROVIDED.values())
    assert third_party <= allowed, (
        f"imports outside the runtime requirements: {sorted(third_party - allowed)}"
    )


def test_indirect_providers_are_real_dependencies() -> None:
    """aiohttp and urllib3 are used but not declared: they must come with kopf and kubernetes."""
    kopf_requires = {Requirement(r).name.lower() for r in metadata.requires("kopf") or []}
    kubernetes_requires = {Requirement(r).name.lower() for r in metadata.requires("kubernetes") or []}
    assert "aiohttp" in kopf_requires
    assert "urllib3" in kubernetes_requires
