"""Keeps SelfHosted OAuth access tokens fresh: a background task that refreshes each
token Secret carrying `refreshToken`, `clientId`, `clientSecret` (optional for public
clients) and `expiresAt` before the access token expires (API.md, "Tokens for SelfHosted
instances"). The reconcile path is untouched: it reads the access token from the Secret
as always, so it only ever uses a token that is already stored.

Railway rotates refresh tokens and a used one stops working, so a refresh token must be
presented at most once, also across a crash. The journal that guarantees it is an
annotation on the Secret itself, `claw.io/oauth-refresh`, holding a fingerprint (HMAC
under CLAW_FINGERPRINT_KEY, never the token) of the refresh token being spent:

1. write the journal with a resourceVersion precondition (a conflict means another
   writer, another replica or a person, got there first: re-read, do nothing now);
2. call the token endpoint;
3. write the new access token, refresh token and expiresAt and remove the journal in
   one write, again with the precondition (on a conflict: re-read and write again unless
   someone replaced the credentials meanwhile, whose newer write then wins).

A journal that names the Secret's current refresh token means step 2 may have happened
without step 3 (the process died between them): that refresh token may be spent, and
the new one is lost. It is never presented again; the Secret is reported (a Warning event
`RailwayAuthFailed` on the Secret, `problem()` for the instances' status) until a person
re-authorizes and writes new credentials, which changes the fingerprint. A journal younger
than IN_FLIGHT_GRACE is another replica's refresh in progress and is waited for.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from claw_operator.api.conditions import Reason
from claw_operator.config import Settings
from claw_operator.k8s.kube import KubeApi
from claw_operator.k8s.secret_store import KubeApiSecretStore, SecretConflict, SecretCopy, SecretStoreError
from claw_operator.railway.oauth import OAuthClient, OAuthError, OAuthUnavailableError, TokenGrant
from claw_operator.support.clock import now_rfc3339, parse_time
from claw_operator.support.fingerprint import fingerprint

log = logging.getLogger(__name__)

JOURNAL_ANNOTATION = "claw.io/oauth-refresh"
REFRESH_TOKEN_KEY, CLIENT_ID_KEY, CLIENT_SECRET_KEY, EXPIRES_AT_KEY = (
    "refreshToken",
    "clientId",
    "clientSecret",
    "expiresAt",
)
# Railway's access tokens last an hour; refreshing with a quarter of it left leaves time
# for retries and for a slow endpoint, and never lets a reconcile meet an expired token.
REFRESH_LEAD = timedelta(minutes=15)
# A refresh (journal write, endpoint call, Secret write) takes seconds; a journal older
# than this belongs to a process that died in the middle.
IN_FLIGHT_GRACE = timedelta(minutes=2)
# Without an OAuth expiry to go by, look at a Secret again this often (keys may be added).
RECHECK = timedelta(minutes=10)
# After a failure that left the refresh token provably unused.
RETRY_AFTER = timedelta(seconds=30)
# A refreshed pair that could not be written yet is retried this soon.
PENDING_RETRY = timedelta(seconds=5)
_MAX_WRITE_ATTEMPTS = 5


@dataclass(frozen=True)
class _Pending:
    """A refreshed pair not yet stored: the fingerprint of the refresh token it replaces,
    the Secret keys to write, and when its access token expires."""

    spent: str
    data: dict[str, str] = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True)
class TokenRef:
    """A SelfHosted instance's token Secret and the key that holds the access token."""

    namespace: str
    name: str
    key: str

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.name}"


class SecretStore(Protocol):
    async def read(self, namespace: str, name: str) -> SecretCopy | None: ...

    async def patch(
        self,
        namespace: str,
        name: str,
        *,
        resource_version: str,
        data: dict[str, str] | None = None,
        annotations: dict[str, str | None] | None = None,
    ) -> str: ...

    async def warn(self, namespace: str, name: str, reason: str, message: str) -> None: ...


class TokenEndpoint(Protocol):
    async def refresh(
        self, *, refresh_token: str, client_id: str, client_secret: str | None
    ) -> TokenGrant: ...


def token_refs(instances: Iterable[Mapping[str, Any]]) -> set[TokenRef]:
    """The token Secrets of SelfHosted ClawInstance bodies (what the refresher follows)."""
    refs: set[TokenRef] = set()
    for body in instances:
        railway = (body.get("spec") or {}).get("railway") or {}
        secret_ref = railway.get("tokenSecretRef") or {}
        namespace = (body.get("metadata") or {}).get("namespace")
        if railway.get("mode") == "SelfHosted" and secret_ref.get("name") and namespace:
            refs.add(TokenRef(str(namespace), str(secret_ref["name"]), str(secret_ref.get("key") or "token")))
    return refs


