"""The fleet engine's wiring: watch caches -> work queue -> reconcile -> status.

Kopf's handlers only tell the engine what they saw (handlers.py). The engine keeps the
caches, queues the objects that need a pass, runs passes with bounded concurrency, writes
status once per pass (only what changed) and schedules the next look. Railway is watched
by one scheduler per token (fleet/scheduler.py), which queues only the objects whose
observation changed. Holds no state a restart would need: only caches, connections and
coordination (status is the only memory)."""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from claw_operator.api.conditions import EventReason
from claw_operator.api.models import FINALIZER, WATCH_LABEL, Usage
from claw_operator.config import Settings
from claw_operator.controller import (
    Event,
    FinalizeRetry,
    Inputs,
    RailwayHandle,
    Runtime,
    TokenTier,
    finalize,
    reconcile,
)
from claw_operator.controller.rollout_book import RolloutBook
from claw_operator.fleet.health import ProberPool
from claw_operator.fleet.queue import Urgency, WorkQueue
from claw_operator.fleet.scheduler import CURRENT_OBJECT, DRIFT_LAPS, TokenScheduler
from claw_operator.fleet.usage import UsageSampler
from claw_operator.k8s.caches import InstanceCache, Key, PlanCache, SecretCache, key_of, split_key
from claw_operator.k8s.kube import KubeApi, decode_secret, merge_patch
from claw_operator.k8s.leases import ShardGuard
from claw_operator.k8s.rollouts import RolloutCoordinator
from claw_operator.k8s.status_writer import StatusWriter
from claw_operator.k8s.token_refresher import TokenRefresher, token_refs
from claw_operator.railway.accounting import Accounting
from claw_operator.railway.budget import budget_for, budget_for_tier
from claw_operator.railway.client import MUTATIONS, RailwayClient
from claw_operator.railway.errors import RailwayAuthError
from claw_operator.railway.types import ServiceInstanceRef
from claw_operator.rules.usage import moved
from claw_operator.support import metrics
from claw_operator.support.fingerprint import fingerprint

log = logging.getLogger(__name__)

# Health probes running at once, whatever the fleet's size.
PROBE_CONCURRENCY = 32
RETRY_SECONDS = 5.0
# How often the token refresher looks for Secrets whose access token is due.
REFRESH_CHECK_SECONDS = 15.0
# How long a retired token's client stays open for the callers that still hold it.
RETIRE_GRACE_SECONDS = 60.0


def _service_ref(status: Mapping[str, Any]) -> ServiceInstanceRef | None:
    """The service instance a status records, once all three ids are known."""
    railway = status.get("railway") or {}
    ids = (railway.get("projectId"), railway.get("environmentId"), railway.get("serviceId"))
    if not all(isinstance(value, str) and value for value in ids):
        return None
    return ServiceInstanceRef(projectId=ids[0], environmentId=ids[1], serviceId=ids[2])


