"""Waiting for an event with a timeout without an extra task (asyncio.wait_for wraps the
wait in a task of its own; long-lived loops would hold one each, forever)."""

from __future__ import annotations

import asyncio


async def wait_or_timeout(event: asyncio.Event, seconds: float | None) -> None:
    """Return when `event` is set or `seconds` passed (None: no limit)."""
    if seconds is None:
        await event.wait()
        return
    handle = asyncio.get_running_loop().call_later(max(0.0, seconds), event.set)
    try:
        await event.wait()
    finally:
        handle.cancel()
