"""ClawPlan and ClawInstance, field by field as in API.md.

These models are the single source of the CRDs (`claw_operator.api.crdgen` renders them), so
every field carries the description `kubectl explain` shows. Extra keys in
`json_schema_extra` carry Kubernetes-only schema facts (list-map keys, CEL rules).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

GROUP = "claw.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

FINALIZER = "claw.io/finalizer"
EXTERNAL_NAME_ANNOTATION = "claw.io/external-name"
RESTARTED_AT_ANNOTATION = "claw.io/restartedAt"
REDEPLOY_REQUESTED_AT_ANNOTATION = "claw.io/redeployRequestedAt"
# "true" stops all reconciliation of the object (API.md, Pause).
PAUSED_ANNOTATION = "claw.io/paused"
# A time on a ClawPlan: resume its halted rollout.
ROLLOUT_RESUMED_AT_ANNOTATION = "claw.io/rolloutResumedAt"
# "true" on a ClawInstance: preferred as a canary of its plan's rollouts.
CANARY_LABEL = "claw.io/canary"
# Secrets carrying this label ("true") are watched and followed within seconds.
WATCH_LABEL = "claw.io/watch"

ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
K8S_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


class _Model(BaseModel):
    # Unknown fields are rejected in specs (the CRD is structural, so the API server
    # prunes them anyway); status models ignore what they do not know.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, use_enum_values=True)


class _StatusModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, use_enum_values=True)


# ---------------------------------------------------------------- ClawPlan


class PlanLimits(_Model):
    maxInstances: int = Field(
        5,
        ge=0,
        le=100000,
        description="Instances allowed per owner.subscriptionId (any plan); per namespace and plan "
        "when an instance has no owner. Exported to the app as PLAN_MAX_INSTANCES.",
    )
    maxChannels: int = Field(
        10,
        ge=0,
        le=100,
        description="Messaging channels one instance may declare. Exported as PLAN_MAX_CHANNELS.",
    )
    bandwidthGB: int = Field(
        50, ge=0, le=1000000, description="Bandwidth allowance in GB, exported as PLAN_MAX_BANDWIDTH."
    )


class RepoSource(_Model):
    name: str = Field(
        ...,
        min_length=3,
        max_length=200,
        pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$",
        description="GitHub repository as owner/repo.",
    )
    branch: str = Field("main", min_length=1, max_length=255, description="Branch to deploy.")


class TemplateSource(_Model):
    projectId: str = Field(
        ..., min_length=1, max_length=64, description="Railway project holding the template service."
    )
    environmentId: str = Field(
        ..., min_length=1, max_length=64, description="Environment of the template service."
    )
    serviceId: str = Field(
        ..., min_length=1, max_length=64, description="Service to clone: its source, settings and variables."
    )


class PlanSource(_Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "[has(self.image), has(self.repo), has(self.template)].filter(x, x).size() == 1",
                    "message": "set exactly one of source.image, source.repo or source.template",
                }
            ]
        },
    )
    image: str | None = Field(
        None,
        min_length=1,
        max_length=512,
        description="Container image to run, e.g. ghcr.io/openclaw/openclaw:2026.2.1.",
    )
    repo: RepoSource | None = Field(None, description="Build and run this GitHub repository.")
    template: TemplateSource | None = Field(
        None, description="Clone an existing Railway service: its source, settings and variables."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> PlanSource:
        chosen = [n for n in ("image", "repo", "template") if getattr(self, n) is not None]
        if len(chosen) != 1:
            raise ValueError("set exactly one of source.image, source.repo or source.template")
        return self

    @property
    def kind(self) -> Literal["image", "repo", "template"]:
        if self.image is not None:
            return "image"
        return "repo" if self.repo is not None else "template"


class PlanResources(_Model):
    vCPUs: float | None = Field(None, gt=0, le=64, description="vCPUs per replica (Railway service limit).")
    memoryGB: float | None = Field(
        None, gt=0, le=256, description="Memory in GB per replica (Railway service limit)."
    )


class HealthCheck(_Model):
    path: str = Field(
        "/health", pattern=r"^/", max_length=512, description="HTTP path probed on the public domain."
    )
    intervalSeconds: int = Field(60, ge=5, le=3600, description="Seconds between probes.")
    timeoutSeconds: int = Field(5, ge=1, le=60, description="Seconds before a probe counts as failed.")
    failureThreshold: int = Field(
        3, ge=1, le=100, description="Consecutive failures before Healthy turns False."
    )


class PlanRollout(_Model):
    maxConcurrent: int | str = Field(
        10,
        description="Instances redeploying the new revision at once: a number, or a percentage of the "
        'plan\'s instances such as "10%" (at least one).',
        json_schema_extra={"x-kubernetes-int-or-string": True},
    )
    canary: int = Field(
        1, ge=0, le=1000, description="Instances that go first; the rest wait until they are Ready."
    )
    healthyForSeconds: int = Field(
        60, ge=0, le=86400, description="An updated instance counts as done when Ready this long."
    )
    maxFailures: int = Field(
        1, ge=1, le=100000, description="Failed or unhealthy instances that halt the rollout."
    )
    autoRollback: bool = Field(
        True, description="When halted, roll the failed instances back to their last good deployment."
    )

    @field_validator("maxConcurrent")
    @classmethod
    def _count_or_percentage(cls, value: int | str) -> int | str:
        if isinstance(value, int):
            if value < 1:
                raise ValueError("rollout.maxConcurrent must be at least 1")
            return value
        if not re.fullmatch(r"(100|[1-9][0-9]?)%", value):
            raise ValueError('rollout.maxConcurrent must be a number or a percentage from "1%" to "100%"')
        return value


class ClawPlanSpec(_Model):
    displayName: str | None = Field(None, max_length=100, description="Human name of the tier.")
    limits: PlanLimits = Field(
        default_factory=PlanLimits, description="What an instance on this plan may use."
    )  # type: ignore[arg-type]
    supportLevel: str = Field(
        "standard", max_length=50, description="Support tier, exported to the app as PLAN_SUPPORT_LEVEL."
    )
    source: PlanSource = Field(
        ..., description="What to run on Railway: exactly one of image, repo or template."
    )
    variables: dict[str, str] = Field(
        default_factory=dict,
        description="Default variables for every instance on this plan; instance variables win.",
        json_schema_extra={"maxProperties": 200, "propertyNames": {"pattern": ENV_NAME_PATTERN}},
    )
    resources: PlanResources | None = Field(None, description="Railway service limits per replica.")
    replicas: int = Field(1, ge=1, le=50, description="Railway replicas of the service.")
    region: str | None = Field(None, max_length=64, description="Railway region, e.g. us-west2.")
    healthCheck: HealthCheck = Field(
        default_factory=HealthCheck, description="How the operator probes each instance."
    )  # type: ignore[arg-type]
    deployTimeoutSeconds: int = Field(
        600,
        ge=30,
        le=86400,
        description="A deployment not SUCCESS after this many seconds is failed (DeployTimeout).",
    )
    rollout: PlanRollout = Field(
        default_factory=PlanRollout,
        description="How a change of this plan reaches its instances: canary first, then in waves of at "
        "most maxConcurrent, halting after maxFailures.",
    )  # type: ignore[arg-type]

    @field_validator("variables")
    @classmethod
    def _variable_names(cls, value: dict[str, str]) -> dict[str, str]:
        # The CRD cannot check map keys (no propertyNames in Kubernetes), so the operator does.
        bad = sorted(name for name in value if not re.match(ENV_NAME_PATTERN, name))
        if bad:
            raise ValueError(f"variables: {', '.join(bad)} are not valid variable names ({ENV_NAME_PATTERN})")
        return value


class Condition(_StatusModel):
    type: str = Field(..., description="Ready, Synced, Deployed or Healthy (Valid on plans).")
    status: Literal["True", "False", "Unknown"] = Field(..., description="True, False or Unknown.")
    reason: str = Field(..., description="One CamelCase word, stable across releases.")
    message: str = Field("", description="What is happening or what to do, in one sentence or two.")
    lastTransitionTime: str = Field(..., description="When status last flipped (RFC 3339).")
    observedGeneration: int | None = Field(None, description="metadata.generation this condition describes.")


RolloutPhase = Literal["Progressing", "Complete", "Halted"]


class RolloutStatus(_StatusModel):
    revision: str | None = Field(None, description="The plan revision being rolled out.")
    phase: RolloutPhase | None = Field(None, description="Progressing, Complete or Halted.")
    updated: int | None = Field(None, description="Instances running this revision and Ready.")
    pending: int | None = Field(None, description="Instances still on an older revision.")
    failed: int | None = Field(None, description="Instances that failed or turned unhealthy on it.")
    message: str | None = Field(None, description="What the rollout is doing or why it halted.")
    startedAt: str | None = Field(None, description="When this revision started rolling out (RFC 3339).")
    fromRevision: str | None = Field(
        None, description="The plan revision before this one: new instances start on it while halted."
    )
    haltedAt: str | None = Field(
        None,
        description="When the rollout halted; annotation claw.io/rolloutResumedAt set later resumes it.",
    )
    resumedAt: str | None = Field(
        None,
        description="The claw.io/rolloutResumedAt value that last resumed it; earlier failures are forgiven.",
    )
    failedInstances: list[str] = Field(
        default_factory=list,
        description="namespace/name of the instances that failed on this revision (kept after they are "
        "rolled back, so they do not move again until the rollout resumes).",
    )


class RecordedSource(_StatusModel):
    # spec.source as recorded; validated when it was the spec, so no CEL rule here.
    image: str | None = Field(None, description="spec.source.image of that revision.")
    repo: RepoSource | None = Field(None, description="spec.source.repo of that revision.")
    template: TemplateSource | None = Field(None, description="spec.source.template of that revision.")


class PlanRevisionRecord(_StatusModel):
    revision: str = Field(..., description="The plan revision these fields hash to.")
    source: RecordedSource | None = Field(None, description="spec.source of that revision.")
    variables: dict[str, str] | None = Field(None, description="spec.variables of that revision.")
    resources: PlanResources | None = Field(None, description="spec.resources of that revision.")
    replicas: int | None = Field(None, description="spec.replicas of that revision.")
    region: str | None = Field(None, description="spec.region of that revision.")
    healthCheck: HealthCheck | None = Field(None, description="spec.healthCheck of that revision.")


class ClawPlanStatus(_StatusModel):
    instances: int | None = Field(None, description="ClawInstances that use this plan.")
    revision: str | None = Field(
        None,
        description="Hash of the fields that reach instances (source, variables, resources, replicas, "
        "region, healthCheck).",
    )
    rollout: RolloutStatus | None = Field(
        None, description="The current revision's progress across the fleet."
    )
    revisionHistory: list[PlanRevisionRecord] = Field(
        default_factory=list,
        description="The fields of the current revision and of every older revision an instance still runs "
        "or could be rolled back to: what an instance keeps applying until the rollout lets it move.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["revision"]},
    )
    observedGeneration: int | None = Field(
        None, description="Last metadata.generation the operator acted on."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Valid: the source is resolvable (a template service is reachable). RolloutComplete: "
        "every instance runs the current revision (reasons Progressing, Complete, Halted).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


# ---------------------------------------------------------------- ClawInstance


class ChannelType(StrEnum):
    feishu = "feishu"
    dingtalk = "dingtalk"
    wecom = "wecom"
    telegram = "telegram"


class RailwayMode(StrEnum):
    Managed = "Managed"
    SelfHosted = "SelfHosted"


class ManagementPolicy(StrEnum):
    Full = "Full"
    Observe = "Observe"


class DeletionPolicy(StrEnum):
    Delete = "Delete"
    Retain = "Retain"


class Owner(_Model):
    userId: str | None = Field(
        None, max_length=128, description="Billing user id, exported as OPENCLAW_USER_ID."
    )
    subscriptionId: str | None = Field(
        None,
        max_length=128,
        description="Billing subscription id, exported as OPENCLAW_SUBSCRIPTION_ID; quota counts per "
        "subscription.",
    )


class LocalObjectReference(_Model):
    name: str = Field(
        ...,
        min_length=1,
        max_length=253,
        pattern=K8S_NAME_PATTERN,
        description="Secret name in the same namespace.",
    )


class SecretKeySelector(_Model):
    name: str = Field(
        ...,
        min_length=1,
        max_length=253,
        pattern=K8S_NAME_PATTERN,
        description="Secret name in the same namespace.",
    )
    key: str = Field(..., min_length=1, max_length=253, description="Key within the Secret.")


class Channel(_Model):
    type: ChannelType = Field(
        ..., description="feishu | dingtalk | wecom | telegram; each type at most once."
    )
    secretRef: LocalObjectReference = Field(
        ...,
        description="Secret with the channel credentials: feishu appId+secret; dingtalk appKey+appSecret; "
        "wecom corpId+secret; telegram token+botId.",
    )


class EnvVarSource(_Model):
    secretKeyRef: SecretKeySelector = Field(
        ..., description="A key of a Secret in the same namespace; never logged or shown."
    )


class EnvVar(_Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.value) != has(self.valueFrom)",
                    "message": "set exactly one of value or valueFrom",
                }
            ]
        },
    )
    name: str = Field(
        ...,
        min_length=1,
        max_length=128,
        pattern=ENV_NAME_PATTERN,
        description="Variable name. Names starting with OPENCLAW_ or PLAN_, and channel variables, are "
        "reserved.",
    )
    value: str | None = Field(None, max_length=32768, description="Literal value.")
    valueFrom: EnvVarSource | None = Field(
        None, description="Take the value from a Secret key (treated as secret)."
    )

    @model_validator(mode="after")
    def _value_xor_value_from(self) -> EnvVar:
        if (self.value is None) == (self.valueFrom is None):
            raise ValueError(f"env {self.name}: set exactly one of value or valueFrom")
        return self


class RailwaySpec(_Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.mode != 'SelfHosted' || has(self.tokenSecretRef)",
                    "message": "railway.tokenSecretRef is required when railway.mode is SelfHosted",
                }
            ]
        },
    )
    mode: RailwayMode = Field(
        RailwayMode.Managed,
        description="Managed uses the platform token; SelfHosted uses the tenant's token.",
    )
    tokenSecretRef: SecretKeySelector | None = Field(
        None, description="Railway token of the tenant; required when SelfHosted."
    )
    workspaceId: str | None = Field(
        None,
        max_length=64,
        description="Railway workspace; defaults to the operator's (Managed) or the token's default.",
    )

    @model_validator(mode="after")
    def _token_when_self_hosted(self) -> RailwaySpec:
        if self.mode == RailwayMode.SelfHosted and self.tokenSecretRef is None:
            raise ValueError("railway.tokenSecretRef is required when railway.mode is SelfHosted")
        return self


class ClawInstanceSpec(_Model):
    planRef: str = Field(
        ..., min_length=1, max_length=253, pattern=K8S_NAME_PATTERN, description="Name of a ClawPlan."
    )
    owner: Owner | None = Field(None, description="Identity from the billing system.")
    channels: list[Channel] = Field(
        default_factory=list,
        max_length=4,
        description="Messaging channels, unique by type; at most the plan's limits.maxChannels.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=200,
        description="Custom variables. Secret-backed values are never logged or shown.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    railway: RailwaySpec = Field(
        default_factory=RailwaySpec, description="Which Railway account runs this instance."
    )  # type: ignore[arg-type]
    suspend: bool = Field(False, description="true stops the running deployment; false resumes it.")
    deletionPolicy: DeletionPolicy = Field(
        DeletionPolicy.Delete,
        description="Delete removes the Railway project with the resource; Retain leaves it.",
    )
    managementPolicy: ManagementPolicy = Field(
        ManagementPolicy.Full,
        description="Full manages the instance on Railway. Observe never writes to Railway: it adopts the "
        "project (claw.io/external-name, or by name and marker), reports status, health and usage, and "
        "reports in Synced (reason WouldChange) what Full would change. Deleting an Observe object never "
        "deletes on Railway.",
    )

    @model_validator(mode="after")
    def _unique_keys(self) -> ClawInstanceSpec:
        types = [c.type for c in self.channels]
        if len(types) != len(set(types)):
            raise ValueError("channels: each type may appear once")
        names = [e.name for e in self.env]
        if len(names) != len(set(names)):
            raise ValueError("env: each name may appear once")
        return self


HealthStatus = Literal["Healthy", "Unhealthy", "Unknown"]
Phase = Literal[
    "Pending", "Provisioning", "Deploying", "Running", "Degraded", "Failed", "Suspended", "Deleting"
]


class RailwayRefs(_StatusModel):
    projectId: str | None = Field(None, description="Railway project id.")
    projectName: str | None = Field(None, description="Railway project name, <prefix>-<namespace>-<name>.")
    environmentId: str | None = Field(None, description="Railway environment id (production).")
    serviceId: str | None = Field(None, description="Railway service id.")
    serviceName: str | None = Field(None, description="Railway service name.")


class DeploymentStatus(_StatusModel):
    id: str | None = Field(None, description="Railway deployment id.")
    status: str | None = Field(None, description="Railway's DeploymentStatus as last seen.")
    progress: int | None = Field(None, ge=0, le=100, description="0-100, derived from status.")
    startedAt: str | None = Field(None, description="When the deployment was created (RFC 3339).")
    finishedAt: str | None = Field(None, description="When it reached a final status (RFC 3339).")
    estimatedSecondsRemaining: int | None = Field(
        None, description="Estimate from recent deployments of the plan."
    )
    lastSuccessfulId: str | None = Field(
        None, description="The last deployment that reached SUCCESS (what a rollback returns to)."
    )
    lastSuccessfulRevision: str | None = Field(
        None, description="The plan revision the last successful deployment runs."
    )


class HealthState(_StatusModel):
    status: HealthStatus = Field("Unknown", description="Healthy, Unhealthy or Unknown.")
    since: str | None = Field(None, description="When status last changed.")
    consecutiveFailures: int = Field(0, description="Failed probes in a row.")
    lastError: str = Field("", description="Short, redacted reason of the last failed probe.")


class Usage(_StatusModel):
    cpu: float | None = Field(None, description="vCPUs in use, averaged over the sampling period.")
    memoryGB: float | None = Field(
        None, description="Memory in use in GB, averaged over the sampling period."
    )
    networkEgressGB: float | None = Field(None, description="GB sent over the last 30 days.")
    estimatedCostUSD: float | None = Field(
        None, description="Railway's cost estimate for the current billing period, USD."
    )
    sampledAt: str | None = Field(None, description="When sampled (RFC 3339).")


class AppliedState(_StatusModel):
    variables: str | None = Field(
        None, description="HMAC-SHA256 fingerprint of the variables last applied (never the values)."
    )
    config: str | None = Field(
        None, description="Fingerprint of the source, settings and limits last applied."
    )
    restartedAt: str | None = Field(None, description="The claw.io/restartedAt value last acted on.")
    redeployRequestedAt: str | None = Field(
        None, description="The claw.io/redeployRequestedAt value last acted on."
    )
    inputs: str | None = Field(
        None,
        description="Set while Synced is False for a reason a person must fix (InvalidSpec from Railway, "
        "RailwayAuthFailed): fingerprint of the generation, plan and referenced Secrets at that time. "
        "Railway is not called again until it changes.",
    )
    refusedToken: str | None = Field(
        None,
        description="Fingerprint of the Railway token Railway refused (RailwayAuthFailed): no request is "
        "sent with it again; a changed token Secret clears it.",
    )


class ClawInstanceStatus(_StatusModel):
    observedGeneration: int | None = Field(
        None, description="Last metadata.generation the operator acted on."
    )
    phase: Phase | None = Field(None, description="Display summary; use conditions for automation.")
    message: str | None = Field(None, description="What is happening or what to do.")
    url: str | None = Field(None, description="Public URL of the instance.")
    railway: RailwayRefs | None = Field(None, description="Ids of what the operator manages on Railway.")
    deployment: DeploymentStatus | None = Field(None, description="Latest deployment as last seen.")
    health: HealthState | None = Field(None, description="Health probe result; written only when it changes.")
    usage: Usage | None = Field(
        None, description="Resource usage from Railway metrics, sampled periodically."
    )
    applied: AppliedState | None = Field(
        None, description="What the operator last applied on Railway, as fingerprints."
    )
    planRevision: str | None = Field(
        None, description="The ClawPlan revision (status.revision of the plan) this instance runs."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready is True when Synced and Deployed are True and Healthy is not False: the spec is "
        "applied on Railway, the latest deployment succeeded and the health probe is not failing. "
        "Synced: spec applied to Railway. Deployed: latest deployment SUCCESS. Healthy: probe passing.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
