"""Deleting a ClawInstance: honour deletionPolicy, believe a delete only once a read says the
project is gone, and keep the finalizer (FinalizeRetry) while Railway cannot be reached."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from claw_operator.api.conditions import EventReason
from claw_operator.api.models import EXTERNAL_NAME_ANNOTATION, PAUSED_ANNOTATION
from claw_operator.controller.act import Event, Persist
from claw_operator.controller.errors import backoff
from claw_operator.controller.ports import DEFAULT_TOKEN_TIER, TOKEN_TIERS, TokenTier
from claw_operator.controller.reconciler import Runtime, token_fingerprint
from claw_operator.controller.resolve import SecretGetter
from claw_operator.railway.errors import RailwayAuthError, RailwayError, RailwayNotFoundError
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
    """Honour deletionPolicy and managementPolicy. Returns when the finalizer may go; raises
    FinalizeRetry while a project that exists cannot be deleted yet.

    An object that never reached Railway (no project id in status, no external-name, and
    no project found by name and marker when a token is usable) is released at once: an
    invalid object, or one whose token Secret never existed, is never stuck in Deleting."""
    meta: Mapping[str, Any] = body.get("metadata", {})
    namespace, name = str(meta.get("namespace", "")), str(meta["name"])
    uid = str(meta.get("uid") or f"{namespace}/{name}")
    annotations: Mapping[str, str] = meta.get("annotations") or {}
    status: Mapping[str, Any] = body.get("status") or {}
    refs: Mapping[str, Any] = status.get("railway") or {}
    applied: Mapping[str, Any] = status.get("applied") or {}
    spec: Mapping[str, Any] = body.get("spec") or {}
    runtime.health.forget(uid)
    if spec.get("managementPolicy") == "Observe":
        return [
            Event(
                "Normal",
                EventReason.RETAINED,
                "managementPolicy is Observe: the Railway project is left in place.",
            )
        ]
    if spec.get("deletionPolicy", "Delete") == "Retain":
        return [
            Event(
                "Normal",
                EventReason.RETAINED,
                "deletionPolicy is Retain: the Railway project is left in place.",
            )
        ]
    project_id: str | None = refs.get("projectId") or annotations.get(EXTERNAL_NAME_ANNOTATION)
    if annotations.get(PAUSED_ANNOTATION) == "true":
        # Paused for work by hand on Railway: deleting the project now would pull it away
        # from under that work. Nothing recorded means nothing to wait for.
        if not project_id:
            return [_never_reached()]
        raise FinalizeRetry(
            f"Reconciliation is paused ({PAUSED_ANNOTATION}); remove the annotation to delete Railway "
            f"project {project_id}, or set deletionPolicy: Retain to leave it.",
            runtime.settings.resync_seconds,
        )
    token, tier, unusable = await _token(spec, namespace, get_secret, runtime)
    if unusable is None and applied.get("refusedToken") == token_fingerprint(runtime, token):
        unusable = "Railway refused the token"
    if unusable is not None:
        if not project_id:
            return [_never_reached()]
        raise FinalizeRetry(
            f"Cannot delete Railway project {project_id}: {unusable}; "
            "fix it, or set deletionPolicy: Retain to leave the project in place.",
            runtime.settings.resync_seconds,
        )
    secrets = frozenset({token}) if token else frozenset()
    settings = runtime.settings
    railway: Mapping[str, Any] = spec.get("railway") or {}
    try:
        rail = runtime.handle_for(token, tier).client
        if not project_id:
            # A crash right after create leaves no record: look it up, as for adoption.
            try:
                found = await rail.find_project(
                    project_name(settings.project_prefix, namespace, name),
                    project_marker(settings.cluster_name, namespace, name),
                    railway.get("workspaceId") or (settings.railway_workspace_id if token is None else None),
                )
            except RailwayAuthError:
                return [_never_reached()]  # nothing this token could have created
            if found is None:
                return [_never_reached()]
            project_id = found.id
        if status.get("phase") != "Deleting":
            await persist({"phase": "Deleting", "message": "Deleting the instance."}, None)
        await rail.delete_project(project_id)
        # Believe a delete only once a read says the project is gone.
        try:
            await rail.get_project(project_id)
        except RailwayNotFoundError:
            pass
        else:
            raise FinalizeRetry("The Railway project still exists after delete; retrying.", 5.0)
    except RailwayError as exc:
        delay = backoff(runtime.failures, uid, getattr(exc, "retry_after", None))
        message = redact(str(exc), secrets)
        await persist(
            {
                "phase": "Deleting",
                "message": f"Deleting: Railway failed ({message}); retrying in {delay:.0f}s.",
            },
            None,
        )
        raise FinalizeRetry(f"Railway failed during delete: {message}", delay) from None
    runtime.failures.pop(uid, None)
    return [
        Event(
            "Normal", EventReason.DELETED, f"Deleted Railway project {refs.get('projectName') or project_id}."
        )
    ]


def _never_reached() -> Event:
    return Event(
        "Normal", EventReason.DELETED, "Nothing to delete on Railway: the instance never reached it."
    )


async def _token(
    spec: Mapping[str, Any], namespace: str, get_secret: SecretGetter, runtime: Runtime
) -> tuple[str | None, TokenTier, str | None]:
    """(token, tier, why it cannot be used or None). None as the token is the platform's."""
    railway: Mapping[str, Any] = spec.get("railway") or {}
    if railway.get("mode") != "SelfHosted":
        if runtime.settings.railway_token is None:
            return None, DEFAULT_TOKEN_TIER, "RAILWAY_TOKEN is not set"
        return None, DEFAULT_TOKEN_TIER, None
    ref: Mapping[str, Any] = railway.get("tokenSecretRef") or {}
    secret, key = str(ref.get("name", "")), str(ref.get("key", ""))
    data = await get_secret(namespace, secret) if secret else None
    token = (data or {}).get(key)
    if not token:
        return (
            None,
            DEFAULT_TOKEN_TIER,
            (f"the token Secret {namespace}/{secret} (key {key!r}, spec.railway.tokenSecretRef) is missing"),
        )
    return token, _tier(data or {}), None
