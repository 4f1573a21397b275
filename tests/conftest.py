"""Shared pytest setup. Fixtures live in tests/fixtures/, one module per concern."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

pytest_plugins = [
    "tests.fixtures.common",
    "tests.fixtures.railway",
    "tests.fixtures.kubernetes",
    "tests.fixtures.operator",
]


@pytest.fixture(autouse=True)
async def _fail_on_leaked_tasks() -> AsyncIterator[None]:
    """Every test: fail it when it leaves asyncio tasks running behind it. Autouse fixtures
    are set up first, so this one is torn down last, after the fixtures that start servers
    and clients have stopped them."""
    before = set(asyncio.all_tasks())
    yield
    for _ in range(3):  # let cancellations already under way finish
        await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]
    for task in leaked:
        task.cancel()
    assert not leaked, f"leaked asyncio tasks: {[t.get_name() for t in leaked]}"
