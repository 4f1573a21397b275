"""Watch caches: what the engine knows of the cluster without asking it.

Kopf's watch streams feed them (handlers.py); the engine's own writes feed them too (the
object a patch returns), so a pass that follows a write never sees the state from before
it. Reads on the hot path come from here and cost no API request.
- instances: the latest body of each ClawInstance, and its quota entry;
- plans: the spec of each ClawPlan;
- labelled Secrets (`claw.io/watch=true`, selected by the API server), decoded;
- unlabelled referenced Secrets, read at most once per resync period.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from claw_operator.rules.quota import InstanceEntry, QuotaBook

Key = str  # "namespace/name"


def key_of(namespace: str | None, name: str) -> Key:
    return f"{namespace or ''}/{name}"


def split_key(key: Key) -> tuple[str, str]:
    namespace, _, name = key.partition("/")
    return namespace, name


def _rv(body: Mapping[str, Any]) -> int:
    value = str((body.get("metadata") or {}).get("resourceVersion") or "")
    return int(value) if value.isdigit() else -1


def _entry(body: Mapping[str, Any]) -> InstanceEntry:
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    owner = spec.get("owner") or {}
    railway = spec.get("railway") or {}
    return InstanceEntry(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name")),
        created=str(meta.get("creationTimestamp", "")),
        plan=str(spec.get("planRef", "")),
        subscription_id=owner.get("subscriptionId") or None,
        managed=railway.get("mode", "Managed") != "SelfHosted",
        deleting=bool(meta.get("deletionTimestamp")),
    )


def _intent(body: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a user changes (spec, annotations, labels, deletion); status is ours."""
    meta = body.get("metadata") or {}
    return (
        meta.get("generation"),
        meta.get("annotations"),
        meta.get("labels"),
        meta.get("deletionTimestamp"),
    )


@dataclass
class InstanceCache:
    bodies: dict[Key, dict[str, Any]] = field(default_factory=dict)
    entries: dict[Key, InstanceEntry] = field(default_factory=dict)
    uids: dict[str, Key] = field(default_factory=dict)
    _book: QuotaBook | None = None  # rebuilt only after an entry changed

    def put(self, body: Mapping[str, Any]) -> bool:
        """Store `body` unless an equal or newer version is cached; True when what a user
        controls changed (new object, spec, annotations, labels, deletion)."""
        meta = body.get("metadata") or {}
        key = key_of(meta.get("namespace"), str(meta.get("name")))
        current = self.bodies.get(key)
        if current is not None and _rv(current) >= _rv(body) >= 0:
            return False
        fresh = copy.deepcopy(dict(body))
        self.bodies[key] = fresh
        entry = _entry(fresh)
        if self.entries.get(key) != entry:
            self.entries[key] = entry
            self._book = None
        if meta.get("uid"):
            self.uids[str(meta["uid"])] = key
        return current is None or _intent(current) != _intent(fresh)

    def drop(self, key: Key) -> None:
        body = self.bodies.pop(key, None)
        if self.entries.pop(key, None) is not None:
            self._book = None
        uid = str(((body or {}).get("metadata") or {}).get("uid") or "")
        self.uids.pop(uid, None)

    def key_of_uid(self, uid: str) -> Key | None:
        """The controller names objects by uid (namespace/name when it has none)."""
        return self.uids.get(uid) or (uid if uid in self.bodies else None)

    def get(self, key: Key) -> dict[str, Any] | None:
        """The cached body. Passes read it and never change it in place (a new version
        replaces the whole dict), so no deep copy per pass."""
        body = self.bodies.get(key)
        return dict(body) if body is not None else None

    def quota_entries(self) -> list[InstanceEntry]:
        if self._book is None:
            self._book = QuotaBook(self.entries.values())
        return self._book

    def keys_with_plan(self, plan: str) -> Iterator[Key]:
        return (key for key, entry in self.entries.items() if entry.plan == plan)

    def __len__(self) -> int:
        return len(self.bodies)


@dataclass
class PlanCache:
    specs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def put(self, name: str, spec: Mapping[str, Any]) -> bool:
        fresh = copy.deepcopy(dict(spec))
        changed = self.specs.get(name) != fresh
        self.specs[name] = fresh
        return changed

    def drop(self, name: str) -> None:
        self.specs.pop(name, None)


SecretReader = Callable[[str, str], Awaitable[dict[str, str] | None]]


@dataclass
class SecretCache:
    """Labelled Secrets from the watch; unlabelled ones read through `reader` at most once
    per `resync_seconds`. Remembers which objects use which Secret, so a change to a
    labelled Secret reaches exactly the objects that reference it."""

    reader: SecretReader
    resync_seconds: float
    clock: Callable[[], float] = time.monotonic
    labelled: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    unlabelled: dict[tuple[str, str], tuple[float, dict[str, str] | None]] = field(default_factory=dict)
    users: dict[tuple[str, str], set[Key]] = field(default_factory=dict)
    reads: int = 0

    def put(self, namespace: str, name: str, data: dict[str, str]) -> set[Key]:
        """A labelled Secret appeared or changed; returns the objects that use it."""
        where = (namespace, name)
        changed = self.labelled.get(where) != data
        self.labelled[where] = data
        self.unlabelled.pop(where, None)
        return set(self.users.get(where, ())) if changed else set()

    def drop(self, namespace: str, name: str) -> set[Key]:
        where = (namespace, name)
        self.unlabelled.pop(where, None)
        if self.labelled.pop(where, None) is None:
            return set()
        return set(self.users.get(where, ()))

    def forget_user(self, key: Key) -> None:
        for users in self.users.values():
            users.discard(key)

    def getter(self, key: Key, unlabelled_seen: set[str]) -> SecretReader:
        """The SecretGetter of one pass over `key`; names of unlabelled Secrets it had to
        read go into `unlabelled_seen`."""

        async def get_secret(namespace: str, name: str) -> dict[str, str] | None:
            where = (namespace, name)
            self.users.setdefault(where, set()).add(key)
            found = self.labelled.get(where)
            if found is not None:
                return dict(found)
            now = self.clock()
            cached = self.unlabelled.get(where)
            if cached is None or now - cached[0] >= self.resync_seconds:
                data = await self.reader(namespace, name)
                self.reads += 1
                cached = (now, data)
                self.unlabelled[where] = cached
            if cached[1] is not None:
                unlabelled_seen.add(name)
                return dict(cached[1])
            return None

        return get_secret
