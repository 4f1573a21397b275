"""Resolving a ClawInstance into what it should be on Railway, before touching Railway.

Every failure here is a `SpecProblem` with the Synced reason and a sentence naming the
field or object and what to do. Nothing in this module speaks to Railway.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from claw_operator.api.conditions import Reason
from claw_operator.api.models import ClawInstanceSpec, ClawPlanSpec, RailwayMode
from claw_operator.rules import variables as var
from claw_operator.rules.naming import project_marker, project_name, service_name
from claw_operator.rules.quota import InstanceEntry, quota_problem

SecretGetter = Callable[[str, str], Awaitable[dict[str, str] | None]]


class SpecProblem(Exception):
    """The instance cannot be applied until a person changes something."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


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
        raise SpecProblem(Reason.INVALID_SPEC, f"Invalid {_field_of(exc)}; fix the manifest.") from None


def parse_plan(name: str, raw: Mapping[str, Any]) -> ClawPlanSpec:
    try:
        return ClawPlanSpec.model_validate(dict(raw))
    except ValidationError as exc:
        raise SpecProblem(
            Reason.INVALID_SPEC, f"ClawPlan {name} is invalid ({_field_of(exc)}); fix the plan."
        ) from None


async def _secret_key(get_secret: SecretGetter, namespace: str, secret: str, key: str, used_by: str) -> str:
    data = await get_secret(namespace, secret)
    if data is None:
        raise SpecProblem(
            Reason.SECRET_NOT_FOUND,
            f"Secret {namespace}/{secret} (referenced by {used_by}) does not exist; create it.",
        )
    value = data.get(key)
    if not value:
        raise SpecProblem(
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
) -> Desired:
    meta = body.get("metadata", {})
    namespace, name = str(meta.get("namespace", "")), str(meta["name"])
    spec = parse_spec(body.get("spec") or {})

    plan_raw = plans.get(spec.planRef)
    if plan_raw is None:
        raise SpecProblem(
            Reason.PLAN_NOT_FOUND,
            f"ClawPlan {spec.planRef!r} (spec.planRef) does not exist; create it or fix planRef.",
        )
    plan = parse_plan(spec.planRef, plan_raw)

    if len(spec.channels) > plan.limits.maxChannels:
        raise SpecProblem(
            Reason.INVALID_SPEC,
            f"spec.channels has {len(spec.channels)} channels but plan {spec.planRef} allows "
            f"{plan.limits.maxChannels}; remove channels or choose a larger plan.",
        )
    for i, env in enumerate(spec.env):
        why = var.reserved_env_reason(env.name)
        if why:
            raise SpecProblem(
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
        raise SpecProblem(Reason.QUOTA_EXCEEDED, problem)

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
    if spec.railway.mode == RailwayMode.SelfHosted:
        token_ref = spec.railway.tokenSecretRef
        assert token_ref is not None  # the model requires it for SelfHosted
        token = await _secret_key(
            get_secret, namespace, token_ref.name, token_ref.key, "spec.railway.tokenSecretRef"
        )
        secrets.add(token)

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
    )
