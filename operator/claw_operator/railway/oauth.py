"""Refreshing a Railway OAuth access token: the standard OAuth 2.0 `refresh_token` grant
(RFC 6749 section 6), a form POST to the token endpoint (`RAILWAY_OAUTH_TOKEN_URL`).

Only the HTTP exchange lives here; storing the new pair before it is used, and never
presenting a refresh token twice, is the caller's job (k8s/token_refresher.py), because
Railway rotates refresh tokens and a used one stops working.

Secrecy: no message of an exception raised here carries a token, the client secret or
the endpoint's free-text description (which could echo what we sent); only the HTTP
status and the endpoint's standard `error` code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import httpx

from claw_operator.config import DEFAULT_RAILWAY_OAUTH_TOKEN_URL

# RFC 6749 error codes are short ASCII words; anything else is not repeated.
_ERROR_CODE = re.compile(r"^[a-z_]{1,40}$")


@dataclass(frozen=True)
class TokenGrant:
    """The endpoint's answer. `refresh_token` None: the old one stays valid (RFC 6749
    allows a server not to rotate); `expires_in` None: the server did not say."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_in: float | None


class OAuthError(Exception):
    """A refresh did not produce a new token."""


class OAuthRefusedError(OAuthError):
    """The endpoint refused the grant (e.g. `invalid_grant`: the refresh token is spent,
    revoked or unknown; `invalid_client`: clientId/clientSecret are wrong). Only a person
    re-authorizing can fix it."""


class OAuthUnavailableError(OAuthError):
    """No usable answer. `provably_unsent` is True only when the request never left this
    process (no connection was made), so the refresh token is certainly still unused."""

    def __init__(self, message: str, *, provably_unsent: bool) -> None:
        super().__init__(message)
        self.provably_unsent = provably_unsent


class OAuthClient:
    def __init__(
        self,
        token_url: str = DEFAULT_RAILWAY_OAUTH_TOKEN_URL,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._token_url = token_url
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": "claw-operator", "Accept": "application/json"},
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def refresh(self, *, refresh_token: str, client_id: str, client_secret: str | None) -> TokenGrant:
        """One `refresh_token` grant. A confidential client authenticates with HTTP Basic
        (client_secret_basic, which every OAuth server must accept); a public client (no
        secret) names itself with `client_id` in the form."""
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if not client_secret:
            form["client_id"] = client_id
        try:
            if client_secret:
                auth = httpx.BasicAuth(client_id, client_secret)
                response = await self._http.post(self._token_url, data=form, auth=auth)
            else:
                response = await self._http.post(self._token_url, data=form)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise OAuthUnavailableError(
                f"cannot connect to the OAuth token endpoint ({type(exc).__name__})", provably_unsent=True
            ) from None
        except httpx.HTTPError as exc:
            # The request may have reached the endpoint, which may have rotated the token.
            raise OAuthUnavailableError(
                f"no answer from the OAuth token endpoint ({type(exc).__name__})", provably_unsent=False
            ) from None
        return _grant_from(response)


def _grant_from(response: httpx.Response) -> TokenGrant:
    status = response.status_code
    body: Any
    try:
        body = response.json()
    except ValueError:
        body = None
    if status in (400, 401) and isinstance(body, dict):
        code = body.get("error")
        named = f" ({code})" if isinstance(code, str) and _ERROR_CODE.match(code) else ""
        raise OAuthRefusedError(f"the OAuth token endpoint refused the refresh token{named}, HTTP {status}")
    if status != 200 or not isinstance(body, dict):
        raise OAuthUnavailableError(
            f"unexpected answer from the OAuth token endpoint, HTTP {status}", provably_unsent=False
        )
    access = body.get("access_token")
    refresh = body.get("refresh_token")
    expires_in = body.get("expires_in")
    if not isinstance(access, str) or not access:
        raise OAuthUnavailableError(
            "the OAuth token endpoint answered without an access_token", provably_unsent=False
        )
    return TokenGrant(
        access_token=access,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        expires_in=float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else None,
    )
