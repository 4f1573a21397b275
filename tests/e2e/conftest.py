"""The kind end-to-end suite runs only where a real cluster is: CI's e2e job, or a laptop
with Docker and kind (`kind create cluster`, then `CLAW_E2E_KIND=1 pytest tests/e2e`).
Everywhere else every test is skipped with the reason, instead of failing on a missing
Docker engine."""

from __future__ import annotations

import os
import shutil

import pytest

SKIP_REASON = "no Docker engine / kind cluster: set CLAW_E2E_KIND=1 with a kind cluster to run"


def e2e_enabled() -> tuple[bool, str]:
    if os.environ.get("CLAW_E2E_KIND") != "1":
        return False, SKIP_REASON
    if shutil.which("kubectl") is None:
        return False, "kubectl is not on PATH (needed to talk to the kind cluster)"
    return True, ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    enabled, reason = e2e_enabled()
    here = os.path.dirname(__file__)
    for item in items:
        if not str(item.fspath).startswith(here):
            continue
        item.add_marker(pytest.mark.e2e)
        if not enabled:
            item.add_marker(pytest.mark.skip(reason=reason))
