"""Deleting a ClawInstance: honour deletionPolicy, believe a delete only once a read says the
project is gone, and keep the finalizer (FinalizeRetry) while Railway cannot be reached."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from claw_operator.api.conditions import EventReason
from claw_operator.api.models import EXTERNAL_NAME_ANNOTATION
from claw_operator.controller.act import Event, Persist
from claw_operator.controller.errors import backoff
from claw_operator.controller.ports import DEFAULT_TOKEN_TIER, TOKEN_TIERS, TokenTier
from claw_operator.controller.reconciler import Runtime
from claw_operator.controller.resolve import SecretGetter
from claw_operator.railway.errors import RailwayError, RailwayNotFoundError
from claw_operator.rules.naming import project_marker, project_name
from claw_operator.support.redact import redact


class FinalizeRetry(Exception):
    """Deletion must wait (Railway unreachable); the finalizer stays."""

    def __init__(self, message: str, delay: float) -> None:
        super().__init__(message)
        self.delay = delay


def _tier(data: Mapping[str, str]) -> TokenTier:
    raw = data.get("tier")
    return next((t for t in TOKEN_TIERS if t == raw), DEFAULT_TOKEN_TIER)


async def finalize(
    body: Mapping[str, Any], runtime: Runtime, get_secret: SecretGetter, persist: Persist
) -> list[Event]:
    """Honour deletionPolicy. Returns when the finalizer may go; raises FinalizeRetry."""
    meta: Mapping[str, Any] = body.get("metadata", {})
    namespace, name = str(meta.get("namespace", "")), str(meta["name"])
    uid = str(meta.get("uid") or f"{namespace}/{name}")
    annotations: Mapping[str, str] = meta.get("annotations") or {}
    status: Mapping[str, Any] = body.get("status") or {}
    refs: Mapping[str, Any] = status.get("railway") or {}
    spec: Mapping[str, Any] = body.get("spec") or {}
    events: list[Event] = []
    runtime.health.forget(uid)
    if status.get("phase") != "Deleting":
        await persist({"phase": "Deleting", "message": "Deleting the instance."}, None)
    if spec.get("deletionPolicy", "Delete") == "Retain":
        events.append(
            Event(
                "Normal",
                EventReason.RETAINED,
                "deletionPolicy is Retain: the Railway project is left in place.",
            )
        )
        return events
    token: str | None = None
    tier: TokenTier = DEFAULT_TOKEN_TIER
    railway: Mapping[str, Any] = spec.get("railway") or {}
    secrets: frozenset[str] = frozenset()
    if railway.get("mode") == "SelfHosted":
        ref = railway.get("tokenSecretRef") or {}
        data = await get_secret(namespace, str(ref.get("name", ""))) if ref.get("name") else None
        token = (data or {}).get(str(ref.get("key", "")))
        if not token:
            raise FinalizeRetry(
                "Cannot delete the Railway project: the token Secret in spec.railway.tokenSecretRef is "
                "missing; "
                "restore it, or set deletionPolicy: Retain.",
                runtime.settings.resync_seconds,
            )
        tier = _tier(data or {})
        secrets = frozenset({token})
    settings = runtime.settings
    try:
        rail = runtime.handle_for(token, tier).client
        project_id = refs.get("projectId") or annotations.get(EXTERNAL_NAME_ANNOTATION)
        if not project_id:
            # A crash right after create leaves no record: look it up, as for adoption.
            found = await rail.find_project(
                project_name(settings.project_prefix, namespace, name),
                project_marker(settings.cluster_name, namespace, name),
                railway.get("workspaceId") or (settings.railway_workspace_id if token is None else None),
            )
            project_id = found.id if found else None
        if project_id:
            await rail.delete_project(project_id)
            # Believe a delete only once a read says the project is gone.
            try:
                await rail.get_project(project_id)
            except RailwayNotFoundError:
                events.append(
                    Event(
                        "Normal",
                        EventReason.DELETED,
                        f"Deleted Railway project {refs.get('projectName') or project_id}.",
                    )
                )
            else:
                raise FinalizeRetry("The Railway project still exists after delete; retrying.", 5.0)
    except RailwayError as exc:
        delay = backoff(runtime.failures, uid, getattr(exc, "retry_after", None))
        message = redact(str(exc), secrets)
        await persist({"message": f"Deleting: Railway failed ({message}); retrying in {delay:.0f}s."}, None)
        raise FinalizeRetry(f"Railway failed during delete: {message}", delay) from None
    runtime.failures.pop(uid, None)
    return events
