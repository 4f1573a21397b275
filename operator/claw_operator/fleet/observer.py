"""Batched reads of the fleet: concurrent `observe()` calls for one token are coalesced
into one aliased GraphQL request (up to the client's batch size), which Railway counts
once. Reconciles of a steady fleet wake on aligned ticks, so they arrive together."""

from __future__ import annotations

import asyncio
from typing import Protocol

from claw_operator.railway.types import ServiceInstanceRef, ServiceInstanceState


class FleetReader(Protocol):
    async def observe_fleet(
        self, refs: list[ServiceInstanceRef], *, with_variables: bool
    ) -> dict[ServiceInstanceRef, ServiceInstanceState]: ...


class FleetObserver:
    def __init__(self, reader: FleetReader, *, window: float, batch_size: int) -> None:
        self._reader = reader
        self._window = window
        self._batch_size = batch_size
        self._pending: dict[bool, dict[ServiceInstanceRef, asyncio.Future[ServiceInstanceState]]] = {
            False: {},
            True: {},
        }
        self._flushers: set[asyncio.Task[None]] = set()

    async def observe(self, ref: ServiceInstanceRef, *, with_variables: bool) -> ServiceInstanceState:
        pending = self._pending[with_variables]
        future = pending.get(ref)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            pending[ref] = future
            if len(pending) == 1 or len(pending) >= self._batch_size:
                delay = 0.0 if len(pending) >= self._batch_size else self._window
                task = asyncio.create_task(self._flush(with_variables, delay), name="claw-fleet-read")
                self._flushers.add(task)
                task.add_done_callback(self._flushers.discard)
        return await asyncio.shield(future)

    async def _flush(self, with_variables: bool, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        batch = self._pending[with_variables]
        if not batch:
            return
        self._pending[with_variables] = {}
        try:
            states = await self._reader.observe_fleet(list(batch), with_variables=with_variables)
        except Exception as exc:
            for future in batch.values():
                if not future.done():
                    future.set_exception(exc)
            return
        for ref, future in batch.items():
            if not future.done():
                future.set_result(states.get(ref) or ServiceInstanceState(ref=ref, found=False))

    async def aclose(self) -> None:
        for task in list(self._flushers):
            task.cancel()
        await asyncio.gather(*self._flushers, return_exceptions=True)
