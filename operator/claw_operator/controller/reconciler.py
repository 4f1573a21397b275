"""One reconcile pass for one ClawInstance: resolve -> observe -> decide -> act -> status.
No Kopf, no HTTP here; each step lives in its own module.

`reconcile()` is level-triggered and idempotent: a second call with nothing changed makes
no Railway write and returns the same status (so the caller writes nothing to
Kubernetes). Ids are persisted the moment Railway returns them, so a crash between two
steps is healed by adoption on the next pass. A terminal error (a person must change the
spec, the plan or a Secret) stops Railway calls until the generation or the fingerprint of
those inputs changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from claw_operator.api import conditions as c
from claw_operator.api.conditions import Reason
from claw_operator.api.models import (
    PAUSED_ANNOTATION,
    AppliedState,
    ClawInstanceStatus,
    ManagementPolicy,
    RailwayRefs,
)
from claw_operator.config import Settings
from claw_operator.controller import status as st
from claw_operator.controller.act import Acted, Event, Ledger, Persist, act, record_location
from claw_operator.controller.decide import Changes, Target, decide, target_of
from claw_operator.controller.errors import TERMINAL_RAILWAY_REASONS, RequeueAfter, Terminal, backoff
from claw_operator.controller.observe import (
    Observation,
    TemplateCache,
    observe,
    read_log_tail,
    read_template,
)
from claw_operator.controller.ports import (
    HandleFactory,
    HealthPort,
    PlanChooser,
    RailwayPort,
    TokenRefreshPort,
    UsagePort,
)
from claw_operator.controller.resolve import Desired, SecretGetter, resolve
from claw_operator.railway.errors import (
    RailwayAuthError,
    RailwayError,
    RailwayInvalidError,
    RailwayRateLimitedError,
)
from claw_operator.railway.types import Deployment
from claw_operator.rules.progress import IN_PROGRESS, DurationEstimator
from claw_operator.rules.quota import InstanceEntry
from claw_operator.support.fingerprint import fingerprint
from claw_operator.support.redact import redact

log = logging.getLogger(__name__)

__all__ = ["Event", "Inputs", "Outcome", "Persist", "Runtime", "reconcile"]


@dataclass
class Inputs:
    """Desired-state sources, read from Kubernetes by the caller."""

    plans: Mapping[str, Mapping[str, Any]]
    get_secret: SecretGetter
    instances: list[InstanceEntry]
    plan_for: PlanChooser | None = None  # the rollout gate; None applies the plan as it is


@dataclass
class Runtime:
    """Long-lived collaborators. Everything here is a cache or a connection: losing it on
    restart costs a few extra reads, never correctness (status is the only memory)."""

    settings: Settings
    handle_for: HandleFactory
    health: HealthPort
    usage: UsagePort | None = None
    durations: DurationEstimator = field(default_factory=DurationEstimator)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    failures: dict[str, int] = field(default_factory=dict)
    templates: TemplateCache = field(default_factory=dict)
    # Fingerprints of tokens Railway refused: no instance sends another request with them.
    refused_tokens: set[str] = field(default_factory=set)
    # Why a SelfHosted token Secret's OAuth refresh fails (the token refresher), if known here.
    token_refresh: TokenRefreshPort | None = None

    @property
    def fingerprint_key(self) -> bytes:
        return self.settings.fingerprint_key.get_secret_value().encode()


@dataclass
class Outcome:
    status: dict[str, Any]  # rendered from the typed ClawInstanceStatus
    events: list[Event]
    requeue_after: float


@dataclass
class _Pass:
    """What one pass knows about its object before it starts."""

    namespace: str
    name: str
    uid: str
    generation: int | None
    annotations: dict[str, str]
    previous: ClawInstanceStatus
    now: datetime
    ledger: Ledger

    @classmethod
    def of(cls, body: Mapping[str, Any], runtime: Runtime, persist: Persist) -> _Pass:
        meta: Mapping[str, Any] = body.get("metadata", {})
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        previous = st.parse(body.get("status"))
        generation = meta.get("generation")
        return cls(
            namespace=namespace,
            name=name,
            uid=str(meta.get("uid") or f"{namespace}/{name}"),
            generation=int(generation) if generation is not None else None,
            annotations=dict(meta.get("annotations") or {}),
            previous=previous,
            now=runtime.clock(),
            ledger=Ledger(
                refs=dict((previous.railway or RailwayRefs()).model_dump()),
                applied=dict((previous.applied or AppliedState()).model_dump()),
                url=previous.url,
                persist=persist,
            ),
        )

    def warn_once(self, synced: c.Cond) -> None:
        """A Warning event for a Synced failure, unless status already says exactly that."""
        prior = st.condition(self.previous, c.SYNCED)
        if prior is None or prior.reason != synced.reason or prior.message != synced.message:
            self.ledger.event("Warning", synced.reason, synced.message)


def _inputs_fingerprint(p: _Pass, d: Desired, runtime: Runtime) -> str:
    platform = runtime.settings.railway_token
    material = {
        "generation": p.generation,
        "inputs": d.inputs,
        # A new platform token (operator restarted with another RAILWAY_TOKEN) retries too.
        "platform": platform.get_secret_value() if d.token is None and platform is not None else "",
    }
    return fingerprint(runtime.fingerprint_key, material)


# Opens the sentence of a RailwayAuthFailed message that tells why the token was not refreshed.
REFRESH_NOTE = "OAuth token refresh: "


def _refresh_note(runtime: Runtime, d: Desired) -> str:
    """What the token refresher says about this instance's token Secret, as a sentence for
    RailwayAuthFailed: an OAuth token Railway refuses has usually expired because its
    refresh was refused, and only this says what to do then. "" when it says nothing."""
    ref = d.spec.railway.tokenSecretRef
    if runtime.token_refresh is None or d.token_source is None or ref is None:
        return ""
    problem = runtime.token_refresh.problem(d.namespace, ref.name)
    return f"{REFRESH_NOTE}{problem}." if problem else ""


def _tells_refresh_note(message: str, note: str) -> bool:
    """Whether a RailwayAuthFailed message says what the refresher says now (nothing included)."""
    return note in message if note else REFRESH_NOTE not in message


def _classify(
    exc: RailwayError, d: Desired, p: _Pass, runtime: Runtime, refresh_note: str = ""
) -> Terminal | RequeueAfter:
    text = redact(str(exc), d.secret_values)
    if isinstance(exc, RailwayAuthError):
        if d.token_source is not None:
            secret, key = d.token_source
            where = f"the token in Secret {secret} key {key!r} (spec.railway.tokenSecretRef)"
        else:
            where = "RAILWAY_TOKEN"
        message = f"Railway refused the token ({text}); check {where}."
        return Terminal(Reason.RAILWAY_AUTH_FAILED, f"{message} {refresh_note}" if refresh_note else message)
    if isinstance(exc, RailwayInvalidError):
        return Terminal(
            Reason.INVALID_SPEC, f"Railway rejected the request ({text}); check the plan and spec."
        )
    if isinstance(exc, RailwayRateLimitedError):
        return RequeueAfter(
            Reason.RATE_LIMITED,
            f"Railway rate limit reached ({text}); retrying automatically.",
            backoff(runtime.failures, p.uid, exc.retry_after),
        )
    return RequeueAfter(
        Reason.RAILWAY_UNAVAILABLE,
        f"Railway is not answering ({text}); retrying with backoff.",
        backoff(runtime.failures, p.uid),
    )


def _requeue(settings: Settings, d: Desired, deployed: c.Cond) -> float:
    if deployed.reason in {Reason.DEPLOYING, Reason.PROVISIONING, Reason.ROLLED_BACK}:
        return settings.deploying_poll_seconds
    if deployed.status == "True":
        return float(min(settings.resync_seconds, d.plan.healthCheck.intervalSeconds))
    return settings.resync_seconds


def _outcome(
    p: _Pass, status: ClawInstanceStatus, requeue: float, extra: list[Event] | None = None
) -> Outcome:
    events = p.ledger.events + [
        Event(e.type, e.reason, redact(e.message, p.ledger.secrets)) for e in extra or []
    ]
    return Outcome(st.render(status), events, requeue)


async def reconcile(body: Mapping[str, Any], runtime: Runtime, inputs: Inputs, persist: Persist) -> Outcome:
    p = _Pass.of(body, runtime, persist)
    settings = runtime.settings
    if p.annotations.get(PAUSED_ANNOTATION) == "true":
        runtime.health.forget(p.uid)
        return _paused(p, settings)
    try:
        d = await resolve(
            body=body,
            plans=inputs.plans,
            get_secret=inputs.get_secret,
            instances=inputs.instances,
            prefix=settings.project_prefix,
            cluster=settings.cluster_name,
            max_managed=settings.max_managed_instances,
            default_workspace=settings.railway_workspace_id,
            plan_for=inputs.plan_for,
        )
    except Terminal as problem:
        return _invalid(p, problem, settings)
    p.ledger.secrets = d.secret_values
    inputs_fp = _inputs_fingerprint(p, d, runtime)
    token_fp = token_fingerprint(runtime, d.token)
    prior = st.condition(p.previous, c.SYNCED)
    applied = p.previous.applied or AppliedState()
    refused = applied.refusedToken == token_fp or token_fp in runtime.refused_tokens
    refresh_note = _refresh_note(runtime, d)
    # The refresher's reason changed since status told it: rewrite the message (sending nothing).
    stale_note = (
        refused
        and prior is not None
        and prior.reason == Reason.RAILWAY_AUTH_FAILED
        and not _tells_refresh_note(prior.message, redact(refresh_note, d.secret_values))
    )
    if (
        refused
        and applied.refusedToken == token_fp
        and prior is not None
        and prior.reason == Reason.RAILWAY_AUTH_FAILED
        and not stale_note
    ):
        # Railway refused this very token: nothing is sent with it until the Secret changes.
        return Outcome(st.render(p.previous), [], settings.resync_seconds)
    if (
        prior is not None
        and prior.status == "False"
        and prior.reason in TERMINAL_RAILWAY_REASONS
        and applied.inputs == inputs_fp
        and not stale_note
    ):
        # Nothing a person could have fixed has changed: asking Railway again would fail the same way.
        return Outcome(st.render(p.previous), [], settings.resync_seconds)
    p.ledger.applied["inputs"] = None
    p.ledger.applied["refusedToken"] = None
    try:
        if refused:  # known refused (for another instance of this token, or before a pause)
            raise RailwayAuthError("Not Authorized", operation="earlier request; not sent again")
        return await _converge(p, d, runtime)
    except (Terminal, RequeueAfter, RailwayError) as failure:
        token_refused = isinstance(failure, RailwayAuthError) and (
            refused or await _token_refused(runtime, d)
        )
        if token_refused:
            runtime.refused_tokens.add(token_fp)
            p.ledger.applied["refusedToken"] = token_fp
        if isinstance(failure, RailwayError):
            # The refresh problem explains a refused token, not one object it may not see.
            failure = _classify(failure, d, p, runtime, refresh_note if token_refused else "")
        return _failed(p, d, failure, inputs_fp, settings)


async def _token_refused(runtime: Runtime, d: Desired) -> bool:
    """Railway answers "Not Authorized" both for a bad token and for an object this token
    may not see (a foreign project id in claw.io/external-name, say). One token-wide read
    tells them apart, so a good token is never shut off for one instance's mistake."""
    try:
        rail = runtime.handle_for(d.token, d.token_tier).client
        await rail.find_project(d.project_name, d.marker, d.workspace_id)
    except RailwayAuthError:
        return True
    except RailwayError:
        return False  # cannot tell now; the instance waits for a change like any terminal error
    return False


