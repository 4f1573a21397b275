"""The Railway emulator's OAuth token endpoint over HTTP: admin set-up, the refresh grant
with rotation, reuse refused, and access tokens that expire on the emulator's clock."""

from __future__ import annotations

import httpx

from claw_emulators.railway.server import RailwayEmulator


async def test_token_endpoint_rotates_and_refuses_reuse() -> None:
    now = [1_800_000_000.0]
    async with RailwayEmulator(clock=lambda: now[0], tokens={}) as emu, httpx.AsyncClient() as http:
        added = await http.post(
            f"{emu.base_url}/_admin/oauth/apps",
            json={"clientId": "app", "clientSecret": "s3cret", "workspace": "ws-t", "tier": "pro"},
        )
        assert added.status_code == 200
        grant = (await http.post(f"{emu.base_url}/_admin/oauth/grants", json={"clientId": "app"})).json()
        assert grant["expires_in"] == 3600

        async def graphql(token: str) -> dict[str, object]:
            response = await http.post(
                emu.url,
                json={"query": 'query { projects(workspaceId: "ws-t") { edges { node { id } } } }'},
                headers={"Authorization": f"Bearer {token}"},
            )
            return dict(response.json())

        assert "errors" not in await graphql(grant["access_token"])
        form = {"grant_type": "refresh_token", "refresh_token": grant["refresh_token"]}
        wrong = await http.post(emu.oauth_token_url, data=form, auth=("app", "nope"))
        assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
        rotated = await http.post(emu.oauth_token_url, data=form, auth=("app", "s3cret"))
        assert rotated.status_code == 200
        second = rotated.json()
        assert second["refresh_token"] != grant["refresh_token"]
        reused = await http.post(emu.oauth_token_url, data=form, auth=("app", "s3cret"))
        assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")
        assert (emu.oauth.refreshes, emu.oauth.reuse_attempts) == (1, 1)

        now[0] += 3600
        assert (await graphql(grant["access_token"]))["errors"] == [{"message": "Not Authorized"}]
        assert (await graphql(second["access_token"]))["errors"] == [{"message": "Not Authorized"}]
        unsupported = await http.post(emu.oauth_token_url, data={"grant_type": "password"})
        assert unsupported.json()["error"] == "unsupported_grant_type"
