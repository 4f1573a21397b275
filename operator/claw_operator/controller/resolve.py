"""Resolving a ClawInstance into what it should be on Railway, before touching Railway.

Every failure here is a `Terminal` error with the Synced reason and a sentence naming the
field or object and what to do. Nothing in this module speaks to Railway.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from claw_operator.api.conditions import Reason
from claw_operator.api.models import ClawInstanceSpec, ClawPlanSpec, RailwayMode
from claw_operator.controller.errors import Terminal
from claw_operator.controller.ports import DEFAULT_TOKEN_TIER, TOKEN_TIERS, PlanChooser, TokenTier
from claw_operator.rules import variables as var
from claw_operator.rules.naming import project_marker, project_name, service_name
from claw_operator.rules.quota import InstanceEntry, quota_problem
from claw_operator.rules.revision import plan_revision

SecretGetter = Callable[[str, str], Awaitable[dict[str, str] | None]]

# Keys of a SelfHosted token Secret that hold OAuth credentials (API.md, tokenSecretRef).
OAUTH_SECRET_KEYS = ("refreshToken", "clientSecret")


@dataclass(frozen=True)
class Desired:
    namespace: str
    name: str
    spec: ClawInstanceSpec
    plan_name: str
    plan: ClawPlanSpec
    project_name: str
    marker: str
    service_name: str
    # Variables except the template layer, which needs a Railway read to resolve.
    base_layers: dict[str, dict[str, str]]
    token: str | None  # the tenant token for SelfHosted; None means the platform token
    workspace_id: str | None
    secret_values: frozenset[str] = field(default_factory=frozenset)
    token_tier: TokenTier = DEFAULT_TOKEN_TIER
    # Where the tenant token comes from, for messages: "namespace/name" and key.
    token_source: tuple[str, str] | None = None
    plan_revision: str = ""
    plan_note: str | None = None  # from the rollout gate, e.g. waiting for a plan revision
    rollback_to: str | None = None  # from the rollout gate: the deployment to roll back to
    # Everything the instance is made from besides its spec (plan, referenced Secret keys),
    # for the fingerprint that lets a terminal error wait for a change. Values are secret.
    inputs: Mapping[str, object] = field(default_factory=dict)

    def variables(self, template_variables: Mapping[str, str] | None = None) -> dict[str, str]:
        layers = self.base_layers
        return var.assemble(
            plan_variables=layers["plan"],
            template_variables=dict(template_variables or {}),
            system=layers["system"],
            channels=layers["channels"],
            env=layers["env"],
        )


def _field_of(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"spec.{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid"))


def parse_spec(raw: Mapping[str, Any]) -> ClawInstanceSpec:
    try:
        return ClawInstanceSpec.model_validate(dict(raw))
    except ValidationError as exc:
        raise Terminal(Reason.INVALID_SPEC, f"Invalid {_field_of(exc)}; fix the manifest.") from None


def parse_plan(name: str, raw: Mapping[str, Any]) -> ClawPlanSpec:
    try:
        return ClawPlanSpec.model_validate(dict(raw))
    except ValidationError as exc:
        raise Terminal(
            Reason.INVALID_SPEC, f"ClawPlan {name} is invalid ({_field_of(exc)}); fix the plan."
        ) from None


async def _secret_data(get_secret: SecretGetter, namespace: str, secret: str, used_by: str) -> dict[str, str]:
    data = await get_secret(namespace, secret)
    if data is None:
        raise Terminal(
            Reason.SECRET_NOT_FOUND,
            f"Secret {namespace}/{secret} (referenced by {used_by}) does not exist; create it.",
        )
    return data


async def _secret_key(get_secret: SecretGetter, namespace: str, secret: str, key: str, used_by: str) -> str:
    data = await _secret_data(get_secret, namespace, secret, used_by)
    return _key_of(data, namespace, secret, key, used_by)


def _key_of(data: Mapping[str, str], namespace: str, secret: str, key: str, used_by: str) -> str:
    value = data.get(key)
    if not value:
        raise Terminal(
            Reason.SECRET_KEY_MISSING,
            f"Secret {namespace}/{secret} (referenced by {used_by}) has no non-empty key {key!r}; add it.",
        )
    return value


async def resolve(
    *,
    body: Mapping[str, Any],
    plans: Mapping[str, Mapping[str, Any]],
    get_secret: SecretGetter,
    instances: list[InstanceEntry],
    prefix: str,
    cluster: str,
    max_managed: int,
    default_workspace: str | None,
    plan_for: PlanChooser | None = None,
) -> Desired:
    meta = body.get("metadata", {})
    namespace, name = str(meta.get("namespace", "")), str(meta["name"])
    spec = parse_spec(body.get("spec") or {})

    plan_raw = plans.get(spec.planRef)
    if plan_raw is None:
        raise Terminal(
            Reason.PLAN_NOT_FOUND,
            f"ClawPlan {spec.planRef!r} (spec.planRef) does not exist; create it or fix planRef.",
        )
    plan_note: str | None = None
    rollback_to: str | None = None
    if plan_for is not None:
        choice = plan_for(namespace, name, spec.planRef, plan_raw)
        plan_raw, revision, plan_note = choice.spec, choice.revision, choice.note
        rollback_to = choice.rollback_to
    else:
        revision = plan_revision(plan_raw)
    plan = parse_plan(spec.planRef, plan_raw)

    if len(spec.channels) > plan.limits.maxChannels:
        raise Terminal(
            Reason.INVALID_SPEC,
            f"spec.channels has {len(spec.channels)} channels but plan {spec.planRef} allows "
            f"{plan.limits.maxChannels}; remove channels or choose a larger plan.",
        )
    for i, env in enumerate(spec.env):
        why = var.reserved_env_reason(env.name)
        if why:
            raise Terminal(
                Reason.INVALID_SPEC,
                f"spec.env[{i}].name {env.name} is reserved ({why}); rename the variable.",
            )

    problem = quota_problem(
        instances,
        namespace=namespace,
        name=name,
        plan_name=spec.planRef,
        max_instances=plan.limits.maxInstances,
        max_managed=max_managed,
    )
    if problem:
        raise Terminal(Reason.QUOTA_EXCEEDED, problem)

    secrets: set[str] = set()
    channel_vars: dict[str, str] = {}
    for i, channel in enumerate(spec.channels):
        kind = str(channel.type)
        values: dict[str, str] = {}
        for key, _ in var.CHANNEL_KEYS[kind]:
            values[key] = await _secret_key(
                get_secret, namespace, channel.secretRef.name, key, f"spec.channels[{i}] ({kind})"
            )
        secrets.update(values.values())
        for variable, value in var.channel_variables(kind, values).items():
            channel_vars[variable] = value
            secrets.add(value)

    env_vars: dict[str, str] = {}
    for i, env in enumerate(spec.env):
        if env.valueFrom is not None:
            ref = env.valueFrom.secretKeyRef
            value = await _secret_key(get_secret, namespace, ref.name, ref.key, f"spec.env[{i}] ({env.name})")
            secrets.add(value)
            env_vars[env.name] = value
        else:
            env_vars[env.name] = env.value or ""

    token: str | None = None
    tier: TokenTier = DEFAULT_TOKEN_TIER
    token_source: tuple[str, str] | None = None
    if spec.railway.mode == RailwayMode.SelfHosted:
        token_ref = spec.railway.tokenSecretRef
        assert token_ref is not None  # the model requires it for SelfHosted
        used_by = "spec.railway.tokenSecretRef"
        token_data = await _secret_data(get_secret, namespace, token_ref.name, used_by)
        token = _key_of(token_data, namespace, token_ref.name, token_ref.key, used_by)
        tier = _tier_of(token_data, namespace, token_ref.name)
        token_source = (f"{namespace}/{token_ref.name}", token_ref.key)
        secrets.add(token)
        # An OAuth token's companions (API.md) are as secret: redacted wherever text is shown.
        secrets.update(token_data.get(key, "") for key in OAUTH_SECRET_KEYS)

    owner = spec.owner
    pname = project_name(prefix, namespace, name)
    system = var.system_variables(
        var.SystemInfo(
            user_id=(owner.userId or "") if owner else "",
            subscription_id=(owner.subscriptionId or "") if owner else "",
            plan_name=spec.planRef,
            instance_name=pname,
            created_at=str(meta.get("creationTimestamp", "")),
            max_instances=plan.limits.maxInstances,
            max_channels=plan.limits.maxChannels,
            bandwidth_gb=plan.limits.bandwidthGB,
            support_level=plan.supportLevel,
        )
    )
    workspace = spec.railway.workspaceId or (default_workspace if token is None else None)
    return Desired(
        namespace=namespace,
        name=name,
        spec=spec,
        plan_name=spec.planRef,
        plan=plan,
        project_name=pname,
        marker=project_marker(cluster, namespace, name),
        service_name=service_name(name),
        base_layers={
            "plan": dict(plan.variables),
            "system": system,
            "channels": channel_vars,
            "env": env_vars,
        },
        token=token,
        workspace_id=workspace,
        secret_values=frozenset(secrets),
        token_tier=tier,
        token_source=token_source,
        plan_revision=revision,
        plan_note=plan_note,
        rollback_to=rollback_to,
        inputs={
            "plan": dict(plan_raw),
            "channels": channel_vars,
            "env": env_vars,
            "token": token or "",
            "tier": tier,
        },
    )


def _tier_of(data: Mapping[str, str], namespace: str, secret: str) -> TokenTier:
    raw = data.get("tier")
    if not raw:
        return DEFAULT_TOKEN_TIER
    for tier in TOKEN_TIERS:
        if raw == tier:
            return tier
    raise Terminal(
        Reason.INVALID_SPEC,
        f"Secret {namespace}/{secret} key 'tier' must be one of {', '.join(TOKEN_TIERS)}; fix the Secret.",
    )
