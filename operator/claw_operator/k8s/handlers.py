"""Kopf glue, and the only module that imports kopf. Handlers parse what Kopf hands them,
call the reconciler through OperatorState, and turn its events and retry hints into
Kopf's terms. No business logic lives here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

import kopf

from claw_operator.api.conditions import EventReason
from claw_operator.api.models import FINALIZER, GROUP, VERSION
from claw_operator.controller import Event, FinalizeRetry, Inputs
from claw_operator.controller.plan_status import plan_status
from claw_operator.k8s.operator_state import OperatorState
from claw_operator.rules.quota import InstanceEntry
from claw_operator.support import metrics
from claw_operator.support.metrics import timed_reconcile

log = logging.getLogger(__name__)

INSTANCES = (GROUP, VERSION, "clawinstances")
PLANS = (GROUP, VERSION, "clawplans")


def configure(settings: kopf.OperatorSettings) -> None:
    """Kopf's bookkeeping goes under our own prefix and stays small."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Our own events carry the stable reasons; Kopf's per-handler chatter would not.
    settings.posting.level = logging.ERROR
    settings.peering.standalone = True
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330


def _emit(body: kopf.Body, events: list[Event]) -> None:
    for event in events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message[:1024])


def _inputs(state: OperatorState, kwargs: dict[str, Any]) -> Inputs | None:
    """Desired-state inputs from Kopf's in-memory indexes. Kopf hands indexes to regular
    handlers but not to daemons; they are live views, so the daemon uses the ones the
    handlers saw (None until a handler has run)."""
    if "claw_plans" in kwargs:
        state.indexes = (kwargs["claw_plans"], kwargs["claw_instances"])
    if state.indexes is None:
        return None
    claw_plans, claw_instances = state.indexes
    plans = {name: next(iter(store)) for name, store in claw_plans.items() if len(store)}
    entries = [entry for store in claw_instances.values() for entry in store]
    return Inputs(plans=plans, get_secret=state.kube.get_secret, instances=entries)


def _aligned(delay: float) -> float:
    """Sleep to the next multiple of `delay` on the wall clock, so instances with the same
    cadence wake together and their Railway reads share one batched request."""
    return delay - (time.time() % delay) if delay > 0 else 0.0


def build_registry(plan_status_interval: float = 30.0) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        await memo.claw.aclose()

    @kopf.index(*PLANS, registry=registry, id="claw_plans")
    def claw_plans(name: str, spec: kopf.Spec, **_: Any) -> dict[str, dict[str, Any]]:
        return {name: dict(spec)}

    @kopf.index(*INSTANCES, registry=registry, id="claw_instances")
    def claw_instances(
        namespace: str | None, name: str, spec: kopf.Spec, meta: kopf.Meta, **_: Any
    ) -> dict[None, InstanceEntry]:
        owner = spec.get("owner") or {}
        railway = spec.get("railway") or {}
        return {
            None: InstanceEntry(
                namespace=namespace or "",
                name=name,
                created=str(meta.get("creationTimestamp", "")),
                plan=str(spec.get("planRef", "")),
                subscription_id=owner.get("subscriptionId") or None,
                managed=railway.get("mode", "Managed") != "SelfHosted",
                deleting=bool(meta.get("deletionTimestamp")),
            )
        }

    @kopf.on.resume(*INSTANCES, registry=registry, id="reconcile")
    @kopf.on.create(*INSTANCES, registry=registry, id="reconcile")
    @kopf.on.update(*INSTANCES, registry=registry, id="reconcile")
    async def reconcile_handler(
        body: kopf.Body, namespace: str | None, name: str, uid: str, memo: kopf.Memo, **kwargs: Any
    ) -> None:
        state: OperatorState = memo.claw
        inputs = _inputs(state, kwargs)
        assert inputs is not None  # regular handlers always receive the indexes
        events = await timed_reconcile(
            "clawinstance", state.reconcile_object(namespace or "", name, uid, inputs)
        )
        _emit(body, events)

    @kopf.daemon(*INSTANCES, registry=registry, id="resync", cancellation_timeout=10.0)
    async def resync(
        body: kopf.Body,
        namespace: str | None,
        name: str,
        uid: str,
        memo: kopf.Memo,
        stopped: kopf.DaemonStopped,
        **kwargs: Any,
    ) -> None:
        """The periodic resync: fast while deploying, slow when steady, and at once when a
        plan changes."""
        state: OperatorState = memo.claw
        wakeup = state.wakeup(uid)
        while not stopped:
            deadline = time.monotonic() + _aligned(state.next_delay(uid))
            while not stopped and not wakeup.is_set() and time.monotonic() < deadline:
                # Short slices, so a stop request is noticed within a second.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        wakeup.wait(), timeout=min(1.0, max(0.0, deadline - time.monotonic()))
                    )
            wakeup.clear()
            if stopped:
                break
            inputs = _inputs(state, kwargs)
            if inputs is None:
                continue
            try:
                events = await timed_reconcile(
                    "clawinstance", state.reconcile_object(namespace or "", name, uid, inputs)
                )
            except Exception:
                log.exception("resync of %s/%s failed; retrying on the next cycle", namespace, name)
                continue
            _emit(body, events)

    @kopf.on.delete(*INSTANCES, registry=registry, id="finalize")
    async def delete_handler(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        state: OperatorState = memo.claw
        try:
            events = await state.finalize_object(body)
        except FinalizeRetry as retry:
            kopf.event(body, type="Warning", reason=EventReason.DELETE_RETRYING, message=str(retry)[:1024])
            raise kopf.TemporaryError(str(retry), delay=retry.delay) from None
        _emit(body, events)

    @kopf.on.resume(*PLANS, registry=registry, id="plan")
    @kopf.on.create(*PLANS, registry=registry, id="plan")
    @kopf.on.update(*PLANS, registry=registry, id="plan")
    def plan_changed(name: str, memo: kopf.Memo, **kwargs: Any) -> None:
        _inputs(memo.claw, kwargs)
        memo.claw.wake_plan(name)

    @kopf.timer(*PLANS, registry=registry, id="plan-status", interval=plan_status_interval, initial_delay=0.5)
    def plan_status_timer(
        name: str,
        spec: kopf.Spec,
        status: kopf.Status,
        meta: kopf.Meta,
        patch: kopf.Patch,
        memo: kopf.Memo,
        **_: Any,
    ) -> None:
        indexes = memo.claw.indexes
        instances = (
            sum(1 for store in indexes[1].values() for entry in store if entry.plan == name) if indexes else 0
        )
        changes = plan_status(
            name, dict(spec), dict(status), instances, meta.get("generation"), datetime.now(UTC)
        )
        for key, value in changes.items():
            patch.status[key] = value
        metrics.plan_status(name, {**dict(status), **changes})

    return registry
