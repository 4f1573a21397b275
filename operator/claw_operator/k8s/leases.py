"""Sharding across replicas with Kubernetes Leases (API.md: CLAW_SHARDS, CLAW_SHARD_ID).

Objects belong to shard `sha256(namespace/name) mod CLAW_SHARDS`. Each shard is guarded by
a Lease `claw-operator-shard-<k>` in CLAW_OPERATOR_NAMESPACE. A replica acts on an object
only while it holds that shard's Lease, and only until `renewTime + duration - margin` of
its last successful renewal: if renewing fails it stops acting before the Lease can
expire and pass to another replica.

- With CLAW_SHARD_ID=k a replica competes only for shard k; others with the same k are
  standbys that take over once the holder's Lease expires.
- Without it, each live replica announces itself with a Lease
  `claw-operator-replica-<identity>` (label `claw.io/operator-replica`); the live replicas
  sorted by identity divide the shards round-robin, each acquires its own share when free
  or expired and releases the shards that are no longer its share.
Leases are written with the resourceVersion they were read at, so two replicas racing for
one Lease cannot both win (the loser gets 409 Conflict).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from claw_operator.k8s.kube import Conflict, KubeApi, KubeError

log = logging.getLogger(__name__)

LEASES = "leases"
REPLICA_LABEL = "claw.io/operator-replica"
# Stop acting this long before the Lease could expire (clock skew, a slow renewal); at
# most a third of the Lease, which is renewed every third.
SAFETY_MARGIN = 3.0
# Why a shard was let go on shutdown (logged at INFO, unlike losing it to another replica).
RELEASED = "released on shutdown"


def shard_of(key: str, shards: int) -> int:
    """Stable across processes and Python versions (unlike hash())."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


def _micro_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass
class _Held:
    resource_version: str
    acts_until: float  # monotonic