class TokenRefresher:
    """Run `run()` as one background task per operator process that acts on the fleet
    (with shards, the replica holding shard 0; a second refresher is harmless, the
    journal's precondition and grace keep it from spending a token twice, but it may
    warn about a refresh still in flight). `refs()` lists the Secrets to follow; `nudge`
    makes a changed Secret be looked at on the next round; `on_problem(namespace, name)`
    hears that a Secret's `problem()` changed (appeared, changed or went away)."""

    def __init__(
        self,
        store: SecretStore,
        endpoint: TokenEndpoint,
        *,
        fingerprint_key: bytes,
        refs: Callable[[], Iterable[TokenRef]],
        interval_seconds: float = 15.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_problem: Callable[[str, str], None] = lambda namespace, name: None,
    ) -> None:
        self._store = store
        self._on_problem = on_problem
        self._endpoint = endpoint
        self._key = fingerprint_key
        self._refs = refs
        self._interval = interval_seconds
        self._now = now
        self._due: dict[TokenRef, datetime] = {}
        self._problems: dict[tuple[str, str], str] = {}
        self._pending: dict[TokenRef, _Pending] = {}
        self._warned: dict[tuple[str, str], str] = {}
        # Why the endpoint did not take a refresh token, by the fingerprint it was spent
        # under: a journal naming it then keeps that reason, more telling than "may be spent".
        self._refusals: dict[TokenRef, tuple[str, str]] = {}

    @classmethod
    def for_cluster(
        cls,
        settings: Settings,
        kube: KubeApi,
        refs: Callable[[], Iterable[TokenRef]],
        *,
        interval_seconds: float = 15.0,
        on_problem: Callable[[str, str], None] = lambda namespace, name: None,
    ) -> TokenRefresher:
        """The production wiring: Secrets through the engine's `kube`, the token endpoint
        from RAILWAY_OAUTH_TOKEN_URL, journal fingerprints under CLAW_FINGERPRINT_KEY."""
        return cls(
            KubeApiSecretStore(kube),
            OAuthClient(settings.railway_oauth_token_url),
            fingerprint_key=settings.fingerprint_key.get_secret_value().encode(),
            refs=refs,
            interval_seconds=interval_seconds,
            on_problem=on_problem,
        )

    async def aclose(self) -> None:
        close = getattr(self._endpoint, "aclose", None)
        if close is not None:
            await close()

    # ------------------------------------------------------------ what others read
    def problem(self, namespace: str, name: str) -> str | None:
        """Why this Secret's token cannot be refreshed (a sentence naming the Secret and
        what to do), or None. The controller may show it as RailwayAuthFailed."""
        return self._problems.get((namespace, name))

    def nudge(self, namespace: str, name: str) -> None:
        for ref in list(self._due):
            if (ref.namespace, ref.name) == (namespace, name):
                del self._due[ref]

    # ------------------------------------------------------------ the loop
    async def run(self) -> None:
        while True:
            try:
                await self.check_due()
            except Exception:
                # A bug must not stop every tenant's refreshes; the next round retries.
                log.exception("OAuth token refresh round failed")
            await asyncio.sleep(self._interval)

    async def check_due(self) -> None:
        """One round: every followed Secret whose time has come."""
        refs = set(self._refs())
        for ref in set(self._due) - refs:
            del self._due[ref]
            self._refusals.pop(ref, None)
        for ref in sorted(refs, key=lambda r: (r.namespace, r.name, r.key)):
            due = self._due.get(ref)
            if due is not None and due > self._now():
                continue
            try:
                self._due[ref] = await self.check(ref)
            except SecretStoreError as error:
                log.warning("OAuth token refresh: %s", error)
                self._due[ref] = self._now() + RETRY_AFTER

    async def check(self, ref: TokenRef) -> datetime:
        """Refresh this Secret's token if it is due; returns when to look again."""
        now = self._now()
        secret = await self._store.read(ref.namespace, ref.name)
        pending = self._pending.get(ref)
        if pending is not None:
            settled = await self._settled(ref, secret, pending)
            if settled is not None:
                return settled
            assert secret is not None
            return await self._write_pending(ref, secret.resource_version, pending)
        if secret is None or REFRESH_TOKEN_KEY not in secret.data:
            self._clear(ref)
            return now + RECHECK
        refresh_token = secret.data[REFRESH_TOKEN_KEY]
        client_id = secret.data.get(CLIENT_ID_KEY, "")
        expires_at = parse_time(secret.data.get(EXPIRES_AT_KEY))
        if not refresh_token or not client_id or expires_at is None:
            missing = [
                k
                for k, ok in (
                    (REFRESH_TOKEN_KEY, bool(refresh_token)),
                    (CLIENT_ID_KEY, bool(client_id)),
                    (EXPIRES_AT_KEY, expires_at is not None),
                )
                if not ok
            ]
            await self._report(
                ref,
                f"the OAuth token in Secret {ref.label} cannot be refreshed: "
                f"{', '.join(missing)} missing, empty or not an RFC 3339 time; "
                f"set {', '.join(missing)} in the Secret",
            )
            return now + RECHECK
        spent = self._fingerprint(refresh_token)
        journal = _read_journal(secret.annotations.get(JOURNAL_ANNOTATION))
        if journal is not None and journal[0] == spent:
            started = journal[1]
            if started is not None and now - started < IN_FLIGHT_GRACE:
                return started + IN_FLIGHT_GRACE
            refusal = self._refusals.get(ref)
            if refusal is not None and refusal[0] == spent:
                await self._report(ref, refusal[1])
                return now + RECHECK
            await self._report(
                ref,
                f"the OAuth refresh token in Secret {ref.label} (key {REFRESH_TOKEN_KEY}) may have been "
                f"spent by a refresh that did not finish, and Railway does not accept a refresh token "
                f"twice: sign in again and write the new {ref.key}, {REFRESH_TOKEN_KEY} and "
                f"{EXPIRES_AT_KEY} into the Secret",
            )
            return now + RECHECK
        if expires_at - now > REFRESH_LEAD:
            self._clear(ref)
            return expires_at - REFRESH_LEAD
        return await self._refresh(ref, secret, refresh_token, client_id, spent)

    # ------------------------------------------------------------ the refresh itself
    async def _refresh(
        self, ref: TokenRef, secret: SecretCopy, refresh_token: str, client_id: str, spent: str
    ) -> datetime:
        now = self._now()
        journal = json.dumps({"refreshToken": spent, "startedAt": now_rfc3339(now)}, sort_keys=True)
        try:
            version = await self._store.patch(
                ref.namespace,
                ref.name,
                resource_version=secret.resource_version,
                annotations={JOURNAL_ANNOTATION: journal},
            )
        except SecretConflict:
            return now  # someone else wrote it: look again next round, spend nothing now
        try:
            grant = await self._endpoint.refresh(
                refresh_token=refresh_token,
                client_id=secret.data.get(CLIENT_ID_KEY, client_id),
                client_secret=secret.data.get(CLIENT_SECRET_KEY) or None,
            )
        except OAuthUnavailableError as error:
            if error.provably_unsent:
                await self._drop_journal(ref, version, spent)
                log.warning("OAuth token refresh for Secret %s: %s; retrying", ref.label, error)
                return now + RETRY_AFTER
            await self._refused(
                ref,
                spent,
                f"refreshing the OAuth token in Secret {ref.label} got no usable answer ({error}); the "
                f"refresh token may be spent and is not presented again: sign in again and write the new "
                f"{ref.key}, {REFRESH_TOKEN_KEY} and {EXPIRES_AT_KEY} into the Secret",
            )
            return now + RECHECK
        except OAuthError as error:
            await self._refused(
                ref,
                spent,
                f"refreshing the OAuth token in Secret {ref.label} failed: {error}; sign in again and "
                f"write the new {ref.key}, {REFRESH_TOKEN_KEY} and {EXPIRES_AT_KEY} into the Secret",
            )
            return now + RECHECK
        return await self._store_grant(ref, version, spent, refresh_token, grant)

    async def _store_grant(
        self, ref: TokenRef, version: str, spent: str, old_refresh: str, grant: TokenGrant
    ) -> datetime:
        expires_at = self._now() + timedelta(seconds=grant.expires_in or 3600)
        pending = _Pending(
            spent=spent,
            data={
                ref.key: grant.access_token,
                REFRESH_TOKEN_KEY: grant.refresh_token or old_refresh,
                EXPIRES_AT_KEY: now_rfc3339(expires_at),
            },
            expires_at=expires_at,
        )
        return await self._write_pending(ref, version, pending)

    async def _write_pending(self, ref: TokenRef, version: str, pending: _Pending) -> datetime:
        """Write the new pair (and drop the journal) on top of `version`. Until it is
        written the pair is kept in memory and retried first thing each round: it is the
        only copy of a usable refresh token."""
        for _ in range(_MAX_WRITE_ATTEMPTS):
            try:
                await self._store.patch(
                    ref.namespace,
                    ref.name,
                    resource_version=version,
                    data=pending.data,
                    annotations={JOURNAL_ANNOTATION: None},
                )
            except SecretConflict:
                fresh = await self._store.read(ref.namespace, ref.name)
                settled = await self._settled(ref, fresh, pending)
                if settled is not None:
                    return settled
                assert fresh is not None  # _settled answers for a deleted Secret
                version = fresh.resource_version
                continue
            except SecretStoreError as error:
                self._pending[ref] = pending
                log.warning("OAuth token refresh: %s; writing the new token again shortly", error)
                return self._now() + PENDING_RETRY
            self._pending.pop(ref, None)
            self._clear(ref)
            log.info("refreshed the OAuth token in Secret %s", ref.label)
            return pending.expires_at - REFRESH_LEAD
        self._pending[ref] = pending
        return self._now() + PENDING_RETRY

    async def _settled(self, ref: TokenRef, fresh: SecretCopy | None, pending: _Pending) -> datetime | None:
        """When a re-read Secret makes writing `pending` pointless: it is gone, already
        holds our pair (an earlier write landed), or holds new credentials someone else
        wrote (theirs are newer). None: still ours to write."""
        now = self._now()
        if fresh is None:
            self._pending.pop(ref, None)
            log.warning("OAuth token refresh: Secret %s was deleted meanwhile", ref.label)
            return now + RECHECK
        current = fresh.data.get(REFRESH_TOKEN_KEY, "")
        if current == pending.data[REFRESH_TOKEN_KEY]:
            self._pending.pop(ref, None)
            self._clear(ref)
            return pending.expires_at - REFRESH_LEAD
        if self._fingerprint(current) != pending.spent:
            self._pending.pop(ref, None)
            log.warning(
                "OAuth token refresh: Secret %s got new credentials meanwhile; keeping those", ref.label
            )
            if _read_journal(fresh.annotations.get(JOURNAL_ANNOTATION)) is not None:
                await self._drop_journal(ref, fresh.resource_version, pending.spent)
            return now
        return None

    async def _drop_journal(self, ref: TokenRef, version: str, spent: str) -> None:
        """Take our journal entry back: the refresh token it names was provably never
        presented (so the next attempt, even after a restart, may present it), or it is no
        longer the Secret's."""
        for _ in range(_MAX_WRITE_ATTEMPTS):
            try:
                await self._store.patch(
                    ref.namespace, ref.name, resource_version=version, annotations={JOURNAL_ANNOTATION: None}
                )
                return
            except SecretConflict:
                fresh = await self._store.read(ref.namespace, ref.name)
                journal = _read_journal(fresh.annotations.get(JOURNAL_ANNOTATION)) if fresh else None
                if fresh is None or journal is None or journal[0] != spent:
                    return  # someone else already settled it
                version = fresh.resource_version

    # ------------------------------------------------------------ reporting
    def _fingerprint(self, refresh_token: str) -> str:
        return fingerprint(self._key, ["oauth-refresh-token", refresh_token])

    async def _refused(self, ref: TokenRef, spent: str, message: str) -> None:
        self._refusals[ref] = (spent, message)
        await self._report(ref, message)

    def _clear(self, ref: TokenRef) -> None:
        self._refusals.pop(ref, None)
        self._warned.pop((ref.namespace, ref.name), None)
        if self._problems.pop((ref.namespace, ref.name), None) is not None:
            self._on_problem(ref.namespace, ref.name)

    async def _report(self, ref: TokenRef, message: str) -> None:
        key = (ref.namespace, ref.name)
        if self._problems.get(key) != message:
            self._problems[key] = message
            self._on_problem(ref.namespace, ref.name)
        if self._warned.get(key) == message:
            return
        self._warned[key] = message
        log.error("%s", message)
        try:
            await self._store.warn(ref.namespace, ref.name, Reason.RAILWAY_AUTH_FAILED, message)
        except SecretStoreError as error:
            log.warning("%s", error)


def _read_journal(value: str | None) -> tuple[str, datetime | None] | None:
    """(refresh-token fingerprint, started at) of a journal annotation, or None."""
    if not value:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("refreshToken"), str):
        return None
    started = parsed.get("startedAt")
    return parsed["refreshToken"], parse_time(started) if isinstance(started, str) else None
