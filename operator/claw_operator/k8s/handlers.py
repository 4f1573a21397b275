"""Kopf glue. Handlers only tell the engine what the watches saw (instances, plans,
labelled Secrets); the engine's queue decides what runs and when. No per-object daemon,
no business logic here."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Mapping
from typing import Any, cast

import kopf

from claw_operator.api.models import GROUP, VERSION, WATCH_LABEL
from claw_operator.controller import Event
from claw_operator.k8s.engine import Engine

log = logging.getLogger(__name__)

INSTANCES = (GROUP, VERSION, "clawinstances")
PLANS = (GROUP, VERSION, "clawplans")
SECRETS = ("", "v1", "secrets")


def configure(settings: kopf.OperatorSettings) -> None:
    """Kopf's bookkeeping goes under our own prefix and stays small."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Our own events carry the stable reasons; Kopf's per-handler chatter would not.
    settings.posting.level = logging.ERROR
    settings.peering.standalone = True
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # Only labelled Secrets reach this operator: the API server filters them.
    settings.watching.label_selectors[SECRETS] = f"{WATCH_LABEL}=true"


class _Poster:
    """Posts events through Kopf's event queue. Kopf sets that queue up in the context of
    its watchers, after startup handlers ran; the engine's tasks started earlier, so
    posting runs in a context captured from a handler."""

    def __init__(self) -> None:
        self.context: contextvars.Context | None = None

    def capture(self) -> None:
        if self.context is None:
            self.context = contextvars.copy_context()

    def __call__(self, body: Mapping[str, Any], event: Event) -> None:
        if self.context is None:
            log.warning("event %s not posted: no Kopf context yet", event.reason)
            return
        self.context.run(_post, body, event)


def _post(body: Mapping[str, Any], event: Event) -> None:
    # kopf.event reads only the object reference (apiVersion, kind, metadata) of `body`.
    kopf.event(
        kopf.Body(cast(Any, dict(body))), type=event.type, reason=event.reason, message=event.message[:1024]
    )


def build_registry(
    make_engine: Callable[[], Engine], plan_status_interval: float = 30.0
) -> kopf.OperatorRegistry:
    """`make_engine` builds the engine at startup (inside Kopf's context, which its tasks
    inherit for API credentials and event posting)."""
    registry = kopf.OperatorRegistry()
    holder: dict[str, Engine] = {}
    poster = _Poster()

    def engine() -> Engine:
        return holder["engine"]

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        configure(settings)
        built = make_engine()
        # The rollout coordinator writes the whole plan status (instances, Valid, rollout).
        built.coordinator.resync_seconds = plan_status_interval
        built.emit = poster
        holder["engine"] = built
        memo.claw = built
        await built.start(settings)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        if "engine" in holder:
            await holder["engine"].aclose()

    @kopf.on.event(*INSTANCES, registry=registry)
    async def instance_seen(type: str | None, body: kopf.Body, **_: Any) -> None:
        poster.capture()
        engine().instance_event(type, body)

    @kopf.on.event(*PLANS, registry=registry)
    async def plan_seen(type: str | None, name: str, spec: kopf.Spec, body: kopf.Body, **_: Any) -> None:
        engine().plan_event(type, name, spec, body)

    # No client-side label filter: a Secret that loses the label arrives as DELETED with
    # its new labels, and the engine must hear of it.
    @kopf.on.event(*SECRETS, registry=registry)
    async def secret_seen(type: str | None, body: kopf.Body, **_: Any) -> None:
        engine().secret_event(type, body)

    return registry