@dataclass
class ShardGuard:
    kube: KubeApi
    namespace: str
    identity: str
    shards: int = 1
    shard_id: int | None = None
    lease_seconds: float = 15.0
    on_acquired: Callable[[int], None] = lambda shard: None
    on_lost: Callable[[int], None] = lambda shard: None
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime] = lambda: datetime.now(UTC)
    held: dict[int, _Held] = field(default_factory=dict)
    # The Leases this replica last wrote: renewing one needs no read first.
    _mine: dict[str, dict[str, Any]] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise ValueError("CLAW_SHARDS must be at least 1")
        if self.shard_id is not None and not 0 <= self.shard_id < self.shards:
            raise ValueError(f"CLAW_SHARD_ID must be between 0 and {self.shards - 1} (CLAW_SHARDS - 1)")

    # ------------------------------------------------------------------ questions
    def shard_of(self, key: str) -> int:
        return shard_of(key, self.shards)

    def owns(self, key: str) -> bool:
        held = self.held.get(self.shard_of(key))
        return held is not None and self.clock() < held.acts_until

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="claw-shard-leases")

    async def aclose(self, *, release: bool = True) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if release:
            for shard in list(self.held):
                await self._release(shard)
            if self.shard_id is None and self.shards > 1:
                await self._release_lease(f"claw-operator-replica-{self.identity}")

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("shard leases: %s", exc)
            await asyncio.sleep(self.lease_seconds / 3)

    async def tick(self) -> None:
        """Renew what is held, release what is no longer ours, acquire what is."""
        wanted = await self._wanted()
        for shard in list(self.held):
            if shard not in wanted:
                await self._release(shard)
        for shard in sorted(wanted):
            await self._claim(shard)

    # ------------------------------------------------------------------ internals
    def _path(self, name: str = "") -> str:
        base = f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"
        return f"{base}/{name}" if name else base

    async def _wanted(self) -> set[int]:
        if self.shard_id is not None:
            return {self.shard_id}
        if self.shards == 1:
            return {0}
        await self._claim_lease(f"claw-operator-replica-{self.identity}", labels={REPLICA_LABEL: "true"})
        listing = await self.kube.get(self._path() + f"?labelSelector={REPLICA_LABEL}%3Dtrue", LEASES)
        now = self.wall()
        live = sorted(
            str(spec.get("holderIdentity"))
            for item in (listing or {}).get("items") or []
            if (spec := item.get("spec") or {}).get("holderIdentity") and not self._expired(spec, now)
        )
        if self.identity not in live:
            live = sorted([*live, self.identity])
        me = live.index(self.identity)
        return {shard for shard in range(self.shards) if shard % len(live) == me}

    def _expired(self, spec: dict[str, Any], now: datetime) -> bool:
        renewed = _parse_time(spec.get("renewTime"))
        duration = float(spec.get("leaseDurationSeconds") or self.lease_seconds)
        return renewed is None or renewed + timedelta(seconds=duration) <= now

    async def _claim(self, shard: int) -> None:
        started = self.clock()
        won = await self._claim_lease(f"claw-operator-shard-{shard}")
        if won is None and shard in self.held:
            # Our remembered copy was stale; decide on a fresh read.
            won = await self._claim_lease(f"claw-operator-shard-{shard}")
        if won is None:
            if shard in self.held:
                self._lose(shard, "another replica holds its Lease")
            return
        first = shard not in self.held
        margin = min(SAFETY_MARGIN, self.lease_seconds / 3)
        self.held[shard] = _Held(won, started + self.lease_seconds - margin)
        if first:
            log.info("acting on shard %d of %d", shard, self.shards)
            self.on_acquired(shard)

    def _lose(self, shard: int, why: str) -> None:
        self.held.pop(shard, None)
        # Losing a shard to another replica is worth a warning; letting it go on shutdown is not.
        level = logging.INFO if why == RELEASED else logging.WARNING
        log.log(level, "no longer acting on shard %d: %s", shard, why)
        self.on_lost(shard)

    async def _claim_lease(self, name: str, labels: dict[str, str] | None = None) -> str | None:
        """Create or renew the Lease `name` for this replica; its resourceVersion when
        this replica holds it now, None when another live replica does."""
        now = self.wall()
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.lease_seconds),
            "renewTime": _micro_time(now),
        }
        current = self._mine.pop(name, None) or await self.kube.get(self._path(name), LEASES)
        try:
            if current is None:
                body = {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": name, "namespace": self.namespace, "labels": labels or {}},
                    "spec": {**spec, "acquireTime": _micro_time(now), "leaseTransitions": 0},
                }
                created = await self.kube.create(self._path(), body, LEASES)
                self._mine[name] = created
                return str(created["metadata"]["resourceVersion"])
            old = current.get("spec") or {}
            holder = old.get("holderIdentity")
            if holder and holder != self.identity and not self._expired(old, now):
                return None
            new_spec = {**old, **spec}
            if holder != self.identity:
                new_spec["acquireTime"] = _micro_time(now)
                new_spec["leaseTransitions"] = int(old.get("leaseTransitions") or 0) + 1
            body = {**current, "spec": new_spec}
            replaced = await self.kube.replace(self._path(name), body, LEASES)
            self._mine[name] = replaced
            return str(replaced["metadata"]["resourceVersion"])
        except Conflict:
            return None  # another replica wrote it first

    async def _release(self, shard: int) -> None:
        # Stop acting first, then let the Lease go.
        self._lose(shard, RELEASED)
        await self._release_lease(f"claw-operator-shard-{shard}")

    async def _release_lease(self, name: str) -> None:
        self._mine.pop(name, None)
        try:
            current = await self.kube.get(self._path(name), LEASES)
            if current is None or (current.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            spec = {**current["spec"], "holderIdentity": "", "renewTime": None}
            await self.kube.replace(self._path(name), {**current, "spec": spec}, LEASES)
        except KubeError as exc:
            log.info("releasing Lease %s: %s", name, exc)
