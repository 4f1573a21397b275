"""Operator settings from the environment (API.md, "Operator settings"); flags mirror them."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, SecretStr

DEFAULT_RAILWAY_API_URL = "https://backboard.railway.com/graphql/v2"
DEFAULT_RAILWAY_OAUTH_TOKEN_URL = "https://backboard.railway.com/oauth/token"
# A well-known key only keeps fingerprints stable between restarts; production sets its own.
DEFAULT_FINGERPRINT_KEY = "claw-operator-fingerprint-key-set-CLAW_FINGERPRINT_KEY"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    railway_api_url: str = DEFAULT_RAILWAY_API_URL
    railway_token: SecretStr | None = None
    railway_workspace_id: str | None = None
    # Defaults are Railway's Pro tier.
    railway_rate_limit_rps: float = 50.0
    railway_rate_limit_rph: int = 10_000
    max_managed_instances: int = 100
    project_prefix: str = "claw"
    cluster_name: str = "default"
    health_url_template: str = "https://{domain}{path}"
    namespaces: tuple[str, ...] = ()
    fingerprint_key: SecretStr = SecretStr(DEFAULT_FINGERPRINT_KEY)
    # How often a steady instance is compared with Railway, and how often one that is
    # deploying is looked at. Steady reads are batched across the fleet.
    resync_seconds: float = Field(60.0, gt=0)
    deploying_poll_seconds: float = Field(3.0, gt=0)
    # How long concurrent reads wait for company before one batched request goes out.
    batch_window_seconds: float = Field(0.05, ge=0)
    batch_size: int = Field(50, ge=1, le=500)
    # Where SelfHosted OAuth access tokens are refreshed.
    railway_oauth_token_url: str = DEFAULT_RAILWAY_OAUTH_TOKEN_URL
    # How often usage (status.usage, claw_usage_*) is sampled: one request per workspace.
    usage_sample_seconds: float = Field(600.0, ge=10)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name)
            return value if value not in (None, "") else None

        values: dict[str, object] = {}
        mapping = {
            "RAILWAY_API_URL": "railway_api_url",
            "RAILWAY_TOKEN": "railway_token",
            "RAILWAY_WORKSPACE_ID": "railway_workspace_id",
            "RAILWAY_RATE_LIMIT_RPS": "railway_rate_limit_rps",
            "RAILWAY_RATE_LIMIT_RPH": "railway_rate_limit_rph",
            "CLAW_MAX_MANAGED_INSTANCES": "max_managed_instances",
            "CLAW_PROJECT_PREFIX": "project_prefix",
            "CLAW_CLUSTER_NAME": "cluster_name",
            "CLAW_HEALTH_URL_TEMPLATE": "health_url_template",
            "CLAW_FINGERPRINT_KEY": "fingerprint_key",
            "CLAW_RESYNC_SECONDS": "resync_seconds",
            "CLAW_DEPLOYING_POLL_SECONDS": "deploying_poll_seconds",
            "CLAW_BATCH_WINDOW_SECONDS": "batch_window_seconds",
            "CLAW_BATCH_SIZE": "batch_size",
            "RAILWAY_OAUTH_TOKEN_URL": "railway_oauth_token_url",
            "CLAW_USAGE_SAMPLE_SECONDS": "usage_sample_seconds",
        }
        for variable, field in mapping.items():
            value = get(variable)
            if value is not None:
                values[field] = value
        namespaces = get("CLAW_NAMESPACES")
        if namespaces:
            values["namespaces"] = tuple(n.strip() for n in namespaces.split(",") if n.strip())
        return cls.model_validate(values)
