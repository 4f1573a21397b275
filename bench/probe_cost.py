"""CPU per health probe: the operator's aiohttp session against an httpx client, the same
GETs to one local endpoint with the prober pool's concurrency. Printed, never asserted.

Why it matters: the prober pool sends one GET per instance per health interval (1,000
instances at 60 s: ~17 a second, all day), so per-request overhead is idle CPU.

Usage: .venv/bin/python bench/probe_cost.py [--requests 3000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable

import httpx
from aiohttp import web

from claw_operator.fleet.health import PooledGet


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


async def per_request(
    get: Callable[[str, float], Awaitable[int]], url: str, requests: int, workers: int
) -> float:
    """Microseconds of this process's CPU per GET (the server's share included: it is the
    same for both clients)."""

    async def worker() -> None:
        for _ in range(requests // workers):
            assert await get(url, 5.0) == 200

    await asyncio.gather(*(worker() for _ in range(workers)))  # warm the pool
    started = cpu_seconds()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return (cpu_seconds() - started) / (requests // workers * workers) * 1e6


async def server_only(url: str, requests: int) -> float:
    """The server's own CPU per request, measured with a raw keep-alive socket client."""
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    request = f"GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    started = cpu_seconds()
    for _ in range(requests):
        writer.write(request)
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
    elapsed = cpu_seconds() - started
    writer.close()
    return elapsed / requests * 1e6


async def main(requests: int, workers: int) -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/health", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/health"
    try:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=workers)) as client:

            async def httpx_get(target: str, within: float) -> int:
                response = await client.get(target, timeout=within, follow_redirects=False)
                return response.status_code

            with_httpx = await per_request(httpx_get, url, requests, workers)
        pooled = PooledGet(limit=workers)
        try:
            with_aiohttp = await per_request(pooled, url, requests, workers)
        finally:
            await pooled.aclose()
        server = await server_only(url, requests)
    finally:
        await runner.cleanup()
    print(f"## bench/probe_cost.py --requests {requests} --concurrency {workers}")
    print("| client | CPU per probe, client and server | client alone (less the server's share) |")
    print("| --- | --- | --- |")
    print(f"| httpx.AsyncClient | {with_httpx:.0f} µs | ~{max(0.0, with_httpx - server):.0f} µs |")
    print(
        f"| aiohttp (PooledGet, what the operator uses) | {with_aiohttp:.0f} µs"
        f" | ~{max(0.0, with_aiohttp - server):.0f} µs |"
    )
    print(f"| the server's share (raw keep-alive socket client) | {server:.0f} µs | |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.requests, arguments.concurrency))
