"""OAuth access tokens of SelfHosted instances are refreshed ahead of expiry against the
Railway emulator's token endpoint, the new pair is stored in the Secret (resourceVersion
precondition) before anyone uses it, and a refresh token is never presented twice, also
when the process dies in the middle."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from claw_emulators.kubernetes import KubernetesServer
from claw_emulators.railway.server import RailwayEmulator
from claw_operator.config import Settings
from claw_operator.k8s.kube import KubeApi
from claw_operator.k8s.secret_store import KubeApiSecretStore, SecretCopy, SecretStoreError
from claw_operator.k8s.token_refresher import (
    IN_FLIGHT_GRACE,
    JOURNAL_ANNOTATION,
    TokenRef,
    TokenRefresher,
    token_refs,
)
from claw_operator.railway.client import RailwayClient
from claw_operator.railway.errors import RailwayAuthError
from claw_operator.railway.oauth import OAuthClient, OAuthUnavailableError, TokenGrant
from tests.fixtures.common import CANARY_PREFIX, canary
from tests.fixtures.kubernetes import kube_api
from tests.fixtures.operator import Crash

NAMESPACE, NAME = "tenant-a", "railway-oauth"
REF = TokenRef(NAMESPACE, NAME, "token")
CLIENT_ID = "claw-oauth-app"
CLIENT_SECRET = canary("oauth-client-secret")
T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)


@dataclass
class World:
    k8s: KubernetesServer
    emu: RailwayEmulator
    clock: Clock
    kube: KubeApi
    store: KubeApiSecretStore
    endpoint: OAuthClient

    def refresher(self, store: Any = None, endpoint: Any = None, on_problem: Any = None) -> TokenRefresher:
        return TokenRefresher(
            store or self.store,
            endpoint or self.endpoint,
            fingerprint_key=b"test-fingerprint-key",
            refs=lambda: {REF},
            now=self.clock.now,
            on_problem=on_problem or (lambda namespace, name: None),
        )

    def grant_secret(self) -> dict[str, str]:
        """A user signs in: a first grant, written into the token Secret."""
        grant = self.emu.oauth.issue(CLIENT_ID)
        data = {
            "token": grant["access_token"],
            "refreshToken": grant["refresh_token"],
            "clientId": CLIENT_ID,
            "clientSecret": CLIENT_SECRET,
            "expiresAt": datetime.fromtimestamp(self.clock.t + grant["expires_in"], UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "tier": "pro",
        }
        self.k8s.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {"claw.io/watch": "true"}},
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
            }
        )
        return data

    def secret(self) -> tuple[dict[str, str], dict[str, str]]:
        obj = self.k8s.get("secrets", NAMESPACE, NAME) or {}
        data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        return data, dict((obj.get("metadata") or {}).get("annotations") or {})

    async def token_works(self, token: str) -> bool:
        async with RailwayClient(url=self.emu.url, token=token, max_retries=0) as client:
            try:
                await client.list_projects("ws-tenant")
            except RailwayAuthError:
                return False
        return True


@pytest.fixture
async def world(k8s: KubernetesServer) -> AsyncIterator[World]:
    clock = Clock()
    async with RailwayEmulator(clock=clock, tokens={}) as emu:
        emu.oauth.add_app(CLIENT_ID, CLIENT_SECRET, "ws-tenant", tier="pro")
        async with kube_api(k8s) as kube, OAuthClient(emu.oauth_token_url) as endpoint:
            yield World(k8s, emu, clock, kube, KubeApiSecretStore(kube), endpoint)


def assert_no_secrets_in(text: str, *values: str) -> None:
    assert CANARY_PREFIX not in text
    for value in values:
        assert value not in text


async def test_refresh_ahead_of_expiry_with_rotation(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    first = world.grant_secret()
    refresher = world.refresher()

    await refresher.check_due()
    assert world.emu.oauth.refreshes == 0  # an hour left: nothing to do yet

    world.clock.t += 3600 - 14 * 60  # 14 minutes before expiry, inside the 15-minute lead
    await refresher.check_due()
    assert world.emu.oauth.refreshes == 1
    second, annotations = world.secret()
    assert JOURNAL_ANNOTATION not in annotations
    assert second["token"] != first["token"] and second["refreshToken"] != first["refreshToken"]
    assert datetime.fromisoformat(second["expiresAt"].replace("Z", "+00:00")).timestamp() == int(
        world.clock.t + 3600
    )
    assert (second["clientId"], second["clientSecret"], second["tier"]) == (CLIENT_ID, CLIENT_SECRET, "pro")
    assert refresher.problem(NAMESPACE, NAME) is None

    # Not due again until the new token nears its expiry; the old token dies on time.
    await refresher.check_due()
    assert world.emu.oauth.refreshes == 1
    world.clock.t += 15 * 60
    assert not await world.token_works(first["token"])
    assert await world.token_works(second["token"])

    world.clock.t += 3600 - 30 * 60
    await refresher.check_due()
    third, _ = world.secret()
    assert world.emu.oauth.refreshes == 2
    assert third["refreshToken"] not in (first["refreshToken"], second["refreshToken"])
    assert await world.token_works(third["token"])
    assert world.emu.oauth.reuse_attempts == 0

    logged = caplog.text
    for data in (first, second, third):
        assert_no_secrets_in(logged, data["token"], data["refreshToken"])
    assert "refreshed the OAuth token in Secret tenant-a/railway-oauth" in logged


class KillBeforeStoring:
    """A store that lets the journal through, then the process dies before the new pair
    is written (between the token endpoint's answer and the Secret write)."""

    def __init__(self, inner: KubeApiSecretStore) -> None:
        self.inner = inner

    async def read(self, namespace: str, name: str) -> SecretCopy | None:
        return await self.inner.read(namespace, name)

    async def patch(self, namespace: str, name: str, **kwargs: Any) -> str:
        if kwargs.get("data"):
            raise Crash()
        return await self.inner.patch(namespace, name, **kwargs)

    async def warn(self, namespace: str, name: str, reason: str, message: str) -> None:
        await self.inner.warn(namespace, name, reason, message)


class KillBeforeCalling:
    """The process dies after the journal is written, before the token endpoint is called."""

    calls = 0

    async def refresh(self, *, refresh_token: str, client_id: str, client_secret: str | None) -> TokenGrant:
        self.calls += 1
        raise Crash()


async def assert_stuck_after_restart(
    world: World, spent: dict[str, str], refreshes_before: int, caplog: pytest.LogCaptureFixture
) -> None:
    _, annotations = world.secret()
    assert JOURNAL_ANNOTATION in annotations
    assert_no_secrets_in(annotations[JOURNAL_ANNOTATION], spent["refreshToken"])

    # Restarted at once: the journal may be another replica's refresh in flight; wait.
    restarted = world.refresher()
    await restarted.check_due()
    assert restarted.problem(NAMESPACE, NAME) is None
    assert world.emu.oauth.refreshes == refreshes_before

    # Still there after the grace: that refresh token may be spent; never present it again.
    world.clock.t += IN_FLIGHT_GRACE.total_seconds() + 1
    restarted = world.refresher()
    await restarted.check_due()
    await restarted.check_due()
    assert world.emu.oauth.refreshes == refreshes_before
    assert world.emu.oauth.reuse_attempts == 0
    problem = restarted.problem(NAMESPACE, NAME) or ""
    assert "Secret tenant-a/railway-oauth" in problem and "sign in again" in problem
    events = world.k8s.events(NAMESPACE, involved_name=NAME)
    assert [e["reason"] for e in events] == ["RailwayAuthFailed"]  # once, not every round
    assert events[0]["type"] == "Warning" and events[0]["involvedObject"]["kind"] == "Secret"
    assert_no_secrets_in(json.dumps(events) + problem, spent["refreshToken"], spent["token"])

    # A person signs in again and writes new credentials: refreshing resumes by itself.
    renewed = world.grant_secret()
    world.clock.t += 3600 - 10 * 60
    await restarted.check_due()
    assert restarted.problem(NAMESPACE, NAME) is None
    assert world.emu.oauth.refreshes == refreshes_before + 1
    after, annotations = world.secret()
    assert JOURNAL_ANNOTATION not in annotations
    assert after["refreshToken"] != renewed["refreshToken"]
    assert await world.token_works(after["token"])
    assert "may have been spent by a refresh that did not finish" in caplog.text
    for data in (spent, renewed, after):
        assert_no_secrets_in(caplog.text, data["token"], data["refreshToken"])


async def test_restart_between_token_answer_and_secret_write(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first = world.grant_secret()
    world.clock.t += 3600 - 5 * 60
    dying = world.refresher(store=KillBeforeStoring(world.store))
    with pytest.raises(Crash):
        await dying.check_due()
    assert world.emu.oauth.refreshes == 1  # Railway rotated: the stored refresh token is spent
    stored, _ = world.secret()
    assert stored["refreshToken"] == first["refreshToken"]
    await assert_stuck_after_restart(world, first, 1, caplog)


async def test_restart_between_journal_write_and_token_call(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first = world.grant_secret()
    world.clock.t += 3600 - 5 * 60
    endpoint = KillBeforeCalling()
    with pytest.raises(Crash):
        await world.refresher(endpoint=endpoint).check_due()
    assert endpoint.calls == 1 and world.emu.oauth.refreshes == 0
    await assert_stuck_after_restart(world, first, 0, caplog)


class ConcurrentWriter:
    """Another writer changes the Secret right before one of our writes (a label added by
    a person, another controller's annotation), so our precondition fails with a 409."""

    def __init__(self, world: World, before: str, replace_credentials: bool = False) -> None:
        self.world, self.before, self.replace_credentials = world, before, replace_credentials
        self.conflicts = 0

    async def read(self, namespace: str, name: str) -> SecretCopy | None:
        return await self.world.store.read(namespace, name)

    async def patch(self, namespace: str, name: str, **kwargs: Any) -> str:
        stage = "pair" if kwargs.get("data") else "journal"
        if stage == self.before and self.conflicts == 0:
            self.conflicts += 1
            if self.replace_credentials:
                self.world.grant_secret()
            else:
                self.world.k8s.patch(
                    "secrets", namespace, name, {"metadata": {"annotations": {"owner": "someone-else"}}}
                )
        return await self.world.store.patch(namespace, name, **kwargs)

    async def warn(self, namespace: str, name: str, reason: str, message: str) -> None:
        await self.world.store.warn(namespace, name, reason, message)


async def test_conflict_on_the_pair_write_is_retried_keeping_the_other_write(world: World) -> None:
    first = world.grant_secret()
    world.clock.t += 3600 - 5 * 60
    writer = ConcurrentWriter(world, before="pair")
    await world.refresher(store=writer).check_due()
    assert writer.conflicts == 1 and world.emu.oauth.refreshes == 1
    data, annotations = world.secret()
    assert annotations.get("owner") == "someone-else" and JOURNAL_ANNOTATION not in annotations
    assert data["refreshToken"] != first["refreshToken"]
    assert await world.token_works(data["token"])


async def test_conflict_on_the_journal_write_spends_nothing_that_round(world: World) -> None:
    world.grant_secret()
    world.clock.t += 3600 - 5 * 60
    writer = ConcurrentWriter(world, before="journal")
    refresher = world.refresher(store=writer)
    await refresher.check_due()
    assert writer.conflicts == 1 and world.emu.oauth.refreshes == 0
    await refresher.check_due()
    assert world.emu.oauth.refreshes == 1
    data, annotations = world.secret()
    assert JOURNAL_ANNOTATION not in annotations and await world.token_works(data["token"])


async def test_credentials_replaced_during_refresh_win(world: World) -> None:
    world.grant_secret()
    world.clock.t += 3600 - 5 * 60
    writer = ConcurrentWriter(world, before="pair", replace_credentials=True)
    await world.refresher(store=writer).check_due()
    data, annotations = world.secret()
    # The person's grant was written after ours started: it stays, untouched.
    assert writer.conflicts == 1 and world.emu.oauth.refreshes == 1
    assert JOURNAL_ANNOTATION not in annotations
    assert datetime.fromisoformat(data["expiresAt"].replace("Z", "+00:00")).timestamp() == int(
        world.clock.t + 3600
    )
    assert await world.token_works(data["token"])


async def test_refused_refresh_token_is_reported_and_never_retried(world: World) -> None:
    data = world.grant_secret()
    # The refresh token was already used elsewhere (say, by a copy of this Secret).
    assert (
        await world.endpoint.refresh(
            refresh_token=data["refreshToken"], client_id=CLIENT_ID, client_secret=CLIENT_SECRET
        )
    ).access_token
    world.clock.t += 3600 - 5 * 60
    refresher = world.refresher()
    await refresher.check_due()
    problem = refresher.problem(NAMESPACE, NAME) or ""
    assert "invalid_grant" in problem and "Secret tenant-a/railway-oauth" in problem
    assert world.emu.oauth.reuse_attempts == 1
    world.clock.t += 600
    await refresher.check_due()
    assert world.emu.oauth.reuse_attempts == 1  # never presented again
    assert_no_secrets_in(problem, data["refreshToken"])
    # The journal left behind keeps the endpoint's reason (not "may have been spent").
    assert refresher.problem(NAMESPACE, NAME) == problem


async def test_a_problem_that_appears_or_goes_is_told_once(world: World) -> None:
    """What the engine hears to give the instances a pass that shows (or drops) the reason."""
    data = world.grant_secret()
    await world.endpoint.refresh(
        refresh_token=data["refreshToken"], client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    )
    world.clock.t += 3600 - 5 * 60
    told: list[tuple[str, str]] = []
    refresher = world.refresher(on_problem=lambda namespace, name: told.append((namespace, name)))
    await refresher.check_due()
    assert told == [(NAMESPACE, NAME)] and refresher.problem(NAMESPACE, NAME)
    world.clock.t += 600
    await refresher.check_due()
    assert told == [(NAMESPACE, NAME)], "the same problem again is no news"
    world.grant_secret()
    refresher.nudge(NAMESPACE, NAME)
    await refresher.check_due()
    assert told == [(NAMESPACE, NAME)] * 2 and refresher.problem(NAMESPACE, NAME) is None


async def test_missing_oauth_key_is_named(world: World) -> None:
    world.grant_secret()
    world.k8s.patch("secrets", NAMESPACE, NAME, {"data": {"clientId": None}})
    refresher = world.refresher()
    await refresher.check_due()
    problem = refresher.problem(NAMESPACE, NAME) or ""
    assert "clientId missing" in problem and "tenant-a/railway-oauth" in problem


def test_token_refs_follow_selfhosted_instances_only() -> None:
    bodies = [
        {
            "metadata": {"namespace": "a", "name": "x"},
            "spec": {"railway": {"mode": "SelfHosted", "tokenSecretRef": {"name": "t", "key": "tok"}}},
        },
        {"metadata": {"namespace": "b", "name": "y"}, "spec": {"railway": {"mode": "Managed"}}},
        {"metadata": {"namespace": "c", "name": "z"}, "spec": {"planRef": "pro"}},
    ]
    assert token_refs(bodies) == {TokenRef("a", "t", "tok")}


class Unreachable:
    async def refresh(self, *, refresh_token: str, client_id: str, client_secret: str | None) -> TokenGrant:
        raise OAuthUnavailableError("cannot connect", provably_unsent=True)


async def test_unreachable_endpoint_takes_the_journal_back_and_retries(world: World) -> None:
    world.grant_secret()
    world.clock.t += 3600 - 5 * 60
    await world.refresher(endpoint=Unreachable()).check_due()
    _, annotations = world.secret()
    assert JOURNAL_ANNOTATION not in annotations  # never sent: a restart may present it
    # Even a fresh process (no memory of the failure) refreshes normally.
    fresh = world.refresher()
    await fresh.check_due()
    assert world.emu.oauth.refreshes == 1 and fresh.problem(NAMESPACE, NAME) is None


class FlakyPairWrite:
    """The Kubernetes API fails the pair write once: before it lands, or after (the answer
    is lost)."""

    def __init__(self, inner: KubeApiSecretStore, landed: bool) -> None:
        self.inner, self.landed, self.failures = inner, landed, 0

    async def read(self, namespace: str, name: str) -> SecretCopy | None:
        return await self.inner.read(namespace, name)

    async def patch(self, namespace: str, name: str, **kwargs: Any) -> str:
        if kwargs.get("data") and self.failures == 0:
            self.failures += 1
            if self.landed:
                await self.inner.patch(namespace, name, **kwargs)
            raise SecretStoreError(f"writing Secret {namespace}/{name} failed: ProtocolError")
        return await self.inner.patch(namespace, name, **kwargs)

    async def warn(self, namespace: str, name: str, reason: str, message: str) -> None:
        await self.inner.warn(namespace, name, reason, message)


@pytest.mark.parametrize("landed", [False, True])
async def test_a_failed_pair_write_is_retried_from_memory(world: World, landed: bool) -> None:
    first = world.grant_secret()
    world.clock.t += 3600 - 5 * 60
    store = FlakyPairWrite(world.store, landed)
    refresher = world.refresher(store=store)
    await refresher.check_due()
    assert store.failures == 1 and world.emu.oauth.refreshes == 1
    world.clock.t += 10  # past the short retry delay
    await refresher.check_due()
    data, annotations = world.secret()
    assert JOURNAL_ANNOTATION not in annotations
    assert data["refreshToken"] != first["refreshToken"] and await world.token_works(data["token"])
    assert world.emu.oauth.refreshes == 1 and refresher.problem(NAMESPACE, NAME) is None


async def test_production_wiring_from_settings(world: World) -> None:
    first = world.grant_secret()
    settings = Settings.from_env(
        {"RAILWAY_OAUTH_TOKEN_URL": world.emu.oauth_token_url, "CLAW_FINGERPRINT_KEY": "k" * 32}
    )
    refresher = TokenRefresher.for_cluster(settings, world.kube, lambda: {REF})
    try:
        # Due only once the real clock says so: make the stored expiry imminent.
        world.k8s.patch(
            "secrets",
            NAMESPACE,
            NAME,
            {"data": {"expiresAt": base64.b64encode(b"2000-01-01T00:00:00Z").decode()}},
        )
        await refresher.check_due()
    finally:
        await refresher.aclose()
    data, _ = world.secret()
    assert world.emu.oauth.refreshes == 1 and data["refreshToken"] != first["refreshToken"]
