"""Railway's OAuth token endpoint, emulated: the `refresh_token` grant with rotation.

An OAuth app (client id and secret) belongs to a workspace. `issue()` stands for a user
completing the authorization-code flow: it returns a first access/refresh pair. Access
tokens are registered as ordinary API tokens of the app's workspace that stop working
`ttl_seconds` (one hour, like Railway's) after issue, measured on the state's clock, so a
test moves time instead of sleeping. Refresh tokens rotate: each refresh returns a new
one and the presented one stops working; presenting a used one is `invalid_grant` and is
counted in `reuse_attempts`, so a test can prove the operator never did it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from claw_emulators.railway.faults import fingerprint
from claw_emulators.railway.ratelimit import RateTier
from claw_emulators.railway.state import RailwayState

ACCESS_TOKEN_TTL = 3600.0


@dataclass
class OAuthApp:
    client_id: str
    client_secret: str | None
    workspace: str
    tier: RateTier | str


@dataclass
class OAuthEndpoint:
    state: RailwayState
    ttl_seconds: float = ACCESS_TOKEN_TTL
    apps: dict[str, OAuthApp] = field(default_factory=dict)
    # refresh-token fingerprint -> (client id, still usable)
    _refresh_tokens: dict[str, tuple[str, bool]] = field(default_factory=dict)
    refreshes: int = 0
    reuse_attempts: int = 0

    def add_app(
        self, client_id: str, client_secret: str | None, workspace: str, tier: RateTier | str = "hobby"
    ) -> OAuthApp:
        app = self.apps[client_id] = OAuthApp(client_id, client_secret, workspace, tier)
        return app

    def issue(self, client_id: str) -> dict[str, Any]:
        """A fresh grant for the app, as the end of an authorization-code flow gives it."""
        app = self.apps[client_id]
        refresh = "rt-" + secrets.token_urlsafe(24)
        self._refresh_tokens[fingerprint(refresh)] = (client_id, True)
        return self._answer(app, refresh)

    def _answer(self, app: OAuthApp, refresh: str) -> dict[str, Any]:
        access = "at-" + secrets.token_urlsafe(24)
        token = self.state.add_token(access, app.workspace, tier=app.tier)
        token.expires_at = self.state.clock() + self.ttl_seconds
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": int(self.ttl_seconds),
            "token_type": "Bearer",
        }

    def token_request(
        self, form: dict[str, str], basic: tuple[str, str] | None
    ) -> tuple[int, dict[str, Any]]:
        """One POST to the token endpoint: (HTTP status, JSON body) as RFC 6749 section 5."""
        if form.get("grant_type") != "refresh_token":
            return 400, {"error": "unsupported_grant_type"}
        client_id, client_secret = basic if basic else (form.get("client_id", ""), form.get("client_secret"))
        app = self.apps.get(client_id)
        if app is None or (app.client_secret is not None and client_secret != app.client_secret):
            return 401, {"error": "invalid_client"}
        presented = form.get("refresh_token", "")
        record = self._refresh_tokens.get(fingerprint(presented)) if presented else None
        if record is None or record[0] != client_id:
            return 400, {"error": "invalid_grant", "error_description": "unknown refresh token"}
        if not record[1]:
            self.reuse_attempts += 1
            return 400, {"error": "invalid_grant", "error_description": "refresh token already used"}
        self._refresh_tokens[fingerprint(presented)] = (client_id, False)
        rotated = "rt-" + secrets.token_urlsafe(24)
        self._refresh_tokens[fingerprint(rotated)] = (client_id, True)
        self.refreshes += 1
        return 200, self._answer(app, rotated)
