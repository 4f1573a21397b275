"""One health probe over the pooled aiohttp session, against a real server on 127.0.0.1:
what each kind of answer (or its absence) turns into."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from claw_operator.fleet.health import BODY_LIMIT, PooledGet, probe

PEERS: list[object] = []


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async def ok(request: web.Request) -> web.Response:
        PEERS.append(request.transport.get_extra_info("peername") if request.transport else None)
        return web.Response(text="ok")

    async def down(request: web.Request) -> web.Response:
        return web.Response(status=503, text="down")

    async def moved(request: web.Request) -> web.Response:
        # Not followed: a redirect answers, so the instance is up.
        raise web.HTTPFound("http://192.0.2.1/elsewhere")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    async def huge(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * (BODY_LIMIT * 4))

    app = web.Application()
    for path, handler in {"/ok": ok, "/down": down, "/moved": moved, "/slow": slow, "/huge": huge}.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_answers_become_results(server: str) -> None:
    get = PooledGet(limit=4)
    try:
        assert (await probe(get, server + "/ok", 2)).ok
        assert (await probe(get, server + "/moved", 2)).ok
        down = await probe(get, server + "/down", 2)
        assert not down.ok and down.error == "HTTP 503"
        slow = await probe(get, server + "/slow", 0.2)
        assert not slow.ok and slow.error == "no answer within 0.2s"
        refused = await probe(get, f"http://127.0.0.1:{closed_port()}/health", 2)
        assert not refused.ok and refused.error.startswith("connection failed (")
        # A body far past the limit is not read in full, and the session stays usable.
        assert (await probe(get, server + "/huge", 2)).ok
        assert (await probe(get, server + "/ok", 2)).ok
    finally:
        await get.aclose()


async def test_connections_are_reused(server: str) -> None:
    get = PooledGet(limit=2)
    PEERS.clear()
    try:
        for _ in range(20):
            assert await get(server + "/ok", 2) == 200
        # Twenty sequential probes over one kept-alive connection, not twenty connections.
        assert len(PEERS) == 20 and len(set(PEERS)) == 1
    finally:
        await get.aclose()
