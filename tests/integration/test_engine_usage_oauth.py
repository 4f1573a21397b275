"""The engine's background helpers through the whole operator (Kopf, both emulators): the
usage sampler fills status.usage of several instances from one WorkspaceUsage request per
workspace, and the token refresher keeps a SelfHosted OAuth instance working across the
expiry of the access token it started with."""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import kopf

from claw_emulators.kubernetes import KubernetesServer
from claw_emulators.railway.server import RailwayEmulator
from claw_operator.api.models import WATCH_LABEL
from claw_operator.k8s.engine import Engine
from claw_operator.k8s.handlers import build_registry
from claw_operator.railway.client import RailwayClient
from claw_operator.railway.errors import RailwayAuthError
from claw_operator.railway.oauth import OAuthClient
from tests.fixtures.cluster import claw_manifest, condition_of, phase_of, plan_manifest, status_of
from tests.fixtures.common import CANARY_PREFIX, canary
from tests.fixtures.kubernetes import eventually, run_kopf
from tests.fixtures.operator import operator_settings
from tests.fixtures.railway import TEST_PHASE_SECONDS, TEST_TOKEN, TEST_WORKSPACE

MANAGED = ("bot-a", "bot-b", "bot-c")
CLIENT_ID, CLIENT_SECRET = "claw-oauth-app", canary("oauth-client-secret")
TENANT_WORKSPACE = "ws-tenant"