def token_fingerprint(runtime: Runtime, token: str | None) -> str:
    """Which token a pass uses (the platform token for None), without keeping it."""
    if token is None:
        platform = runtime.settings.railway_token
        token = "platform:" + (platform.get_secret_value() if platform is not None else "")
    return fingerprint(runtime.fingerprint_key, ["token", token])


async def _converge(p: _Pass, d: Desired, runtime: Runtime) -> Outcome:
    settings, ledger, previous = runtime.settings, p.ledger, p.previous
    observe_only = d.spec.managementPolicy == ManagementPolicy.Observe
    handle = runtime.handle_for(d.token, d.token_tier)
    rail = handle.client
    template = await read_template(d, rail, runtime.templates, p.now, settings.resync_seconds)
    target = target_of(d, template, runtime.fingerprint_key)
    deploying = previous.deployment is not None and previous.deployment.status in IN_PROGRESS
    # Observe mode compares every pass (it names what differs); Full skips the variables
    # while a deploy of what it applied is still running.
    with_variables = observe_only or not deploying or ledger.applied.get("variables") != target.variables_fp
    if (
        d.rollback_to
        and not observe_only
        and ledger.refs.get("serviceId")
        and previous.planRevision not in (None, d.plan_revision)
    ):
        return await _roll_back(p, d, runtime, rail, d.rollback_to)
    refs = RailwayRefs.model_validate(ledger.refs)
    obs = await observe(d, refs, p.annotations, handle, with_variables=with_variables)
    await record_location(ledger, obs)
    changes = decide(obs, target, d, AppliedState.model_validate(ledger.applied), p.annotations)
    if changes.diff:
        # Observe mode reports its diff in Synced on every pass; Full logs what it is about to change.
        level = logging.DEBUG if observe_only else logging.INFO
        log.log(level, "%s/%s differs from its spec: %s", d.namespace, d.name, "; ".join(changes.diff))
    if observe_only:
        acted, synced = _observed(changes, obs, target, ledger)
    else:
        acted = await act(changes, obs, d, target, rail, ledger)
        synced = c.true(c.SYNCED, Reason.APPLIED, "The spec is applied on Railway.")

    extra: list[Event] = []
    if acted.deploy_triggered:
        deployed = st.queued(previous, p.now, runtime.durations.expected(d.plan_name))
    elif observe_only and obs.service is None:
        deployed = st.DeployedView(
            previous.deployment,
            c.unknown(c.DEPLOYED, Reason.PROVISIONING, "Observe: there is no Railway service to observe."),
        )
    else:
        tail = None
        if acted.latest is not None and st.needs_log_tail(previous, acted.latest):
            tail = await read_log_tail(rail, acted.latest, d.secret_values)
        deployed = st.deployed_view(
            previous,
            acted.latest,
            suspended=d.spec.suspend and not observe_only,
            deploy_timeout=d.plan.deployTimeoutSeconds,
            now=p.now,
            expected_seconds=runtime.durations.expected(d.plan_name),
            log_tail=tail,
            url=ledger.url,
            revision=previous.planRevision or d.plan_revision or None,
        )
        if deployed.duration_sample is not None:
            runtime.durations.record(d.plan_name, deployed.duration_sample)
    extra += deployed.events
    deployed_cond = deployed.condition
    if d.plan_note and deployed_cond.status == "True":
        deployed_cond = c.Cond(
            deployed_cond.type, "True", deployed_cond.reason, f"{deployed_cond.message} {d.plan_note}"
        )

    health = await _health(p, d, runtime, deployed_cond, acted.latest)
    extra += health.events
    runtime.failures.pop(p.uid, None)
    usage: dict[str, Any] = {}
    service_id = ledger.refs.get("serviceId")
    if runtime.usage is not None and service_id:
        sample = runtime.usage.usage_for(service_id)
        update = st.usage_update(previous.usage, sample) if sample is not None else None
        if update is not None:
            usage["usage"] = update
    status = st.assemble(
        previous,
        generation=p.generation,
        now=p.now,
        secrets=d.secret_values,
        synced=synced,
        deployed=deployed_cond,
        healthy=health.condition,
        refs=ledger.refs,
        applied=ledger.applied,
        url=ledger.url,
        deployment=deployed.deployment,
        health=health.health,
        planRevision=(d.plan_revision or previous.planRevision)
        if not observe_only
        else previous.planRevision,
        **usage,
    )
    if d.plan_note and status.phase == "Running":
        status = status.model_copy(update={"message": f"{status.message} Note: {d.plan_note}."})
    return _outcome(p, status, _requeue(runtime.settings, d, deployed_cond), extra)


