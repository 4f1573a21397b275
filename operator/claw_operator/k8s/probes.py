"""The metrics port: `/metrics` (Prometheus), `/healthz` (the event loop answers) and
`/readyz` (watches established, caches synced). Served with aiohttp, which Kopf brings.

Readiness is a small registry of named gates that the Kubernetes layer flips: the pod is
ready when every registered gate is open. `claw-operator run` registers "kopf" and opens
it when Kopf's ready flag fires; the fleet engine can register its own (watch caches
synced, leases held) without touching this module."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from claw_operator.support import metrics

DEFAULT_HOST = "0.0.0.0"


@dataclass
class Readiness:
    """Named readiness gates; ready when there is at least one and all are open."""

    _gates: dict[str, bool] = field(default_factory=dict)

    def register(self, name: str) -> None:
        self._gates.setdefault(name, False)

    def set(self, name: str, ready: bool = True) -> None:
        self._gates[name] = ready

    @property
    def ready(self) -> bool:
        return bool(self._gates) and all(self._gates.values())

    def waiting_for(self) -> list[str]:
        return sorted(name for name, ready in self._gates.items() if not ready)


readiness = Readiness()


def build_app(gates: Readiness | None = None) -> web.Application:
    gates = gates if gates is not None else readiness

    async def healthz(_: web.Request) -> web.Response:
        # Answering at all proves the event loop is not blocked.
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if gates.ready:
            return web.Response(text="ok\n")
        waiting = ", ".join(gates.waiting_for()) or "startup"
        return web.Response(status=503, text=f"not ready: waiting for {waiting}\n")

    async def metrics_page(_: web.Request) -> web.Response:
        response = web.Response(body=metrics.exposition())
        response.content_type = "text/plain"
        response.headers["Content-Type"] = metrics.CONTENT_TYPE
        return response

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)
    return app


class ProbeServer:
    """`async with ProbeServer(port):` serves until the block ends. Port 0 picks a free
    port (`.port` tells which)."""

    def __init__(self, port: int, host: str = DEFAULT_HOST, gates: Readiness | None = None) -> None:
        self._host, self._requested = host, port
        self._runner = web.AppRunner(build_app(gates), access_log=None)
        self.port = port

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._requested)
        await site.start()
        server = site._server  # aiohttp keeps the bound socket here
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def __aenter__(self) -> ProbeServer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()


async def open_gate_when_set(flag: asyncio.Event, name: str, gates: Readiness | None = None) -> None:
    """Open readiness gate `name` once `flag` is set (Kopf's ready_flag)."""
    gates = gates if gates is not None else readiness
    gates.register(name)
    await flag.wait()
    gates.set(name)