def _identity() -> str:
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class Engine:
    settings: Settings
    concurrency: int = 32
    accounting: Accounting = field(default_factory=Accounting)
    emit: Callable[[Mapping[str, Any], Event], None] = field(default=lambda body, event: None)
    kube: KubeApi | None = None
    instances: InstanceCache = field(default_factory=InstanceCache)
    plans: PlanCache = field(default_factory=PlanCache)
    secrets: SecretCache = field(init=False)
    queue: WorkQueue[Key] = field(init=False)
    runtime: Runtime = field(init=False)
    health: ProberPool = field(init=False)
    shards: ShardGuard | None = None
    # Without Leases the replica acts on every object (tests of a single operator).
    use_leases: bool = True
    # This replica's name in Leases: the pod's name in a cluster.
    identity: str = field(default_factory=lambda: _identity())
    _handles: dict[str, RailwayHandle] = field(default_factory=dict)
    _schedulers: dict[str, TokenScheduler] = field(default_factory=dict)
    _token_of: dict[Key, str] = field(default_factory=dict)
    _told_unlabelled: set[tuple[Key, str]] = field(default_factory=set)
    # Passes made per object, by this replica (tests and the bench read it).
    passes: collections.Counter[Key] = field(default_factory=collections.Counter)
    _starting: asyncio.Task[None] | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    usage: UsageSampler = field(init=False)
    # SelfHosted OAuth token refresh: on the replica holding shard 0 (every replica without Leases).
    refresher: TokenRefresher | None = None
    _clients: dict[str, RailwayClient] = field(default_factory=dict)
    # The service each object's usage is sampled for, and through which token's client.
    _usage_of: dict[Key, tuple[str, str]] = field(default_factory=dict)
    _background: list[asyncio.Task[None]] = field(default_factory=list)
    rollouts: RolloutBook = field(default_factory=RolloutBook)
    coordinator: RolloutCoordinator = field(init=False)
    _plan_refs: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> object reference

    def __post_init__(self) -> None:
        self.secrets = SecretCache(reader=self._read_secret, resync_seconds=self.settings.resync_seconds)
        self.queue = WorkQueue(self._pass, concurrency=self.concurrency)
        self.health = ProberPool(
            self.settings.health_url_template, on_result=self._health_changed, concurrency=PROBE_CONCURRENCY
        )
        self.usage = UsageSampler(
            period_seconds=self.settings.usage_sample_seconds, on_sample=self._usage_sampled
        )
        self.runtime = Runtime(
            settings=self.settings, handle_for=self.handle_for, health=self.health, usage=self.usage
        )
        self.coordinator = RolloutCoordinator(
            self.rollouts,
            self._write_plan_status,
            self._post_plan_event,
            self._rollout_wake,
            writes_for=lambda plan: self.owns(f"clawplan/{plan}"),
        )

    # ------------------------------------------------------------------ lifecycle
    async def start(self, kopf_settings: kopf.OperatorSettings) -> None:
        """Start in the background: Kopf logs in only after its startup handlers finish,
        and the caches must be primed through the API before the first pass."""
        self.kube = self.kube or KubeApi(kopf_settings)
        self._starting = asyncio.create_task(self._run_start(), name="claw-engine-start")

    async def _run_start(self) -> None:
        assert self.kube is not None
        while True:
            try:
                await self._prime()
                break
            except Exception as exc:
                log.warning("priming the caches failed, retrying: %s", exc)
                await asyncio.sleep(RETRY_SECONDS)
        settings = self.settings
        if self.use_leases:
            self.shards = ShardGuard(
                kube=self.kube,
                namespace=settings.operator_namespace,
                identity=self.identity,
                shards=settings.shards,
                shard_id=settings.shard_id,
                lease_seconds=settings.lease_seconds,
                on_acquired=self._shard_acquired,
            )
            self.shards.start()
        else:
            self._start_refresher()
        self.queue.start()
        self._background.append(asyncio.create_task(self.usage.run(), name="claw-usage"))
        self.coordinator.start()
        self.started.set()

    async def aclose(self) -> None:
        if self._starting is not None:
            self._starting.cancel()
            await asyncio.gather(self._starting, return_exceptions=True)
        await self.coordinator.aclose()
        if self.shards is not None:
            await self.shards.aclose()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background.clear()
        if self.refresher is not None:
            self.runtime.token_refresh = None
            await self.refresher.aclose()
            self.refresher = None
        await self.queue.stop()
        for scheduler in self._schedulers.values():
            await scheduler.aclose()
        for handle in self._handles.values():
            close = getattr(handle.client, "aclose", None)
            if close is not None:
                await close()
        self._handles.clear()
        self._schedulers.clear()
        await self.health.aclose()

    async def _prime(self) -> None:
        assert self.kube is not None
        plans = await self.kube.get("/apis/claw.io/v1alpha1/clawplans", "clawplans")
        for item in (plans or {}).get("items") or []:
            self.plans.put(str(item["metadata"]["name"]), item.get("spec") or {})
            self._plan_seen(item)
        # Rollouts decide over whole fleets: every instance is known before the first decision.
        listings = (
            [f"/apis/claw.io/v1alpha1/namespaces/{ns}/clawinstances" for ns in self.settings.namespaces]
            if self.settings.namespaces
            else ["/apis/claw.io/v1alpha1/clawinstances"]
        )
        for path in listings:
            for item in (await self.kube.get(path, "clawinstances") or {}).get("items") or []:
                self.rollouts.set_instance(item)
        selector = f"?labelSelector={WATCH_LABEL.replace('/', '%2F')}%3Dtrue"
        paths = (
            [f"/api/v1/namespaces/{ns}/secrets{selector}" for ns in self.settings.namespaces]
            if self.settings.namespaces
            else [f"/api/v1/secrets{selector}"]
        )
        for path in paths:
            listing = await self.kube.get(path, "secrets")
            for item in (listing or {}).get("items") or []:
                meta = item.get("metadata") or {}
                self.secrets.put(str(meta.get("namespace")), str(meta.get("name")), decode_secret(item))

    # ------------------------------------------------------------------ what Kopf saw
    def instance_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = key_of(meta.get("namespace"), str(meta.get("name")))
        if event_type == "DELETED":
            self.instances.drop(key)
            self._forget(key)
            self.coordinator.mark(self.rollouts.drop_instance(key))
            return
        self.coordinator.mark(self.rollouts.set_instance(body))
        if self.instances.put(body):
            self.queue.add(key, Urgency.USER)

    def plan_event(
        self,
        event_type: str | None,
        name: str,
        spec: Mapping[str, Any],
        body: Mapping[str, Any] | None = None,
    ) -> None:
        if event_type == "DELETED":
            self.plans.drop(name)
            self.rollouts.drop_plan(name)
            self._plan_refs.pop(name, None)
            changed = True
        else:
            changed = self.plans.put(name, spec)
            if body is not None:
                self._plan_seen(body)
        if changed:
            for key in list(self.instances.keys_with_plan(name)):
                self.queue.add(key, Urgency.USER)

    def secret_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        labelled = (meta.get("labels") or {}).get(WATCH_LABEL) == "true"
        if event_type == "DELETED" or not labelled:
            users = self.secrets.drop(namespace, name)
        else:
            users = self.secrets.put(namespace, name, decode_secret(dict(body)))
        if self.refresher is not None:
            self.refresher.nudge(namespace, name)
        for key in users:
            self.queue.add(key, Urgency.USER)

    # ------------------------------------------------------------------ rollouts
    def _plan_seen(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        name = str(meta.get("name"))
        self._plan_refs[name] = {
            "apiVersion": body.get("apiVersion", "claw.io/v1alpha1"),
            "kind": body.get("kind", "ClawPlan"),
            "metadata": {"name": name, "uid": meta.get("uid")},
        }
        if self.rollouts.set_plan(name, body):
            self.coordinator.mark([name])

    def _status_written(self, body: Mapping[str, Any]) -> None:
        """A pass wrote an instance's status: its plan's rollout may move on."""
        self.instances.put(body)
        self.coordinator.mark(self.rollouts.set_instance(body))

    async def _write_plan_status(self, name: str, changes: dict[str, Any]) -> Mapping[str, Any] | None:
        assert self.kube is not None
        stored = self.rollouts.plan_status(name)
        patch = merge_patch(stored, {**stored, **changes})
        if not patch:
            metrics.plan_status(name, stored)
            return stored
        written = await self.kube.patch(
            f"/apis/claw.io/v1alpha1/clawplans/{name}/status", {"status": patch}, "clawplans"
        )
        if written is not None:
            metrics.plan_status(name, written.get("status") or {})
        return written

    def _post_plan_event(self, name: str, type_: str, reason: str, message: str) -> None:
        ref = self._plan_refs.get(name)
        if ref is not None:
            self.emit(ref, Event(type_, reason, message))

    def _rollout_wake(self, key: str) -> None:
        # A rollout step is a user-visible change: it queues like one (the budget's
        # priorities keep health and steady polling going meanwhile).
        self.queue.add(key, Urgency.USER)

    def plan_instance_count(self, plan: str) -> int:
        return sum(1 for _ in self.instances.keys_with_plan(plan))

    # ------------------------------------------------------------------ Railway
    def handle_for(self, token: str | None, tier: TokenTier = "hobby") -> RailwayHandle:
        """The client and scheduler of the platform token (None) or a tenant's token;
        never keyed by the raw token, and a tenant token only serves its own instances."""
        key = (
            "platform" if token is None else fingerprint(self.runtime.fingerprint_key, ["token", token, tier])
        )
        handle = self._handles.get(key)
        if handle is None:
            settings = self.settings
            if token is None:
                if settings.railway_token is None:
                    raise RailwayAuthError(
                        "RAILWAY_TOKEN is not set; Managed instances need the platform token"
                    )
                secret = settings.railway_token.get_secret_value()
                budget = budget_for(
                    secret,
                    rps=settings.railway_rate_limit_rps,
                    rph=settings.railway_rate_limit_rph,
                    spread=True,
                )
            else:
                # Tenant budgets by the Secret's tier (railway/budget.py), shared per token.
                secret, budget = token, budget_for_tier(token, tier, spread=True)
            client = RailwayClient(
                url=settings.railway_api_url,
                token=secret,
                budget=budget,
                accounting=self.accounting,
                batch_size=settings.batch_size,
            )
            scheduler = TokenScheduler(
                client,
                on_change=lambda changed: self.queue.add(changed, Urgency.OBSERVED),
                fast_seconds=settings.deploying_poll_seconds,
                steady_seconds=settings.steady_poll_seconds,
                batch_size=settings.batch_size,
                budget=budget,
                window=settings.batch_window_seconds,
                # The resync promises a full look (variables included) at least that often.
                drift_laps=max(
                    1, min(DRIFT_LAPS, int(settings.resync_seconds // settings.steady_poll_seconds))
                ),
            )
            scheduler.start()
            handle = RailwayHandle(client=client, observer=scheduler)
            self._handles[key] = handle
            self._schedulers[key] = scheduler
            self._clients[key] = client
        current = CURRENT_OBJECT.get()
        if current is not None:
            previous = self._token_of.get(current)
            self._token_of[current] = key
            if previous is not None and previous != key:
                self._token_replaced(current, previous)
        return handle

    def _token_replaced(self, key: Key, previous: str) -> None:
        """The object now uses another token (a refreshed OAuth token, a new Secret): the
        old token's scheduler stops polling it, and a tenant token nothing uses any more is
        retired (a refreshed token expires; polling with it would only fail)."""
        scheduler = self._schedulers.get(previous)
        if scheduler is None:
            return
        scheduler.forget(key)
        if previous == "platform" or scheduler.instances or previous in self._token_of.values():
            return
        del self._handles[previous], self._schedulers[previous]
        client = self._clients.pop(previous, None)

        async def retire() -> None:
            await scheduler.aclose()
            try:
                # A usage round or a pass may still hold the client for a moment.
                await asyncio.sleep(RETIRE_GRACE_SECONDS)
            finally:
                if client is not None:
                    await client.aclose()

        self._background = [task for task in self._background if not task.done()]
        self._background.append(asyncio.create_task(retire(), name="claw-token-retire"))
        log.debug("retired a token no object uses any more (%d handles left)", len(self._handles))

    # ------------------------------------------------------------------ passes
    def owns(self, key: Key) -> bool:
        return self.shards is None or self.shards.owns(key)

    def _shard_acquired(self, shard: int) -> None:
        """A shard just became ours (start or takeover): someone else may have acted on
        its objects, so look at all of them, and let adoption re-list on a miss."""
        for handle in self._handles.values():
            index = getattr(handle.client, "project_index", None)
            if index is not None:
                index.invalidate()
        assert self.shards is not None
        if shard == 0:
            self._start_refresher()
        for key in list(self.instances.bodies):
            if self.shards.shard_of(key) == shard:
                self.queue.add(key, Urgency.USER)

    def _start_refresher(self) -> None:
        """Once per process; it keeps running if shard 0 moves on (a second refresher is
        harmless: its journal's preconditions keep a refresh token from being spent twice)."""
        if self.refresher is not None or self.kube is None:
            return
        self.refresher = TokenRefresher.for_cluster(
            self.settings,
            self.kube,
            lambda: token_refs(self.instances.bodies.values()),
            # A Secret that appears is looked at no later than the resync would.
            interval_seconds=min(REFRESH_CHECK_SECONDS, self.settings.resync_seconds),
            on_problem=self._token_problem_changed,
        )
        # This replica's passes tell the refresher's reason in RailwayAuthFailed; instances
        # other replicas reconcile have the Warning event on the Secret to go by.
        self.runtime.token_refresh = self.refresher
        self._background.append(asyncio.create_task(self.refresher.run(), name="claw-token-refresher"))

    def _token_problem_changed(self, namespace: str, name: str) -> None:
        """Why a token Secret cannot be refreshed changed: the instances using it say so."""
        for key in list(self.secrets.users.get((namespace, name), ())):
            self.queue.add(key, Urgency.OBSERVED)

    def _follow_usage(self, key: Key, body: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        """Tell the usage sampler about the instance's service once it has one, through its
        token's client (whose budget the sampler's requests then draw from, as background);
        stop when it is suspended or its service changed."""
        refs = status.get("railway") or {}
        service_id, project_id = refs.get("serviceId"), refs.get("projectId")
        token = self._token_of.get(key, "")
        client = self._clients.get(token)
        suspended = bool((body.get("spec") or {}).get("suspend"))
        following = (
            (str(service_id), token) if service_id and project_id and client and not suspended else None
        )
        previous = self._usage_of.get(key)
        if previous == following:
            return
        if previous is not None:
            self.usage.forget(previous[0])
            del self._usage_of[key]
        if following is not None and client is not None:
            railway = (body.get("spec") or {}).get("railway") or {}
            # Managed projects live in the operator's workspace; else the sampler asks Railway once.
            workspace = railway.get("workspaceId") or (
                self.settings.railway_workspace_id if railway.get("mode", "Managed") == "Managed" else None
            )
            self.usage.follow(
                client,
                service_id=str(service_id),
                project_id=str(project_id),
                workspace_id=str(workspace) if workspace else None,
                instance=split_key(key),
            )
            self._usage_of[key] = following

    def _usage_sampled(self, instance: tuple[str, str], usage: Usage) -> None:
        """Gauges follow every sample; status only a figure that moved (rules/usage.py),
        written by a pass of the lowest urgency."""
        namespace, name = instance
        metrics.set_usage(
            namespace,
            name,
            cpu=usage.cpu,
            memory_gb=usage.memoryGB,
            network_egress_gb=usage.networkEgressGB,
            estimated_cost_usd=usage.estimatedCostUSD,
        )
        key = key_of(namespace, name)
        body = self.instances.get(key)
        if body is not None and moved((body.get("status") or {}).get("usage"), usage.model_dump()):
            self.queue.add(key, Urgency.RESYNC)

    def _health_changed(self, uid: str) -> None:
        """A probe result that would change status: a pass for its object."""
        key = self.instances.key_of_uid(uid)
        if key is not None:
            self.queue.add(key, Urgency.OBSERVED)

    def _forget(self, key: Key) -> None:
        self.queue.forget(key)
        self.secrets.forget_user(key)
        following = self._usage_of.pop(key, None)
        if following is not None:
            self.usage.forget(following[0])
        token = self._token_of.pop(key, None)
        scheduler = self._schedulers.get(token) if token else None
        if scheduler is not None:
            scheduler.forget(key)

    async def _pass(self, key: Key) -> None:
        try:
            await self._pass_once(key)
        except Exception as exc:
            # Kubernetes refused a write (or a bug): look again soon instead of never.
            log.warning("pass over %s failed, retrying in %gs: %s", key, RETRY_SECONDS, exc)
            self.queue.add_after(key, RETRY_SECONDS, Urgency.REQUEUE)

    async def _pass_once(self, key: Key) -> None:
        if not self.owns(key):
            return
        self.passes[key] += 1
        body = self.instances.get(key)
        if body is None:
            return
        assert self.kube is not None
        meta = body.get("metadata") or {}
        finalizers = list(meta.get("finalizers") or [])
        if meta.get("deletionTimestamp"):
            if FINALIZER in finalizers:
                await self._finalize(key, body)
            return
        namespace, name = split_key(key)
        if FINALIZER not in finalizers:
            # Deletion must wait for us to clean up Railway; recorded before anything exists there.
            patched = await self.kube.patch(
                self._object_path(key),
                {
                    "metadata": {
                        "finalizers": [*finalizers, FINALIZER],
                        "resourceVersion": meta.get("resourceVersion"),
                    }
                },
                "clawinstances",
            )
            if patched is None:
                return
            self.instances.put(patched)
        unlabelled: set[str] = set()
        inputs = Inputs(
            plans=self.plans.specs,
            get_secret=self.secrets.getter(key, unlabelled),
            instances=self.instances.quota_entries(),
            plan_for=self.rollouts.plan_for,
        )
        # The gate answers from what this pass starts from, not from an older watch event.
        self.coordinator.mark(self.rollouts.set_instance(body))
        writer = StatusWriter(
            self.kube, namespace, name, dict(body.get("status") or {}), self._status_written
        )
        object_token = CURRENT_OBJECT.set(key)
        mutations: list[str] = []
        mutation_token = MUTATIONS.set(mutations)
        started = time.monotonic()
        try:
            outcome = await metrics.timed_reconcile(
                "clawinstance", reconcile(body, self.runtime, inputs, writer.persist)
            )
            await writer.write(outcome.status)
            metrics.instance_status(body, outcome.status)
            self._follow_usage(key, body, outcome.status)
        finally:
            MUTATIONS.reset(mutation_token)
            CURRENT_OBJECT.reset(object_token)
        if mutations:
            token = self._token_of.get(key)
            scheduler = self._schedulers.get(token) if token else None
            if scheduler is not None:
                scheduler.mutated(key, _service_ref(outcome.status))
        events = list(outcome.events)
        for secret in sorted(unlabelled):
            if (key, secret) not in self._told_unlabelled:
                self._told_unlabelled.add((key, secret))
                events.append(
                    Event(
                        "Normal",
                        EventReason.SECRET_NOT_WATCHED,
                        f"Secret {secret} is not labelled {WATCH_LABEL}=true: changes to it are picked "
                        f"up within {self.settings.resync_seconds:g}s; label it to have them followed "
                        "within seconds.",
                    )
                )
        for event in events:
            self.emit(body, event)
        self.queue.add_after(key, self._next_look(outcome.status, outcome.requeue_after), Urgency.REQUEUE)
        log.debug("reconciled %s in %.3fs", key, time.monotonic() - started)

    @staticmethod
    def _object_path(key: Key) -> str:
        namespace, name = split_key(key)
        return f"/apis/claw.io/v1alpha1/namespaces/{namespace}/clawinstances/{name}"

    async def _finalize(self, key: Key, body: dict[str, Any]) -> None:
        """Honour deletionPolicy on Railway, then let Kubernetes delete the object."""
        assert self.kube is not None
        namespace, name = split_key(key)
        writer = StatusWriter(self.kube, namespace, name, dict(body.get("status") or {}), self.instances.put)
        try:
            events = await finalize(body, self.runtime, self.secrets.getter(key, set()), writer.persist)
        except FinalizeRetry as retry:
            self.emit(body, Event("Warning", EventReason.DELETE_RETRYING, str(retry)))
            self.queue.add_after(key, retry.delay, Urgency.REQUEUE)
            return
        for event in events:
            self.emit(body, event)
        meta = (self.instances.get(key) or body).get("metadata") or {}
        remaining = [f for f in meta.get("finalizers") or [] if f != FINALIZER]
        await self.kube.patch(
            self._object_path(key),
            {"metadata": {"finalizers": remaining, "resourceVersion": meta.get("resourceVersion")}},
            "clawinstances",
        )
        self._forget(key)
        metrics.instance_gone(namespace, name)

    def _next_look(self, status: Mapping[str, Any], requeue_after: float) -> float:
        """When to pass over an object again unasked. An instance at rest (Ready) needs no
        timed look before the resync: Railway changes come from its token's scheduler and
        health results from the prober pool, each asking for a pass when something moved."""
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
        )
        return max(requeue_after, self.settings.resync_seconds) if ready else requeue_after

    async def _read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        assert self.kube is not None
        return await self.kube.get_secret(namespace, name)

    # ------------------------------------------------------------------ introspection
    def schedulers(self) -> list[TokenScheduler]:
        return list(self._schedulers.values())

    async def idle(self) -> None:
        await self.queue.join()
        await asyncio.sleep(0)
