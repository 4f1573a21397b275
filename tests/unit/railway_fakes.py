"""Test doubles for the Railway client's unit tests: a scripted GraphQL endpoint behind
httpx.MockTransport, and virtual time so waits are asserted, never waited for."""

from __future__ import annotations

import asyncio
import heapq
import json
import random
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from claw_operator.railway.accounting import Accounting
from claw_operator.railway.budget import RateBudget
from claw_operator.railway.client import RailwayClient

T = TypeVar("T")
URL = "https://railway.test/graphql/v2"
TOKEN = "test-token-0123456789"

Responder = httpx.Response | Exception | Callable[[dict[str, Any]], httpx.Response]


def ok(data: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(200, json={"data": data}, headers=headers)


def gql_error(
    message: str,
    *,
    path: list[str] | None = None,
    data: dict[str, Any] | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    error: dict[str, Any] = {"message": message}
    if path is not None:
        error["path"] = path
    return httpx.Response(status, json={"data": data, "errors": [error]}, headers=headers)


@dataclass
class Sent:
    body: dict[str, Any]
    headers: httpx.Headers

    @property
    def operation(self) -> str:
        return str(self.body["operationName"])

    @property
    def variables(self) -> dict[str, Any]:
        return dict(self.body["variables"])

    @property
    def query(self) -> str:
        return str(self.body["query"])


@dataclass
class FakeRailway:
    """Answers each request with the next scripted responder, then with `default`."""

    script: list[Responder] = field(default_factory=list)
    default: Responder | None = None
    sent: list[Sent] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.sent.append(Sent(body=body, headers=request.headers))
        responder = self.script.pop(0) if self.script else self.default
        if responder is None:
            raise AssertionError(f"unexpected request {body['operationName']}")
        if isinstance(responder, Exception):
            raise responder
        if callable(responder):
            return responder(body)
        return responder

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    @property
    def operations(self) -> list[str]:
        return [s.operation for s in self.sent]


class VirtualTime:
    """A clock and a sleep that never wait for real. Single-task tests: every sleep just
    moves the clock. Concurrent tests: run the tasks with `run()`, which moves the clock
    to the earliest sleeper once every task is blocked."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._sequence = 0
        self._driven = False

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if not self._driven:
            self.now += max(0.0, seconds)
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), self._sequence, future))
        self._sequence += 1
        await future

    async def run(self, *coroutines: Coroutine[Any, Any, T]) -> list[T]:
        self._driven = True
        tasks = [asyncio.ensure_future(c) for c in coroutines]
        try:
            for _ in range(1_000_000):
                # Let every runnable task run until it blocks (in-memory I/O needs a few turns).
                for _ in range(30):
                    await asyncio.sleep(0)
                if all(t.done() for t in tasks):
                    break
                if self._sleepers:
                    wake_at, _, future = heapq.heappop(self._sleepers)
                    self.now = max(self.now, wake_at)
                    future.set_result(None)
            else:  # pragma: no cover
                raise AssertionError("virtual time: tasks never finished")
            return [t.result() for t in tasks]
        finally:
            for task in tasks:
                task.cancel()
            self._driven = False


def unlimited_budget(time: VirtualTime) -> RateBudget:
    return RateBudget(rps=None, rph=None, clock=time.clock, sleep=time.sleep)


def make_client(
    fake: FakeRailway,
    time: VirtualTime | None = None,
    *,
    budget: RateBudget | None = None,
    token: str = TOKEN,
    seed: int = 7,
    accounting: Accounting | None = None,
    **options: Any,
) -> RailwayClient:
    time = time or VirtualTime()
    return RailwayClient(
        url=URL,
        token=token,
        budget=budget if budget is not None else unlimited_budget(time),
        accounting=accounting if accounting is not None else Accounting(),
        transport=fake.transport(),
        sleep=time.sleep,
        rng=random.Random(seed),
        wall_clock=lambda: 1_700_000_000.0,
        **options,
    )


async def gather_virtual(time: VirtualTime, *awaitables: Awaitable[T]) -> list[T]:
    async def wrap(aw: Awaitable[T]) -> T:
        return await aw

    return await time.run(*(wrap(a) for a in awaitables))
