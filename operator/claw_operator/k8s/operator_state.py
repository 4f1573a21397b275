"""The operator's long-lived wiring: Railway clients per token, per-object locks and
wake-ups, and the glue between Kopf's bodies and the reconciler. Holds no state a
restart would need: only connections, caches and coordination."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from claw_operator.config import Settings
from claw_operator.controller import (
    Event,
    Inputs,
    Outcome,
    RailwayHandle,
    Runtime,
    TokenTier,
    finalize,
    reconcile,
)
from claw_operator.fleet.health import HealthProber, InlineHealth
from claw_operator.fleet.observer import FleetObserver
from claw_operator.k8s.kube import KubeApi, merge_patch
from claw_operator.railway.accounting import Accounting
from claw_operator.railway.budget import budget_for, budget_for_tier
from claw_operator.railway.client import RailwayClient
from claw_operator.railway.errors import RailwayAuthError
from claw_operator.support import metrics
from claw_operator.support.fingerprint import fingerprint

log = logging.getLogger(__name__)


@dataclass
class OperatorState:
    settings: Settings
    kube: KubeApi
    accounting: Accounting = field(default_factory=Accounting)
    runtime: Runtime = field(init=False)
    health: InlineHealth = field(init=False)
    _handles: dict[str, RailwayHandle] = field(default_factory=dict)
    _connections: list[tuple[RailwayClient, FleetObserver]] = field(default_factory=list)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _wakeups: dict[str, asyncio.Event] = field(default_factory=dict)
    _next_delay: dict[str, float] = field(default_factory=dict)
    _plan_of: dict[str, str] = field(default_factory=dict)
    # Kopf's live index views (plans, instances), kept for the daemons.
    indexes: tuple[Any, Any] | None = None

    def __post_init__(self) -> None:
        self.health = InlineHealth(HealthProber(self.settings.health_url_template))
        self.runtime = Runtime(settings=self.settings, handle_for=self.handle_for, health=self.health)

    # ------------------------------------------------------------ Railway
    def handle_for(self, token: str | None, tier: TokenTier = "hobby") -> RailwayHandle:
        """The client for the platform token (None) or a tenant's token; never keyed by
        the raw token, and a tenant token is only ever used for its own instances."""
        key = (
            "platform" if token is None else fingerprint(self.runtime.fingerprint_key, ["token", token, tier])
        )
        handle = self._handles.get(key)
        if handle is None:
            settings = self.settings
            if token is None:
                if settings.railway_token is None:
                    raise RailwayAuthError(
                        "RAILWAY_TOKEN is not set; Managed instances need the platform token"
                    )
                secret = settings.railway_token.get_secret_value()
                budget = budget_for(
                    secret, rps=settings.railway_rate_limit_rps, rph=settings.railway_rate_limit_rph
                )
            else:
                # Tenant budgets by the Secret's tier (railway/budget.py), shared per token.
                secret, budget = token, budget_for_tier(token, tier)
            client = RailwayClient(
                url=settings.railway_api_url,
                token=secret,
                budget=budget,
                accounting=self.accounting,
                batch_size=settings.batch_size,
            )
            observer = FleetObserver(
                client, window=settings.batch_window_seconds, batch_size=settings.batch_size
            )
            handle = RailwayHandle(client=client, observer=observer)
            self._handles[key] = handle
            self._connections.append((client, observer))
        return handle

    async def aclose(self) -> None:
        for client, observer in self._connections:
            await observer.aclose()
            await client.aclose()
        self._connections.clear()
        self._handles.clear()
        await self.health.aclose()

    # ------------------------------------------------------------ coordination
    def lock(self, uid: str) -> asyncio.Lock:
        return self._locks.setdefault(uid, asyncio.Lock())

    def wakeup(self, uid: str) -> asyncio.Event:
        return self._wakeups.setdefault(uid, asyncio.Event())

    def wake(self, uid: str) -> None:
        self.wakeup(uid).set()

    def wake_plan(self, plan: str) -> None:
        for uid, name in self._plan_of.items():
            if name == plan:
                self.wake(uid)

    def next_delay(self, uid: str) -> float:
        return self._next_delay.get(uid, self.settings.deploying_poll_seconds)

    def forget(self, uid: str) -> None:
        for table in (self._locks, self._wakeups, self._next_delay, self._plan_of):
            table.pop(uid, None)  # type: ignore[attr-defined]

    # ------------------------------------------------------------ reconcile glue
    async def reconcile_object(self, namespace: str, name: str, uid: str, inputs: Inputs) -> list[Event]:
        """Reconcile the latest copy of one object under its lock; write status only on change."""
        async with self.lock(uid):
            # Read under the lock: Kopf's copy may predate the status another pass just wrote.
            fresh = await self.kube.get_instance(namespace, name)
            if fresh is None or fresh.get("metadata", {}).get("deletionTimestamp"):
                return []
            self._plan_of[uid] = str((fresh.get("spec") or {}).get("planRef", ""))
            started = time.monotonic()
            writer = StatusWriter(self.kube, namespace, name, dict(fresh.get("status") or {}))
            outcome: Outcome = await reconcile(fresh, self.runtime, inputs, writer.persist)
            await writer.write(outcome.status)
            metrics.instance_status(fresh, outcome.status)
            self._next_delay[uid] = outcome.requeue_after
            log.debug("reconciled %s/%s in %.3fs", namespace, name, time.monotonic() - started)
            return outcome.events

    async def finalize_object(self, body: Mapping[str, Any]) -> list[Event]:
        meta = body.get("metadata", {})
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name"))
        uid = str(meta.get("uid"))
        async with self.lock(uid):
            writer = StatusWriter(self.kube, namespace, name, dict(body.get("status") or {}))
            events = await finalize(body, self.runtime, self.kube.get_secret, writer.persist)
        self.forget(uid)
        metrics.instance_gone(namespace, name)
        return events


class StatusWriter:
    """Writes one object's status as merge patches of only what differs from what it last
    wrote, so an unchanged status costs no Kubernetes write."""

    def __init__(self, kube: KubeApi, namespace: str, name: str, current: dict[str, Any]) -> None:
        self._kube, self._namespace, self._name = kube, namespace, name
        self._written = current

    async def write(self, status: dict[str, Any]) -> None:
        patch = merge_patch(self._written, status)
        if patch:
            await self._kube.patch_status(self._namespace, self._name, patch)
            self._written = status

    async def persist(self, partial: dict[str, Any], annotations: dict[str, str] | None) -> None:
        """Record part of the status (and annotations) at once, mid-reconcile."""
        await self.write({**self._written, **partial})
        if annotations:
            await self._kube.patch_annotations(self._namespace, self._name, annotations)
