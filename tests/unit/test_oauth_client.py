"""The OAuth refresh_token grant over HTTP: what is sent, and how answers are classified
(refused, provably unsent, ambiguous) without any secret in a message."""

from __future__ import annotations

import base64
import urllib.parse

import httpx
import pytest

from claw_operator.railway.oauth import OAuthClient, OAuthRefusedError, OAuthUnavailableError
from tests.fixtures.common import CANARY_PREFIX, canary

REFRESH = canary("refresh-token")
SECRET = canary("client-secret")


def client_for(handler: httpx.MockTransport) -> OAuthClient:
    return OAuthClient("https://oauth.example/token", transport=handler)


async def test_confidential_client_sends_basic_auth_and_the_grant() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"access_token": "at-2", "refresh_token": "rt-2", "expires_in": 3600})

    async with client_for(httpx.MockTransport(answer)) as oauth:
        grant = await oauth.refresh(refresh_token=REFRESH, client_id="app", client_secret=SECRET)
    assert (grant.access_token, grant.refresh_token, grant.expires_in) == ("at-2", "rt-2", 3600.0)
    form = urllib.parse.parse_qs(seen[0].content.decode())
    assert form == {"grant_type": ["refresh_token"], "refresh_token": [REFRESH]}
    scheme, _, credentials = seen[0].headers["Authorization"].partition(" ")
    assert scheme == "Basic" and base64.b64decode(credentials).decode() == f"app:{SECRET}"
    assert CANARY_PREFIX not in repr(grant)


async def test_public_client_names_itself_in_the_form_and_keeps_an_unrotated_refresh_token() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert "Authorization" not in request.headers
        assert urllib.parse.parse_qs(request.content.decode())["client_id"] == ["app"]
        return httpx.Response(200, json={"access_token": "at-2", "expires_in": 3600})

    async with client_for(httpx.MockTransport(answer)) as oauth:
        grant = await oauth.refresh(refresh_token=REFRESH, client_id="app", client_secret=None)
    assert grant.refresh_token is None


@pytest.mark.parametrize(
    ("status", "body", "error", "named"),
    [
        (
            400,
            {"error": "invalid_grant", "error_description": f"token {REFRESH} used"},
            OAuthRefusedError,
            "invalid_grant",
        ),
        (401, {"error": "invalid_client"}, OAuthRefusedError, "invalid_client"),
        (400, {"error": REFRESH}, OAuthRefusedError, "HTTP 400"),
        (503, None, OAuthUnavailableError, "HTTP 503"),
        (200, {"token_type": "Bearer"}, OAuthUnavailableError, "without an access_token"),
    ],
)
async def test_answers_are_classified_without_secrets(
    status: int, body: object, error: type[Exception], named: str
) -> None:
    def answer(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body) if body is not None else httpx.Response(status, text="down")

    async with client_for(httpx.MockTransport(answer)) as oauth:
        with pytest.raises(error) as raised:
            await oauth.refresh(refresh_token=REFRESH, client_id="app", client_secret=SECRET)
    assert named in str(raised.value) and CANARY_PREFIX not in str(raised.value)
    if isinstance(raised.value, OAuthUnavailableError):
        assert not raised.value.provably_unsent  # the endpoint answered: it may have rotated


@pytest.mark.parametrize(
    ("failure", "unsent"), [(httpx.ConnectError("refused"), True), (httpx.ReadTimeout("slow"), False)]
)
async def test_transport_failures_say_whether_the_token_left(failure: Exception, unsent: bool) -> None:
    def answer(_request: httpx.Request) -> httpx.Response:
        raise failure

    async with client_for(httpx.MockTransport(answer)) as oauth:
        with pytest.raises(OAuthUnavailableError) as raised:
            await oauth.refresh(refresh_token=REFRESH, client_id="app", client_secret=SECRET)
    assert raised.value.provably_unsent is unsent
    assert raised.value.__cause__ is None and CANARY_PREFIX not in str(raised.value)