async def _roll_back(
    p: _Pass, d: Desired, runtime: Runtime, rail: RailwayPort, deployment_id: str
) -> Outcome:
    """A halted plan rollout rolls this instance back to its last good deployment (Railway
    deploymentRollback: its image and variables). Only this, this pass: the next passes
    observe the rollback deployment and converge on the old revision's spec, which it runs."""
    previous, ledger = p.previous, p.ledger
    # Recorded first: after a crash here the instance converges on the old revision
    # (a deploy at worst), never rolls back twice.
    await ledger.persist({"planRevision": d.plan_revision}, None)
    await rail.rollback(deployment_id)
    runtime.health.forget(p.uid)  # the rolled back deployment is probed anew
    message = (
        f"Rolled back to deployment {deployment_id} (plan revision {d.plan_revision}): "
        f"{d.plan_note or 'the plan rollout halted'}."
    )
    ledger.event("Warning", Reason.ROLLED_BACK, message)
    deployed = st.queued(
        previous,
        p.now,
        runtime.durations.expected(d.plan_name),
        c.false(c.DEPLOYED, Reason.ROLLED_BACK, message),
    )
    status = st.assemble(
        previous,
        generation=p.generation,
        now=p.now,
        secrets=d.secret_values,
        synced=c.true(c.SYNCED, Reason.APPLIED, "The spec is applied on Railway."),
        deployed=deployed.condition,
        healthy=st.not_probed("Nothing to probe until the rollback deployment succeeds."),
        refs=ledger.refs,
        applied=ledger.applied,
        url=ledger.url,
        deployment=deployed.deployment,
        planRevision=d.plan_revision,
    )
    return _outcome(p, status, runtime.settings.deploying_poll_seconds)