class ShiftedClock:
    """Real time, moved forward on demand: deployments progress, tokens can expire."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@contextlib.asynccontextmanager
async def running_operator(k8s: KubernetesServer, emu: RailwayEmulator) -> AsyncIterator[Engine]:
    settings = operator_settings(emu, railway_oauth_token_url=emu.oauth_token_url)
    memo = kopf.Memo()
    registry = build_registry(lambda: Engine(settings=settings, use_leases=False), plan_status_interval=0.5)
    async with run_kopf(k8s, registry, memo=memo):
        yield memo.claw


def oauth_secret(emu: RailwayEmulator, clock: ShiftedClock) -> dict[str, Any]:
    grant = emu.oauth.issue(CLIENT_ID)
    expires = datetime.fromtimestamp(clock() + grant["expires_in"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    data = {
        "token": grant["access_token"],
        "refreshToken": grant["refresh_token"],
        "clientId": CLIENT_ID,
        "clientSecret": CLIENT_SECRET,
        "expiresAt": expires,
        "tier": "pro",
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "railway-oauth", "namespace": "tenant-a", "labels": {WATCH_LABEL: "true"}},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def stored_token(k8s: KubernetesServer) -> str:
    secret = k8s.get("secrets", "tenant-a", "railway-oauth") or {}
    return base64.b64decode(secret["data"]["token"]).decode()


async def token_works(emu: RailwayEmulator, token: str) -> bool:
    async with RailwayClient(url=emu.url, token=token, max_retries=0) as client:
        try:
            await client.list_projects(TENANT_WORKSPACE)
        except RailwayAuthError:
            return False
    return True


def usage_requests(emu: RailwayEmulator) -> int:
    return sum(r.operation_name == "WorkspaceUsage" for r in emu.requests)


async def test_usage_from_one_request_per_workspace_and_oauth_across_expiry(k8s: KubernetesServer) -> None:
    clock = ShiftedClock()
    emulator = RailwayEmulator(
        phase_seconds=TEST_PHASE_SECONDS, tokens={TEST_TOKEN: (TEST_WORKSPACE, "100000/1000")}, clock=clock
    )
    async with emulator as emu:
        emu.oauth.add_app(CLIENT_ID, CLIENT_SECRET, TENANT_WORKSPACE, tier="pro")
        # A first access token that is due at once (inside the refresher's 15-minute lead);
        # the refreshed ones last an hour.
        emu.oauth.ttl_seconds = 600
        k8s.apply(oauth_secret(emu, clock))
        emu.oauth.ttl_seconds = 3600
        first_token = stored_token(k8s)
        k8s.apply(plan_manifest())
        for name in MANAGED:
            k8s.apply(claw_manifest(name))
        ref = {"name": "railway-oauth", "key": "token"}
        k8s.apply(claw_manifest("tenant", railway={"mode": "SelfHosted", "tokenSecretRef": ref}))
        async with running_operator(k8s, emu) as engine:
            await eventually(lambda: emu.oauth.refreshes >= 1, within=30, message="never refreshed")
            await eventually(lambda: stored_token(k8s) != first_token, within=10)
            names = (*MANAGED, "tenant")
            for name in names:
                await eventually(lambda n=name: phase_of(k8s, n) == "Running", within=30, message=name)

            # Usage: one grouped request per workspace (and token), whatever the instance count.
            def sampled_through_current_tokens() -> bool:
                keys = [f"tenant-a/{n}" for n in names]
                return all(engine._usage_of.get(k, ("", ""))[1] == engine._token_of.get(k) for k in keys)

            await eventually(sampled_through_current_tokens, within=10)
            for n, name in enumerate(names):
                ids = status_of(k8s, name)["railway"]
                emu.state.usage.set_service(
                    ids["serviceId"], {"CPU_USAGE": 0.1 * (n + 1), "MEMORY_USAGE_GB": 1.0}
                )
            before = usage_requests(emu)
            await engine.usage.sample_once()
            assert usage_requests(emu) - before == 2  # ws-test (platform token) and ws-tenant
            for n, name in enumerate(names):
                await eventually(
                    lambda n=n, name=name: (
                        (status_of(k8s, name).get("usage") or {}).get("cpu") == round(0.1 * (n + 1), 4)
                    ),
                    within=10,
                    message=f"{name} has no usage",
                )
            assert usage_requests(emu) - before == 2, "passes read the sampler's figures, not Railway"

            # The access token the instance started with expires; the refreshed one works on.
            clock.offset += 601
            assert not await token_works(emu, first_token)
            assert await token_works(emu, stored_token(k8s))
            k8s.patch(
                "clawinstances", "tenant-a", "tenant", {"spec": {"env": [{"name": "AFTER", "value": "1"}]}}
            )

            def applied() -> bool:
                ids = status_of(k8s, "tenant").get("railway") or {}
                found = emu.state.instances.get((ids.get("serviceId"), ids.get("environmentId")))
                return found is not None and found.variables.get("AFTER") == "1"

            await eventually(applied, within=30, message="the change was not applied after expiry")
            conditions = status_of(k8s, "tenant").get("conditions") or []
            assert not any(c.get("reason") == "RailwayAuthFailed" for c in conditions)
            assert emu.oauth.refreshes == 1 and emu.oauth.reuse_attempts == 0
            # The expired token is not polled with any more: one scheduler per token in use.
            await eventually(lambda: len(engine.schedulers()) == 2, within=10, message="old token kept")


async def test_a_refused_refresh_is_told_in_railway_auth_failed_until_the_secret_is_fixed(
    k8s: KubernetesServer,
) -> None:
    clock = ShiftedClock()
    emulator = RailwayEmulator(
        phase_seconds=TEST_PHASE_SECONDS, tokens={TEST_TOKEN: (TEST_WORKSPACE, "100000/1000")}, clock=clock
    )
    async with emulator as emu:
        emu.oauth.add_app(CLIENT_ID, CLIENT_SECRET, TENANT_WORKSPACE, tier="pro")
        # The Secret's refresh token was spent elsewhere (a copy of the Secret, another tool),
        # and its access token has expired: Railway refuses it, and so does the token endpoint.
        emu.oauth.ttl_seconds = 600
        secret = oauth_secret(emu, clock)
        spent = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        async with OAuthClient(emu.oauth_token_url) as endpoint:
            await endpoint.refresh(
                refresh_token=spent["refreshToken"], client_id=CLIENT_ID, client_secret=CLIENT_SECRET
            )
        clock.offset += 601
        assert not await token_works(emu, spent["token"])
        k8s.apply(secret)
        k8s.apply(plan_manifest())
        ref = {"name": "railway-oauth", "key": "token"}
        k8s.apply(claw_manifest("tenant", railway={"mode": "SelfHosted", "tokenSecretRef": ref}))
        async with running_operator(k8s, emu) as engine:

            def auth_failed_with_refresh_reason() -> bool:
                synced = condition_of(k8s, "tenant", "Synced")
                return synced.get("reason") == "RailwayAuthFailed" and "invalid_grant" in synced["message"]

            await eventually(auth_failed_with_refresh_reason, within=30, message="no refresh reason")
            message = condition_of(k8s, "tenant", "Synced")["message"]
            assert "Secret tenant-a/railway-oauth key 'token'" in message, "names the Secret and key"
            assert "refused the refresh token" in message and "sign in again" in message
            everything = json.dumps([k8s.get("clawinstances", "tenant-a", "tenant"), k8s.events("tenant-a")])
            assert CANARY_PREFIX not in everything
            for value in (spent["token"], spent["refreshToken"]):
                assert value not in everything

            # A person signs in again and writes the new pair: the instance recovers, and
            # its status no longer carries the refresh problem.
            emu.oauth.ttl_seconds = 3600
            renewed = oauth_secret(emu, clock)
            k8s.apply(renewed)
            await eventually(lambda: phase_of(k8s, "tenant") == "Running", within=30, message="not fixed")
            synced = condition_of(k8s, "tenant", "Synced")
            assert synced["reason"] == "Applied" and "refresh" not in synced["message"]
            await eventually(
                lambda: (
                    engine.refresher is not None and not engine.refresher.problem("tenant-a", "railway-oauth")
                ),
                within=10,
                message="the refresher still reports the fixed Secret",
            )
            assert "OAuth token refresh" not in json.dumps(status_of(k8s, "tenant"))
            assert emu.oauth.reuse_attempts == 1, "the spent refresh token was presented once only"
