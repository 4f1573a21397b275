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
    # The slow resync: a full pass over each steady instance, and unlabelled Secrets.
    resync_seconds: float = Field(600.0, gt=0)
    # How often the token's scheduler looks at deploying instances, and at each steady one
    # (batched; the steady period stretches evenly when the token's budget is short).
    deploying_poll_seconds: float = Field(3.0, gt=0)
    steady_poll_seconds: float = Field(12.0, gt=0)
    # How long concurrent reads wait for company before one batched request goes out,
    # and how many service instances one request reads.
    batch_window_seconds: float = Field(0.05, ge=0)
    batch_size: int = Field(150, ge=1, le=500)
    # Where SelfHosted OAuth access tokens are refreshed.
    railway_oauth_token_url: str = DEFAULT_RAILWAY_OAUTH_TOKEN_URL
    # How often usage (status.usage, claw_usage_*) is sampled: one request per workspace.
    usage_sample_seconds: float = Field(600.0, ge=10)
    # Reconcile passes running at once.
    concurrency: int = Field(32, ge=1, le=1000)
    # Sharding (API.md): one shard by default, guarded by its Lease like any other (a
    # second replica is a standby).
    shards: int = Field(1, ge=1)
    shard_id: int | None = Field(None, ge=0)
    lease_seconds: float = Field(15.0, ge=3)
    operator_namespace: str = "claw-system"

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
            "CLAW_STEADY_POLL_SECONDS": "steady_poll_seconds",
            "CLAW_CONCURRENCY": "concurrency",
            "CLAW_SHARDS": "shards",
            "CLAW_SHARD_ID": "shard_id",
            "CLAW_LEASE_SECONDS": "lease_seconds",
        }
        for variable, field in mapping.items():
            value = get(variable)
            if value is not None:
                values[field] = value
        values["operator_namespace"] = get("CLAW_OPERATOR_NAMESPACE") or _pod_namespace() or "claw-system"
        namespaces = get("CLAW_NAMESPACES")
        if namespaces:
            values["namespaces"] = tuple(n.strip() for n in namespaces.split(",") if n.strip())
        return cls.model_validate(values)


SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def _pod_namespace() -> str | None:
    """The namespace the operator's pod runs in, when it runs in one."""
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE) as file:
            return file.read().strip() or None
    except OSError:
        return None
