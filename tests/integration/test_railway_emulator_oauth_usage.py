"""The Railway emulator's OAuth token endpoint and usage values over HTTP: the refresh grant
with rotation, reuse refused, access tokens that expire on the emulator's clock; admin-set usage
that grouped `metrics` and `estimatedUsage` report."""

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


async def test_admin_sets_usage_that_grouped_metrics_and_estimates_report() -> None:
    now = 1_800_003_333.0
    async with (
        RailwayEmulator(clock=lambda: now, tokens={"tok": ("ws-u", "pro")}) as emu,
        httpx.AsyncClient() as http,
    ):
        token = emu.state.token("tok")
        assert token is not None
        project = emu.state.create_project(
            token, name="p", description=None, workspace_id=None, default_environment_name=None
        )
        service = emu.state.create_service(
            token,
            project_id=project.id,
            environment_id=None,
            name="s",
            image="i",
            repo=None,
            branch=None,
            variables=None,
        )
        set_service = await http.post(
            f"{emu.base_url}/_admin/usage", json={"serviceId": service.id, "values": {"CPU_USAGE": 1.5}}
        )
        assert set_service.status_code == 200
        await http.post(
            f"{emu.base_url}/_admin/usage", json={"projectId": project.id, "estimated": {"CPU_USAGE": 42}}
        )
        assert (await http.post(f"{emu.base_url}/_admin/usage", json={"x": 1})).status_code == 400
        query = """query {
          metrics(workspaceId: "ws-u", startDate: "2027-01-15T08:45:00Z", sampleRateSeconds: 300,
            measurements: [CPU_USAGE], groupBy: [SERVICE_ID]) {
            measurement tags { serviceId } values { value }
          }
          estimatedUsage(workspaceId: "ws-u", measurements: [CPU_USAGE]) { projectId estimatedValue }
        }"""
        answer = (
            await http.post(emu.url, json={"query": query}, headers={"Authorization": "Bearer tok"})
        ).json()
        series = answer["data"]["metrics"]
        assert [(s["tags"]["serviceId"], {v["value"] for v in s["values"]}) for s in series] == [
            (service.id, {1.5})
        ]
        assert answer["data"]["estimatedUsage"] == [{"projectId": project.id, "estimatedValue": 42.0}]
