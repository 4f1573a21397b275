"""Assembling the variables an instance receives on Railway (API.md, variables table).

Order, later winning: plan variables; template service variables; system variables;
channel variables; spec.env. The operator sets nothing beyond these.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

CHANNEL_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    # type: ((secret key, variable name), ...)
    "feishu": (("appId", "FEISHU_APP_ID"), ("secret", "FEISHU_SECRET")),
    "dingtalk": (("appKey", "DINGTALK_APP_KEY"), ("appSecret", "DINGTALK_APP_SECRET")),
    "wecom": (("corpId", "WECOM_CORP_ID"), ("secret", "WECOM_SECRET")),
    "telegram": (("token", "TELEGRAM_BOT_TOKEN"), ("botId", "TELEGRAM_BOT_ID")),
}
CHANNEL_CONFIG_VARIABLE = {kind: f"{kind.upper()}_CONFIG" for kind in CHANNEL_KEYS}
CHANNEL_VARIABLES = frozenset(
    [var for pairs in CHANNEL_KEYS.values() for _, var in pairs] + list(CHANNEL_CONFIG_VARIABLE.values())
)
RESERVED_PREFIXES = ("OPENCLAW_", "PLAN_")
RAILWAY_PREFIX = "RAILWAY_"


def reserved_env_reason(name: str) -> str | None:
    """Why a spec.env name may not be used, or None when it may."""
    for prefix in RESERVED_PREFIXES:
        if name.startswith(prefix):
            return f"names starting with {prefix} are set by the operator"
    if name in CHANNEL_VARIABLES:
        return "it is a channel variable, set from spec.channels"
    return None


def channel_variables(kind: str, secret: dict[str, str]) -> dict[str, str]:
    pairs = CHANNEL_KEYS[kind]
    out = {var: secret[key] for key, var in pairs}
    # JSON of exactly the Secret's keys, in the table's order.
    out[CHANNEL_CONFIG_VARIABLE[kind]] = json.dumps(
        {key: secret[key] for key, _ in pairs}, separators=(",", ":")
    )
    return out


@dataclass(frozen=True)
class SystemInfo:
    user_id: str
    subscription_id: str
    plan_name: str
    instance_name: str  # the Railway project name
    created_at: str
    max_instances: int
    max_channels: int
    bandwidth_gb: int
    support_level: str


def system_variables(info: SystemInfo) -> dict[str, str]:
    return {
        "NODE_ENV": "production",
        "OPENCLAW_USER_ID": info.user_id,
        "OPENCLAW_SUBSCRIPTION_ID": info.subscription_id,
        "OPENCLAW_PLAN": info.plan_name.upper(),
        "OPENCLAW_INSTANCE_NAME": info.instance_name,
        "OPENCLAW_CREATED_AT": info.created_at,
        "PLAN_MAX_INSTANCES": str(info.max_instances),
        "PLAN_MAX_CHANNELS": str(info.max_channels),
        "PLAN_MAX_BANDWIDTH": str(info.bandwidth_gb),
        "PLAN_SUPPORT_LEVEL": info.support_level,
    }


def assemble(
    *,
    plan_variables: dict[str, str],
    template_variables: dict[str, str],
    system: dict[str, str],
    channels: dict[str, str],
    env: dict[str, str],
) -> dict[str, str]:
    merged: dict[str, str] = {}
    for layer in (plan_variables, template_variables, system, channels, env):
        merged.update(layer)
    # Railway's own variables are never written, whatever a template carried.
    return {k: v for k, v in merged.items() if not k.startswith(RAILWAY_PREFIX)}


def without_railway_variables(observed: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in observed.items() if not k.startswith(RAILWAY_PREFIX)}