# What a WouldChange message may hold: names only, and not a wall of them.
DIFF_MESSAGE_LIMIT = 900


def _observed(changes: Changes, obs: Observation, target: Target, ledger: Ledger) -> tuple[Acted, c.Cond]:
    """Observe mode: nothing is written to Railway; Synced tells what Full would change."""
    seen = obs.service
    if seen is not None and seen.domains and not ledger.url:
        ledger.url = f"https://{seen.domains[0]}"
    acted = Acted(latest=seen.latestDeployment if seen is not None else None, deploy_triggered=False)
    if not changes.writes and not changes.diff:
        # Railway already is what Full would make it: remember that, so switching to Full
        # finds nothing to apply and deploys nothing.
        ledger.applied["variables"] = target.variables_fp
        ledger.applied["config"] = target.config_fp
        return acted, c.true(c.SYNCED, Reason.IN_SYNC, "Observe: Railway matches the spec.")
    listed = "; ".join(changes.diff)
    if len(listed) > DIFF_MESSAGE_LIMIT:
        listed = listed[: DIFF_MESSAGE_LIMIT - 3].rsplit(",", 1)[0] + ", ..."
    message = (
        f"Observe: Full would change {listed}. Make the spec match Railway, or set "
        "spec.managementPolicy: Full to apply the spec."
    )
    return acted, c.false(c.SYNCED, Reason.WOULD_CHANGE, message)


async def _health(
    p: _Pass, d: Desired, runtime: Runtime, deployed: c.Cond, latest: Deployment | None
) -> st.HealthView:
    previous, url = p.previous, p.ledger.url
    if d.spec.suspend and d.spec.managementPolicy != ManagementPolicy.Observe:
        runtime.health.forget(p.uid)
        return st.not_probed_health(previous.health, p.now, "Suspended: the health check is not probed.")
    crashed = deployed.reason == Reason.DEPLOY_CRASHED
    if not url or not (deployed.status == "True" or crashed):
        return st.HealthView(
            previous.health, st.not_probed("Nothing to probe until the deployment succeeds.")
        )
    if previous.health is None or st.crash_probe_due(previous, latest):
        runtime.health.forget(p.uid)  # status is the only memory: probe anew
    result = await runtime.health.probe_if_due(p.uid, url, d.plan.healthCheck)
    return st.health_view(previous.health, result, d.plan.healthCheck, p.now, d.secret_values)


def _paused(p: _Pass, settings: Settings) -> Outcome:
    """claw.io/paused: no Railway call, and no status change but Synced."""
    synced = c.false(
        c.SYNCED,
        Reason.RECONCILE_PAUSED,
        f"Reconciliation is paused (annotation {PAUSED_ANNOTATION}); remove the annotation to resume.",
    )
    prior = st.condition(p.previous, c.SYNCED)
    events: list[Event] = []
    if prior is None or prior.reason != Reason.RECONCILE_PAUSED:
        events.append(Event("Normal", Reason.RECONCILE_PAUSED, synced.message))
    status = st.with_condition(p.previous, synced, generation=p.generation, now=p.now)
    return Outcome(st.render(status), events, settings.resync_seconds)


def _invalid(p: _Pass, problem: Terminal, settings: Settings) -> Outcome:
    """The spec, plan or a Secret cannot be resolved: Railway is not called."""
    synced = c.false(c.SYNCED, problem.reason, problem.message)
    p.warn_once(synced)
    p.ledger.applied["inputs"] = None
    never_ran = not p.ledger.refs.get("projectId")
    if never_ran:
        deployed = c.unknown(c.DEPLOYED, Reason.PROVISIONING, "Waiting for a valid spec.")
        healthy = st.not_probed()
    else:
        deployed = st.previous_cond(p.previous, c.DEPLOYED, c.unknown(c.DEPLOYED, Reason.PROVISIONING))
        healthy = st.previous_cond(p.previous, c.HEALTHY, st.not_probed())
    status = st.assemble(
        p.previous,
        generation=p.generation,
        now=p.now,
        secrets=frozenset(),
        synced=synced,
        deployed=deployed,
        healthy=healthy,
        refs=p.ledger.refs,
        applied=p.ledger.applied,
    )
    return _outcome(p, status, settings.resync_seconds)


def _failed(
    p: _Pass, d: Desired, failure: Terminal | RequeueAfter, inputs_fp: str, settings: Settings
) -> Outcome:
    synced = c.false(c.SYNCED, failure.reason, failure.message)
    p.warn_once(synced)
    log.info("reconcile of %s/%s stopped: %s", d.namespace, d.name, redact(failure.message, d.secret_values))
    if isinstance(failure, Terminal):
        p.ledger.applied["inputs"] = inputs_fp
        requeue = settings.resync_seconds
    else:
        requeue = failure.delay
    status = st.assemble(
        p.previous,
        generation=p.generation,
        now=p.now,
        secrets=d.secret_values,
        synced=synced,
        deployed=st.previous_cond(p.previous, c.DEPLOYED, c.unknown(c.DEPLOYED, Reason.PROVISIONING)),
        healthy=st.previous_cond(p.previous, c.HEALTHY, st.not_probed()),
        refs=p.ledger.refs,
        applied=p.ledger.applied,
        url=p.ledger.url,
    )
    return _outcome(p, status, requeue)
