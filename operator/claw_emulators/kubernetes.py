"""A Kubernetes API emulator that Kopf and kubectl can run against, in-process.

It builds on kmock's `KubernetesEmulator` (its object store with per-object history and its
error rendering), and adds what a real API server guarantees and what Kopf and kubectl rely
on: uid, a global resourceVersion with optimistic concurrency, generation,
creationTimestamp, the status subresource, merge- and JSON-patch, finalizer-aware deletion,
watches that resume from a resourceVersion (with bookmarks), label and field selectors,
discovery, OpenAPI documents (for `kubectl explain`), Tables for printer columns,
CustomResourceDefinitions that register resources, and admission of custom resources
against their schema (kubernetes_validation). kmock's own request parsing mis-reads
`/api/v1/namespaces`, so requests for API paths are routed here before kmock sees them.

`KubernetesServer` runs it on 127.0.0.1 and adds test helpers, write accounting and
request counters for benchmarks.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import copy
import dataclasses
import datetime
import json
import logging
import random
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp.web
import attrs
import kmock
import yaml

from claw_emulators import kubernetes_errors as field_errors
from claw_emulators import kubernetes_openapi as openapi
from claw_emulators import kubernetes_patches as patches
from claw_emulators import kubernetes_tables as tables
from claw_emulators import kubernetes_validation as validation
from claw_emulators.kubernetes_requests import RequestRecord, RequestStats
from claw_emulators.kubernetes_resources import (
    BUILTIN_RESOURCES,
    CONFIGMAPS,
    CRD_GROUP,
    NAMESPACES,
    SECRETS,
    ResourceDef,
    SelectorError,
    field_selector,
    label_selector,
    resources_from_crd,
)

logger = logging.getLogger(__name__)

JSON = "application/json"
_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # what the API server uses for generateName
GENERATE_NAME_TRIES = 8
_TERMINAL_SUBRESOURCES = {"status", "finalize"}
_FIELD_VALIDATION = ("Ignore", "Warn", "Strict")
_WATCH_CHUNK = 64 * 1024  # initial watch events are written in chunks of about this size
_VERB_NAMES = {"put": "update"}  # request counters use the API server's verb names


class KubeAPIError(Exception):
    """An error answered as a `v1 Status` with the API server's reason and code."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def status(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }

    @classmethod
    def invalid(cls, rdef: ResourceDef, name: str, errors: list[field_errors.FieldError]) -> KubeAPIError:
        """422 Invalid naming every bad field, as the API server answers a failed validation."""
        status = field_errors.invalid_status(rdef.kind, rdef.group, name, errors)
        return cls(422, "Invalid", status["message"], status["details"])

    @property
    def causes(self) -> list[dict[str, str]]:
        """The field errors of an Invalid answer: `[{"reason", "message", "field"}, ...]`."""
        return list(self.details.get("causes") or [])


def _not_found(rdef: ResourceDef, name: str) -> KubeAPIError:
    details = {"name": name, "group": rdef.group, "kind": rdef.plural}
    return KubeAPIError(404, "NotFound", f'{rdef.qualified} "{name}" not found', details)


def _conflict(rdef: ResourceDef, name: str) -> KubeAPIError:
    return KubeAPIError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {rdef.qualified} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        {"name": name, "group": rdef.group, "kind": rdef.plural},
    )


def _strict_decoding_error(
    rdef: ResourceDef, name: str, unknown: list[str], patch: Any, verb: str
) -> KubeAPIError:
    """What the API server answers a request with `fieldValidation=Strict` and unknown fields:
    400 on create and update; on patch, 422 about the `patch` itself."""
    found = ", ".join(f"unknown field {json.dumps(path)}" for path in unknown)
    if verb != "patch":
        return KubeAPIError(
            400,
            "BadRequest",
            f"{rdef.kind} in version {json.dumps(rdef.version)} cannot be handled as a {rdef.kind}: "
            f"strict decoding error: {found}",
        )
    error = field_errors.invalid("patch", json.dumps(patch), f"strict decoding error: {found}")
    message = f"The request is invalid: {error}"
    return KubeAPIError(422, "Invalid", message, {"causes": [error.cause()]})


def now_rfc3339() -> str:
    """The API server's timestamps: UTC, whole seconds, `Z`."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass(frozen=True)
class WriteRecord:
    """One write request: verb is create|patch|put|delete, subresource "" or "status";
    `changed` is False for writes the server accepted without changing anything; `direct`
    marks writes made by test helpers rather than API clients."""

    verb: str
    plural: str
    namespace: str | None
    name: str
    subresource: str
    changed: bool
    direct: bool


@dataclasses.dataclass
class Fault:
    """An injected failure: the next `times` matching requests are answered with `code`."""

    verb: str  # get|list|watch|create|patch|put|delete, or "*"
    plural: str = "*"
    name: str = "*"
    subresource: str = "*"
    code: int = 500
    times: int = 1
    message: str = "injected fault"

    def matches(self, verb: str, plural: str, name: str | None, subresource: str) -> bool:
        return (
            self.times > 0
            and self.verb in ("*", verb)
            and self.plural in ("*", plural)
            and self.name in ("*", name)
            and self.subresource in ("*", subresource)
        )


@dataclasses.dataclass(frozen=True)
class _Route:
    group: str
    version: str | None
    plural: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str = ""


def _parse_route(path: str) -> _Route | None:
    """Split an API path; None for paths that are not the Kubernetes API (e.g. /version)."""
    segments = [segment for segment in path.strip("/").split("/") if segment]
    if not segments or segments[0] not in ("api", "apis"):
        return None
    if segments[0] == "api":
        group, rest = "", segments[1:]
    else:
        if len(segments) == 1:
            return _Route(group="*", version=None)
        group, rest = segments[1], segments[2:]
    if not rest:
        return _Route(group=group, version=None)
    version, rest = rest[0], rest[1:]
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in _TERMINAL_SUBRESOURCES:
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        return _Route(group=group, version=version, plural="")  # unknown: answered 404
    return _Route(
        group=group,
        version=version,
        plural=rest[0] if rest else None,
        namespace=namespace,
        name=rest[1] if len(rest) > 1 else None,
        subresource=rest[2] if len(rest) > 2 else "",
    )


def _selectors(label: str | None, field: str | None) -> tuple[Callable[..., bool], Callable[..., bool]]:
    try:
        return label_selector(label or None), field_selector(field or None)
    except SelectorError as exc:
        raise KubeAPIError(400, "BadRequest", str(exc)) from exc


@dataclasses.dataclass(eq=False)
class _Watcher:
    rdef: ResourceDef
    namespace: str | None
    label_selector: str | None
    field_selector: str | None
    queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = dataclasses.field(default_factory=asyncio.Queue)

    def __post_init__(self) -> None:
        self._labels, self._fields = _selectors(self.label_selector, self.field_selector)

    def wants(self, rdef: ResourceDef, obj: Mapping[str, Any]) -> bool:
        meta = obj.get("metadata", {})
        return (
            rdef.key == self.rdef.key
            and (self.namespace is None or meta.get("namespace") == self.namespace)
            and self._labels(meta.get("labels") or {})
            and self._fields(obj)
        )


_Index = dict[str | None, dict[str, dict[str, Any]]]  # namespace -> name -> current object


@attrs.define(kw_only=True)
class KubernetesAPIEmulator(kmock.KubernetesEmulator):  # type: ignore[misc]
    """The emulated API server (an aiohttp low-level handler; see `KubernetesServer`).

    Objects live in kmock's `objects` array (assert on `emulator.objects[res, ns, name]` and
    its `.history`), with an index by resource and namespace that makes gets O(1) and lists
    proportional to what they return. Stored versions are never mutated: a write stores a
    new dict, so responses and watch events share them without copying. The synchronous
    methods (`create_object`, `patch_object`, ...) are the same code paths the HTTP API
    uses, so watches see changes made through them; they return deep copies.
    """

    bookmark_interval: float = 30.0  # keeps idle watches alive, like the real server
    history_limit: int = 100_000  # watch events kept for resuming; older ones answer 410 Gone
    object_history: int = 50  # versions kept per object in kmock's `.history` (memory at 10,000)
    record_requests: bool = False  # kmock's full request log (bodies included); off by default
    request_log: bool = False  # keep every RequestRecord in `request_stats.log`, not only counts
    write_log_limit: int = 1_000_000  # newest writes kept for the write helpers (a long `make run`)

    writes: collections.deque[WriteRecord] = attrs.field(init=False)
    faults: list[Fault] = attrs.field(factory=list, init=False)
    request_stats: RequestStats = attrs.field(init=False)
    _defs: dict[tuple[str, str, str], ResourceDef] = attrs.field(factory=dict, init=False)
    _index: dict[tuple[str, str, str], _Index] = attrs.field(factory=dict, init=False)
    _rv: int = attrs.field(default=1, init=False)
    _log: collections.deque[tuple[int, ResourceDef, str, dict[str, Any]]] = attrs.field(init=False)
    _log_floor: int = attrs.field(default=0, init=False)
    _watchers: set[_Watcher] = attrs.field(factory=set, init=False)
    _closing: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._log = collections.deque(maxlen=self.history_limit)
        self.writes = collections.deque(maxlen=self.write_log_limit)
        self.request_stats = RequestStats(keep_log=self.request_log)
        for rdef in BUILTIN_RESOURCES:
            self._defs[rdef.key] = rdef
        for name in ("default", "kube-system"):
            self.create_object(NAMESPACES, None, {"metadata": {"name": name}}, direct=True)

    # ----- resource registry -----

    @property
    def resource_defs(self) -> list[ResourceDef]:
        return list(self._defs.values())

    def register_crd(self, crd: Mapping[str, Any]) -> dict[str, Any]:
        """Register a CustomResourceDefinition (a dict as in crds/*.yaml); returns it as stored."""
        name = crd.get("metadata", {}).get("name")
        crds = self._defs[(CRD_GROUP, "v1", "customresourcedefinitions")]
        if name and self._current(crds, None, name) is not None:
            body = {k: v for k, v in crd.items() if k not in ("status",)}
            return self.replace_object(crds, None, name, body, direct=True)
        return self.create_object(crds, None, dict(crd), direct=True)

    def resolve(self, resource: str | ResourceDef) -> ResourceDef:
        """A ResourceDef by plural, singular, kind, short name, `plural.group` or `g/v/plural`."""
        if isinstance(resource, ResourceDef):
            return resource
        wanted = resource.lower() if "/" not in resource else resource
        for rdef in self._defs.values():
            if wanted in rdef.names():
                return rdef
        raise KeyError(f"unknown resource {resource!r}")

    def _on_crd_change(self, crd: Mapping[str, Any] | None, old: Mapping[str, Any] | None) -> None:
        for rdef in resources_from_crd(old) if old else []:
            self._defs.pop(rdef.key, None)
        for rdef in resources_from_crd(crd) if crd else []:
            self._defs[rdef.key] = rdef

    # ----- object store -----

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    @property
    def resource_version(self) -> str:
        return str(self._rv)

    def _store_key(self, rdef: ResourceDef, namespace: str | None, name: str) -> tuple[Any, ...]:
        return (kmock.resource(rdef.group, rdef.version, rdef.plural), namespace, name)

    def _current(self, rdef: ResourceDef, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object itself (never to be mutated), or None."""
        by_namespace = self._index.get(rdef.key)
        if by_namespace is None:
            return None
        return by_namespace.get(namespace if rdef.namespaced else None, {}).get(name)

    def _store(self, rdef: ResourceDef, namespace: str | None, name: str, obj: dict[str, Any] | None) -> None:
        """Make `obj` the current version (None: deleted), in kmock's history and the index."""
        key = self._store_key(rdef, namespace, name)
        names = self._index.setdefault(rdef.key, {}).setdefault(namespace, {})
        if obj is None:
            self._objects[key].delete()
            names.pop(name, None)
            return
        if key not in self._objects:
            self._objects[key] = obj
        elif self._objects[key].deleted:
            self._objects[key].create(obj)  # re-creation keeps the earlier history
        else:
            history = self._objects[key].history
            history.append(obj)
            if len(history) > self.object_history:
                del history[: len(history) - self.object_history]
        names[name] = obj

    def get_object(self, rdef: ResourceDef, namespace: str | None, name: str) -> dict[str, Any] | None:
        """A deep copy of the current object, or None."""
        current = self._current(rdef, namespace, name)
        return copy.deepcopy(current) if current is not None else None

    def _select(
        self,
        rdef: ResourceDef,
        namespace: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        """The stored objects (not copies) matching, sorted by namespace and name."""
        labels, fields = _selectors(label_selector, field_selector)
        by_namespace = self._index.get(rdef.key, {})
        if namespace is not None and rdef.namespaced:
            groups: Iterable[tuple[str | None, dict[str, dict[str, Any]]]] = [
                (namespace, by_namespace.get(namespace, {}))
            ]
        else:
            groups = sorted(by_namespace.items(), key=lambda item: item[0] or "")
        found = []
        for _, names in groups:
            for name in sorted(names):
                obj = names[name]
                if labels(obj["metadata"].get("labels") or {}) and fields(obj):
                    found.append(obj)
        return found

    def list_objects(
        self,
        rdef: ResourceDef,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        """Current objects sorted by namespace and name (deep copies)."""
        return copy.deepcopy(self._select(rdef, namespace, label_selector, field_selector))

    def count_objects(self, rdef: ResourceDef, namespace: str | None = None) -> int:
        """How many objects of a resource exist (in a namespace), without copying them."""
        by_namespace = self._index.get(rdef.key, {})
        if namespace is not None:
            return len(by_namespace.get(namespace, {}))
        return sum(len(names) for names in by_namespace.values())

    def _emit(self, rdef: ResourceDef, event_type: str, obj: dict[str, Any]) -> None:
        rv = int(obj["metadata"]["resourceVersion"])
        if len(self._log) == self._log.maxlen:
            self._log_floor = self._log[0][0]
        self._log.append((rv, rdef, event_type, obj))
        for watcher in self._watchers:
            if watcher.wants(rdef, obj):
                watcher.queue.put_nowait((event_type, obj))

    def _events_since(self, since: int) -> list[tuple[int, ResourceDef, str, dict[str, Any]]]:
        """Logged events after resourceVersion `since`, oldest first, reading only those."""
        newer: list[tuple[int, ResourceDef, str, dict[str, Any]]] = []
        for entry in reversed(self._log):
            if entry[0] <= since:
                break
            newer.append(entry)
        newer.reverse()
        return newer

    def _record(
        self, verb: str, rdef: ResourceDef, obj: Mapping[str, Any], sub: str, changed: bool, direct: bool
    ) -> None:
        meta = obj.get("metadata", {})
        self.writes.append(
            WriteRecord(verb, rdef.plural, meta.get("namespace"), meta["name"], sub, changed, direct)
        )

    def _ensure_namespace(self, namespace: str) -> None:
        # Namespaces are known implicitly from the objects in them, as the brief of a test
        # cluster wants; materialising them keeps `get ns` and namespace watches consistent.
        if self._current(NAMESPACES, None, namespace) is None:
            self.create_object(NAMESPACES, None, {"metadata": {"name": namespace}}, direct=True, record=False)

    def _admit(
        self,
        rdef: ResourceDef,
        obj: dict[str, Any],
        *,
        old: Mapping[str, Any] | None,
        subresource: str,
        field_validation: str,
        warnings: list[str] | None,
        verb: str,
        patch: Any = None,
    ) -> dict[str, Any]:
        """The object as stored after pruning and defaulting; raises 422 (or 400) if invalid."""
        if field_validation not in _FIELD_VALIDATION:
            raise KubeAPIError(
                400, "BadRequest", f"fieldValidation must be one of {', '.join(_FIELD_VALIDATION)}"
            )
        name = obj["metadata"]["name"]
        admission = validation.admit(rdef.schema, obj, old=old, subtree=subresource)
        if admission.unknown_fields and field_validation == "Strict":
            raise _strict_decoding_error(rdef, name, admission.unknown_fields, patch, verb)
        if admission.unknown_fields and field_validation == "Warn" and warnings is not None:
            warnings.extend(f"unknown field {json.dumps(path)}" for path in admission.unknown_fields)
        found = list(admission.errors)
        if rdef.key in (SECRETS.key, CONFIGMAPS.key) and not found:
            undecodable = validation.undecodable_base64(
                admission.obj.get("data" if rdef.key == SECRETS.key else "binaryData") or {}
            )
            if undecodable:
                raise KubeAPIError(
                    400,
                    "BadRequest",
                    f"{rdef.kind} in version {json.dumps(rdef.version)} cannot be handled as a "
                    f"{rdef.kind}: {undecodable}",
                )
            data_maps = ("data", "stringData") if rdef.key == SECRETS.key else ("data", "binaryData")
            found += validation.config_key_errors(admission.obj, data_maps)
        if found:
            raise KubeAPIError.invalid(rdef, name, found)
        return admission.obj

    def create_object(
        self,
        rdef: ResourceDef,
        namespace: str | None,
        body: Mapping[str, Any],
        *,
        direct: bool = True,
        record: bool = True,
        field_validation: str = "Warn",
        warnings: list[str] | None = None,
        owned: bool = False,
    ) -> dict[str, Any]:
        """Create as the API server would (POST); returns (a deep copy of) the stored object.

        `owned=True` (the HTTP layer) hands over `body` and gets the stored object itself
        back, to serialise without copying: neither may be changed afterwards."""
        obj = dict(body) if owned else copy.deepcopy(dict(body))
        meta = obj.setdefault("metadata", {})
        if rdef.namespaced:
            namespace = namespace or meta.get("namespace") or "default"
            if meta.get("namespace") not in (None, namespace):
                raise KubeAPIError(
                    400, "BadRequest", "the namespace of the object does not match the request"
                )
            meta["namespace"] = namespace
        else:
            namespace = None
            meta.pop("namespace", None)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise KubeAPIError.invalid(
                    rdef,
                    "",
                    [field_errors.required("metadata.name", "name or generateName is required")],
                )
            # As kube-apiserver since 1.30 (RetryGenerateName): a taken name is generated
            # again, up to 8 tries, so busy prefixes (Kopf's events) rarely collide.
            for _attempt in range(GENERATE_NAME_TRIES):
                suffix = "".join(random.choices(_NAME_SUFFIX_ALPHABET, k=5))
                meta["name"] = f"{meta['generateName']}{suffix}"
                if self._current(rdef, namespace, meta["name"]) is None:
                    break
        name = meta["name"]
        name_errors = validation.validate_name(str(name), label=rdef.key == NAMESPACES.key)
        if name_errors:
            raise KubeAPIError.invalid(rdef, str(name), name_errors)
        if rdef.key == CRDS_KEY:
            try:
                new_defs = resources_from_crd(obj)
            except (ValueError, KeyError, TypeError) as exc:
                raise KubeAPIError(422, "Invalid", f"invalid CustomResourceDefinition: {exc}") from exc
            if new_defs:
                expected = f"{new_defs[0].plural}.{new_defs[0].group}"
                if name != expected:
                    raise KubeAPIError(422, "Invalid", f"metadata.name must be {expected!r}")
            obj["status"] = _crd_status(obj)
        elif rdef.status_subresource and rdef.key != NAMESPACES.key:
            obj.pop("status", None)
        if rdef.key == NAMESPACES.key:
            obj["status"] = {"phase": "Active"}
        for field in ("deletionTimestamp", "deletionGracePeriodSeconds", "generation", "resourceVersion"):
            meta.pop(field, None)
        obj["apiVersion"], obj["kind"] = rdef.api_version, rdef.kind
        obj = self._admit(
            rdef,
            obj,
            old=None,
            subresource="",
            field_validation=field_validation,
            warnings=warnings,
            verb="create",
        )
        if self._current(rdef, namespace, name) is not None:
            raise KubeAPIError(
                409,
                "AlreadyExists",
                f'{rdef.qualified} "{name}" already exists',
                {"name": name, "group": rdef.group, "kind": rdef.plural},
            )
        if namespace is not None:
            self._ensure_namespace(namespace)
        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if rdef.has_generation:
            meta["generation"] = 1
        _normalise_builtin(rdef, obj)
        meta["resourceVersion"] = self._next_rv()
        self._store(rdef, namespace, name, obj)
        if rdef.key == CRDS_KEY:
            self._on_crd_change(obj, None)
        self._emit(rdef, "ADDED", obj)
        if record:
            self._record("create", rdef, obj, "", True, direct)
        return obj if owned else copy.deepcopy(obj)

    def update_object(
        self,
        rdef: ResourceDef,
        namespace: str | None,
        name: str,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        verb: str,
        subresource: str = "",
        direct: bool = True,
        field_validation: str = "Warn",
        warnings: list[str] | None = None,
        patch: Any = None,
        owned: bool = False,
    ) -> dict[str, Any]:
        """Apply `change` (a copy of the current object -> desired object) with the API
        server's rules; `owned=True` returns the stored object itself (see `create_object`)."""
        namespace = namespace if rdef.namespaced else None
        old = self._current(rdef, namespace, name)
        if old is None:
            raise _not_found(rdef, name)
        desired = change(copy.deepcopy(old))
        if not isinstance(desired, dict):
            raise KubeAPIError(422, "Invalid", "the patched object is not a JSON object")
        wanted_rv = (desired.get("metadata") or {}).get("resourceVersion")
        if wanted_rv not in (None, "") and str(wanted_rv) != old["metadata"]["resourceVersion"]:
            raise _conflict(rdef, name)
        new = self._merge_rules(rdef, old, desired, subresource)
        new = self._admit(
            rdef,
            new,
            old=old,
            subresource=subresource,
            field_validation=field_validation,
            warnings=warnings,
            verb=verb,
            patch=patch,
        )
        _normalise_builtin(rdef, new)
        changed = new != old
        self._record(verb, rdef, new, subresource, changed, direct)
        if not changed:
            return new if owned else copy.deepcopy(new)
        old_meta, meta = old["metadata"], new["metadata"]
        if rdef.has_generation and _spec_changed(rdef, old, new):
            meta["generation"] = old_meta.get("generation", 1) + 1
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            # As the API server does: the update that releases the last finalizer becomes
            # the deletion itself, so watchers see DELETED, not MODIFIED then DELETED.
            self._objects[self._store_key(rdef, namespace, name)].history.append(new)
            removed = self._remove(rdef, namespace, name, new)
            return removed if owned else copy.deepcopy(removed)
        meta["resourceVersion"] = self._next_rv()
        self._store(rdef, namespace, name, new)
        if rdef.key == CRDS_KEY:
            self._on_crd_change(new, old)
        self._emit(rdef, "MODIFIED", new)
        return new if owned else copy.deepcopy(new)

    def _merge_rules(
        self, rdef: ResourceDef, old: dict[str, Any], desired: dict[str, Any], subresource: str
    ) -> dict[str, Any]:
        if subresource == "status":
            new = copy.deepcopy(old)
            if "status" in desired:
                new["status"] = desired["status"]
            else:
                new.pop("status", None)
            return new
        new = desired
        if rdef.status_subresource:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        meta = new.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise KubeAPIError(422, "Invalid", "metadata must be an object")
        # Identity and server-owned fields cannot be changed by clients.
        for field in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "generation"):
            if field in old["metadata"]:
                meta[field] = old["metadata"][field]
            else:
                meta.pop(field, None)
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        if meta.get("finalizers") == []:
            del meta["finalizers"]
        new["apiVersion"], new["kind"] = rdef.api_version, rdef.kind
        if rdef.key == CRDS_KEY:
            new["status"] = _crd_status(new)
        return new

    def patch_object(
        self,
        rdef: ResourceDef,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        content_type: str = patches.MERGE_PATCH,
        subresource: str = "",
        direct: bool = True,
        field_validation: str = "Warn",
        warnings: list[str] | None = None,
        owned: bool = False,
    ) -> dict[str, Any]:
        """PATCH with any of the content types Kopf and kubectl send."""

        def change(current: dict[str, Any]) -> dict[str, Any]:
            try:
                if content_type == patches.JSON_PATCH:
                    result: dict[str, Any] = patches.json_patch(current, patch)
                    # A JSON-patch sees the current resourceVersion, so it never conflicts
                    # on it: its `test` op is how it asks for optimistic concurrency.
                    if isinstance(result.get("metadata"), dict):
                        result["metadata"].pop("resourceVersion", None)
                    return result
                if content_type in (patches.MERGE_PATCH, patches.STRATEGIC_MERGE_PATCH):
                    if not isinstance(patch, dict):
                        raise KubeAPIError(400, "BadRequest", "a merge-patch must be a JSON object")
                    merged: dict[str, Any] = patches.merge_patch(current, patch)
                    return merged
            except patches.PatchError as exc:
                reason = "Invalid" if exc.status == 422 else "BadRequest"
                raise KubeAPIError(exc.status, reason, str(exc)) from exc
            raise KubeAPIError(
                415, "UnsupportedMediaType", f"the patch type {content_type!r} is not supported"
            )

        return self.update_object(
            rdef,
            namespace,
            name,
            change,
            verb="patch",
            subresource=subresource,
            direct=direct,
            field_validation=field_validation,
            warnings=warnings,
            patch=patch,
            owned=owned,
        )

    def replace_object(
        self,
        rdef: ResourceDef,
        namespace: str | None,
        name: str,
        body: Mapping[str, Any],
        *,
        subresource: str = "",
        direct: bool = True,
        field_validation: str = "Warn",
        warnings: list[str] | None = None,
        owned: bool = False,
    ) -> dict[str, Any]:
        """PUT: the whole object (or its status); a stale metadata.resourceVersion is a 409."""
        replacement = dict(body) if owned else copy.deepcopy(dict(body))
        return self.update_object(
            rdef,
            namespace,
            name,
            lambda _: replacement,
            verb="put",
            subresource=subresource,
            direct=direct,
            field_validation=field_validation,
            warnings=warnings,
            owned=owned,
        )

    def delete_object(
        self,
        rdef: ResourceDef,
        namespace: str | None,
        name: str,
        *,
        preconditions: Mapping[str, Any] | None = None,
        direct: bool = True,
    ) -> dict[str, Any]:
        """DELETE: with finalizers, mark deletionTimestamp and keep; without, remove at once."""
        namespace = namespace if rdef.namespaced else None
        old = self._current(rdef, namespace, name)
        if old is None:
            raise _not_found(rdef, name)
        meta = old["metadata"]
        pre = preconditions or {}
        if (pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]) or (
            pre.get("uid") and pre["uid"] != meta["uid"]
        ):
            raise _conflict(rdef, name)
        self._record("delete", rdef, old, "", not meta.get("deletionTimestamp"), direct)
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return copy.deepcopy(old)
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            if rdef.has_generation:
                # The API server counts a graceful deletion as a generation, too.
                new["metadata"]["generation"] = meta.get("generation", 1) + 1
            new["metadata"]["resourceVersion"] = self._next_rv()
            self._store(rdef, namespace, name, new)
            self._emit(rdef, "MODIFIED", new)
            return copy.deepcopy(new)
        return copy.deepcopy(self._remove(rdef, namespace, name, old))

    def _remove(
        self, rdef: ResourceDef, namespace: str | None, name: str, last: dict[str, Any]
    ) -> dict[str, Any]:
        final = copy.deepcopy(last)
        final["metadata"]["resourceVersion"] = self._next_rv()
        self._store(rdef, namespace, name, None)
        if rdef.key == CRDS_KEY:
            self._on_crd_change(None, final)
        self._emit(rdef, "DELETED", final)
        return final

    def inject_fault(self, fault: Fault) -> Fault:
        """Answer the next matching request(s) with an error (see `Fault`)."""
        self.faults.append(fault)
        return fault

    def close_watches(self) -> None:
        """End every open watch stream, so that the HTTP server can shut down at once."""
        self._closing = True
        for watcher in self._watchers:
            watcher.queue.put_nowait(None)

    # ----- HTTP -----

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        path = raw_request.path
        if path.startswith("/openapi/"):
            return self._openapi_response(path)
        route = _parse_route(path)
        if route is None:
            # Not the resource API (e.g. /version): kmock's scaffold answers.
            response: aiohttp.web.StreamResponse = await super().__call__(raw_request)
            return response
        body = await raw_request.read()
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        if self.record_requests:
            self._requests.append(
                kmock.Request(
                    id=len(self._requests),
                    method=raw_request.method,
                    url=raw_request.url,
                    params=dict(raw_request.query),
                    headers=dict(raw_request.headers),
                    body=body,
                    text=body.decode("utf-8", "replace"),
                    data=data,
                    resource=kmock.resource(route.group, route.version, route.plural)
                    if route.plural
                    else None,
                    namespace=route.namespace,
                    name=route.name,
                    subresource=route.subresource or None,
                )
            )
        try:
            if body and data is None:
                raise KubeAPIError(400, "BadRequest", "the request body is not valid JSON")
            return await self._serve(route, raw_request, data)
        except KubeAPIError as exc:
            return aiohttp.web.json_response(exc.status(), status=exc.code)
        except Exception as exc:  # an emulator bug must reach the client, not hang it
            logger.exception("Kubernetes emulator failed on %s %s", raw_request.method, raw_request.path)
            error = KubeAPIError(500, "InternalError", f"emulator error: {exc!r}")
            return aiohttp.web.json_response(error.status(), status=500)

    def _openapi_response(self, path: str) -> aiohttp.web.StreamResponse:
        defs = list(self._defs.values())
        if path.rstrip("/") == "/openapi/v2":
            return aiohttp.web.json_response(openapi.openapi_v2(defs))
        if path.rstrip("/") == "/openapi/v3":
            return aiohttp.web.json_response(openapi.openapi_v3_index(defs))
        document = openapi.openapi_v3_document(defs, path.removeprefix("/openapi/v3/"))
        if document is None or not path.startswith("/openapi/v3/"):
            error = KubeAPIError(404, "NotFound", "the server could not find the requested resource")
            return aiohttp.web.json_response(error.status(), status=404)
        return aiohttp.web.json_response(document)

    async def _serve(
        self, route: _Route, request: aiohttp.web.BaseRequest, data: Any
    ) -> aiohttp.web.StreamResponse:
        if route.plural is None:
            if request.method != "GET":
                raise KubeAPIError(405, "MethodNotAllowed", "discovery is read-only")
            return aiohttp.web.json_response(self._discovery(route))
        rdef = self._defs.get((route.group, route.version or "", route.plural))
        if rdef is None:
            raise KubeAPIError(404, "NotFound", "the server could not find the requested resource")
        if (route.namespace is not None and not rdef.namespaced) or (route.subresource and not route.name):
            raise KubeAPIError(404, "NotFound", "the server could not find the requested resource")
        if route.subresource and (route.subresource != "status" or not rdef.status_subresource):
            raise KubeAPIError(
                404, "NotFound", f"the server could not find the subresource {route.subresource!r}"
            )
        params = request.query
        watching = params.get("watch") in ("true", "1")
        verb = {
            "GET": "watch" if watching else ("get" if route.name else "list"),
            "POST": "create",
            "PUT": "put",
            "PATCH": "patch",
            "DELETE": "delete",
        }.get(request.method, "")
        if (
            not verb
            or (verb == "create" and route.name)
            or (verb in ("put", "patch", "delete") and not route.name)
        ):
            raise KubeAPIError(405, "MethodNotAllowed", f"{request.method} is not supported here")
        self.request_stats.record(
            RequestRecord(
                verb=_VERB_NAMES.get(verb, verb),
                resource=rdef.plural,
                subresource=route.subresource,
                namespace=route.namespace,
                name=route.name,
                label_selector=params.get("labelSelector"),
                field_selector=params.get("fieldSelector"),
            )
        )
        for fault in self.faults:
            if fault.matches(verb, rdef.plural, route.name, route.subresource):
                fault.times -= 1
                raise KubeAPIError(
                    fault.code, "InternalError" if fault.code >= 500 else "Injected", fault.message
                )

        namespace = route.namespace
        accept = request.headers.get("Accept", "")
        if verb == "watch":
            field_selector = params.get("fieldSelector")
            if route.name:
                field_selector = ",".join(filter(None, [field_selector, f"metadata.name={route.name}"]))
            return await self._watch_response(request, rdef, namespace, field_selector)
        if verb == "list":
            return self._list_response(rdef, namespace, params, accept)
        if verb == "get":
            assert route.name is not None
            obj = self._current(rdef, namespace, route.name)
            if obj is None:
                raise _not_found(rdef, route.name)
            return self._object_response(rdef, obj, accept, params)
        if (
            not isinstance(data, dict)
            and not (verb == "patch" and isinstance(data, list))
            and verb != "delete"
        ):
            raise KubeAPIError(400, "BadRequest", "a JSON object is required in the request body")
        warnings: list[str] = []
        field_validation = params.get("fieldValidation") or "Warn"
        if verb == "create":
            if rdef.namespaced and namespace is None:
                raise KubeAPIError(404, "NotFound", "namespaced resources are created in a namespace path")
            obj = self.create_object(
                rdef,
                namespace,
                data,
                direct=False,
                field_validation=field_validation,
                warnings=warnings,
                owned=True,
            )
            return _json(obj, status=201, warnings=warnings)
        assert route.name is not None
        if verb == "put":
            obj = self.replace_object(
                rdef,
                namespace,
                route.name,
                data,
                subresource=route.subresource,
                direct=False,
                field_validation=field_validation,
                warnings=warnings,
                owned=True,
            )
        elif verb == "patch":
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
            obj = self.patch_object(
                rdef,
                namespace,
                route.name,
                data,
                content_type=content_type,
                subresource=route.subresource,
                direct=False,
                field_validation=field_validation,
                warnings=warnings,
                owned=True,
            )
        else:
            options = data if isinstance(data, dict) else {}
            obj = self.delete_object(
                rdef, namespace, route.name, preconditions=options.get("preconditions"), direct=False
            )
        return _json(obj, warnings=warnings)

    def _object_response(
        self, rdef: ResourceDef, obj: dict[str, Any], accept: str, params: Mapping[str, str]
    ) -> aiohttp.web.StreamResponse:
        if tables.wants_table(accept):
            table = tables.table(
                [obj],
                rdef.printer_columns,
                resource_version=obj["metadata"]["resourceVersion"],
                include_object=params.get("includeObject", "Metadata"),
            )
            return _json(table, content_type=tables.TABLE_MEDIA_TYPE)
        return _json(obj)

    def _list_response(
        self, rdef: ResourceDef, namespace: str | None, params: Mapping[str, str], accept: str
    ) -> aiohttp.web.StreamResponse:
        items = self._select(rdef, namespace, params.get("labelSelector"), params.get("fieldSelector"))
        start = int(params.get("continue") or 0)
        limit = int(params.get("limit") or 0)
        page = items[start : start + limit] if limit else items[start:]
        more = bool(limit) and start + limit < len(items)
        metadata = {"resourceVersion": self.resource_version, "continue": str(start + limit) if more else ""}
        if tables.wants_table(accept):
            table = tables.table(
                page,
                rdef.printer_columns,
                resource_version=self.resource_version,
                include_object=params.get("includeObject", "Metadata"),
            )
            table["metadata"] = metadata
            return _json(table, content_type=tables.TABLE_MEDIA_TYPE)
        return _json(
            {"kind": f"{rdef.kind}List", "apiVersion": rdef.api_version, "metadata": metadata, "items": page}
        )

    async def _watch_response(
        self,
        request: aiohttp.web.BaseRequest,
        rdef: ResourceDef,
        namespace: str | None,
        field_selector: str | None,
    ) -> aiohttp.web.StreamResponse:
        params = request.query
        as_table = tables.wants_table(request.headers.get("Accept", ""))
        watcher = _Watcher(rdef, namespace, params.get("labelSelector"), field_selector)
        since = params.get("resourceVersion") or "0"
        initial: list[tuple[str, dict[str, Any]]]
        # Snapshot and subscribe with no await in between: no change can slip through.
        if since == "0" or params.get("sendInitialEvents") == "true":
            objs = self._select(rdef, namespace, watcher.label_selector, field_selector)
            initial = [("ADDED", obj) for obj in objs]
            if params.get("sendInitialEvents") == "true" and params.get("allowWatchBookmarks") == "true":
                initial.append(("BOOKMARK", self._bookmark(rdef, initial_end=True)))
        elif not since.isdigit() or int(since) < self._log_floor:
            initial = [("ERROR", KubeAPIError(410, "Expired", f"too old resource version: {since}").status())]
        else:
            initial = [
                (event_type, obj)
                for _, event_rdef, event_type, obj in self._events_since(int(since))
                if watcher.wants(event_rdef, obj)
            ]
        response = aiohttp.web.StreamResponse(
            headers={"Content-Type": tables.TABLE_MEDIA_TYPE if as_table else JSON}
        )
        self._watchers.add(watcher)
        columns = rdef.printer_columns
        first = True

        def encode(event_type: str, obj: dict[str, Any]) -> bytes:
            nonlocal first
            if as_table and event_type not in ("ERROR", "BOOKMARK"):
                obj = tables.table(
                    [obj],
                    columns,
                    resource_version=obj["metadata"]["resourceVersion"],
                    include_object=params.get("includeObject", "Metadata"),
                    with_definitions=first,
                )
                first = False
            return json.dumps({"type": event_type, "object": obj}).encode() + b"\n"

        loop = asyncio.get_running_loop()
        timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None
        deadline = loop.time() + timeout if timeout else None
        bookmarks = params.get("allowWatchBookmarks") == "true"
        try:
            await response.prepare(request)
            chunk = bytearray()
            for event_type, obj in initial:
                chunk += encode(event_type, obj)
                if len(chunk) >= _WATCH_CHUNK:
                    await response.write(bytes(chunk))
                    chunk.clear()
                if event_type == "ERROR":
                    await response.write(bytes(chunk))
                    return response
            if chunk:
                await response.write(bytes(chunk))
            while not self._closing:
                wait = self.bookmark_interval
                if deadline is not None:
                    wait = min(wait, deadline - loop.time())
                    if wait <= 0:
                        break
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), timeout=wait)
                except TimeoutError:
                    if bookmarks and (deadline is None or loop.time() < deadline):
                        await response.write(encode("BOOKMARK", self._bookmark(rdef)))
                    continue
                if item is None:
                    break
                await response.write(encode(*item))
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            pass  # the client went away or the server is stopping: nothing more to send
        finally:
            self._watchers.discard(watcher)
        return response

    def _bookmark(self, rdef: ResourceDef, initial_end: bool = False) -> dict[str, Any]:
        meta: dict[str, Any] = {"resourceVersion": self.resource_version}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": rdef.kind, "apiVersion": rdef.api_version, "metadata": meta}

    def _discovery(self, route: _Route) -> dict[str, Any]:
        defs = list(self._defs.values())
        if route.group == "":
            if route.version is None:
                return {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
                }
        elif route.group == "*":
            groups: dict[str, list[str]] = {}
            for rdef in defs:
                if rdef.group and rdef.version not in groups.setdefault(rdef.group, []):
                    groups[rdef.group].append(rdef.version)
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [_api_group(group, versions) for group, versions in sorted(groups.items())],
            }
        elif route.version is None:
            versions = sorted({rdef.version for rdef in defs if rdef.group == route.group})
            if not versions:
                raise KubeAPIError(404, "NotFound", "the server could not find the requested resource")
            return {"kind": "APIGroup", "apiVersion": "v1", **_api_group(route.group, versions)}
        served = [rdef for rdef in defs if rdef.group == route.group and rdef.version == route.version]
        if not served:
            raise KubeAPIError(404, "NotFound", "the server could not find the requested resource")
        group_version = f"{route.group}/{route.version}" if route.group else str(route.version)
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": [entry for rdef in served for entry in rdef.discovery()],
        }


CRDS_KEY = (CRD_GROUP, "v1", "customresourcedefinitions")


def _json(
    payload: Any, status: int = 200, content_type: str = JSON, warnings: Iterable[str] = ()
) -> aiohttp.web.Response:
    # Built by hand: aiohttp's json_response would append "; charset=utf-8" to the Table type.
    headers = {"Content-Type": content_type}
    response = aiohttp.web.Response(body=json.dumps(payload).encode(), status=status, headers=headers)
    for warning in warnings:
        # RFC 7234 warn-code 299, as the API server sends them (kubectl prints "Warning: ...").
        response.headers.add("Warning", f"299 - {json.dumps(warning)}")
    return response


def _api_group(group: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{group}/{version}", "version": version} for version in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def _crd_status(crd: Mapping[str, Any]) -> dict[str, Any]:
    spec = crd.get("spec") or {}
    now = now_rfc3339()
    conditions = [
        {"type": kind, "status": "True", "reason": reason, "message": message, "lastTransitionTime": now}
        for kind, reason, message in (
            ("NamesAccepted", "NoConflicts", "no conflicts found"),
            ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        )
    ]
    stored = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
    return {"conditions": conditions, "acceptedNames": spec.get("names") or {}, "storedVersions": stored}


def _normalise_builtin(rdef: ResourceDef, obj: dict[str, Any]) -> None:
    """What the API server does to Secrets on write: `stringData` becomes base64 `data`."""
    if rdef.key == SECRETS.key:
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            data = obj["data"] = dict(obj.get("data") or {})  # a new dict: stored ones are shared
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()


def _spec_changed(rdef: ResourceDef, old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    ignored = {"metadata", "status"} if rdef.status_subresource else {"metadata"}
    return {k: v for k, v in old.items() if k not in ignored} != {
        k: v for k, v in new.items() if k not in ignored
    }


def load_crds(directory: str | Path) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition in the YAML files of `directory` (none if it is absent)."""
    found: list[dict[str, Any]] = []
    path = Path(directory)
    if not path.is_dir():
        return found
    for file in sorted(path.glob("*.y*ml")):
        for doc in yaml.safe_load_all(file.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                found.append(doc)
    return found


class KubernetesServer:
    """The emulator on an HTTP port, with helpers for tests.

    Usage::

        async with KubernetesServer(crds=load_crds("crds")) as k8s:
            k8s.url                       # "http://127.0.0.1:PORT"
            k8s.write_kubeconfig(path)    # for kubectl and kubernetes clients
            k8s.create("clawinstances", {...}, namespace="tenant-a")
            k8s.get("claw", "tenant-a", "name")
            k8s.count_writes(resource="clawinstances", subresource="status")
            k8s.request_counts()          # {("list", "clawinstances"): 1, ("patch", "secrets"): 2}

    `record_requests` keeps kmock's full request log (bodies included); `request_log` keeps a
    `RequestRecord` per API request in `k8s.requests`. Both are off by default: the counters
    behind `request_counts` cost the same at any request rate.

    Helper writes (`create`, `patch`, `delete`) are marked `direct` and are excluded from
    the write counters by default, so a test or benchmark counts only what clients did.
    """

    def __init__(
        self,
        *,
        crds: Iterable[Mapping[str, Any]] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        bookmark_interval: float = 30.0,
        record_requests: bool = False,
        request_log: bool = False,
        write_log_limit: int = 1_000_000,
    ) -> None:
        self.emulator = KubernetesAPIEmulator(
            bookmark_interval=bookmark_interval,
            record_requests=record_requests,
            request_log=request_log,
            write_log_limit=write_log_limit,
        )
        for crd in crds:
            self.emulator.register_crd(crd)
        self._host, self._port = host, port
        self._runner: aiohttp.web.ServerRunner | None = None

    async def __aenter__(self) -> Self:
        await self.emulator.__aenter__()
        # Kopf, when it stops, waits up to 5 s for every task created since it started, and
        # the server's per-connection tasks are such tasks. Cancelling a handler when its
        # client goes away ends abandoned watches at once, and a short keep-alive releases
        # idle connections, so an in-process operator stops in well under a second.
        server = aiohttp.web.Server(self.emulator, handler_cancellation=True, keepalive_timeout=1.0)
        # Watches end when the emulator closes them, so a short shutdown grace suffices.
        self._runner = aiohttp.web.ServerRunner(server, shutdown_timeout=2.0)
        await self._runner.setup()
        site = aiohttp.web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.emulator.close_watches()
        await asyncio.sleep(0)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.emulator.__aexit__(exc_type, exc, tb)

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    def kubeconfig(self, namespace: str = "default") -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "emulator", "user": {"token": "emulator"}}],
            "contexts": [
                {
                    "name": "emulator",
                    "context": {"cluster": "emulator", "user": "emulator", "namespace": namespace},
                }
            ],
            "current-context": "emulator",
        }

    def write_kubeconfig(self, path: str | Path, namespace: str = "default") -> Path:
        """Write a kubeconfig for kubectl and Kubernetes clients; returns the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(self.kubeconfig(namespace), sort_keys=False))
        return target

    # ----- helpers (synchronous: they go straight to the store, through the same rules) -----

    def register_crd(self, crd: Mapping[str, Any]) -> dict[str, Any]:
        return self.emulator.register_crd(crd)

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        return self.emulator.get_object(self.emulator.resolve(resource), namespace, name)

    def list_objects(
        self,
        resource: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        return self.emulator.list_objects(
            self.emulator.resolve(resource),
            namespace,
            label_selector=label_selector,
            field_selector=field_selector,
        )

    def create(self, resource: str, body: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        return self.emulator.create_object(self.emulator.resolve(resource), namespace, body)

    def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace a full manifest (apiVersion/kind/metadata), like `kubectl apply`."""
        rdef = self._rdef_for(body)
        meta = body.get("metadata") or {}
        if rdef.key == CRDS_KEY:
            return self.register_crd(body)
        current = self.emulator.get_object(rdef, meta.get("namespace"), meta.get("name", ""))
        if current is None:
            return self.emulator.create_object(rdef, meta.get("namespace"), body)
        merged = {**body, "metadata": {**current["metadata"], **meta}}
        merged["metadata"].pop("resourceVersion", None)
        return self.emulator.replace_object(rdef, meta.get("namespace"), meta["name"], merged)

    def patch(
        self,
        resource: str,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        subresource: str = "",
        content_type: str = patches.MERGE_PATCH,
    ) -> dict[str, Any]:
        return self.emulator.patch_object(
            self.emulator.resolve(resource),
            namespace,
            name,
            patch,
            content_type=content_type,
            subresource=subresource,
        )

    def delete(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """Delete (finalizer-aware); None when it did not exist."""
        try:
            return self.emulator.delete_object(self.emulator.resolve(resource), namespace, name)
        except KubeAPIError as exc:
            if exc.code == 404:
                return None
            raise

    def events(
        self, namespace: str | None = None, *, involved_name: str | None = None
    ) -> list[dict[str, Any]]:
        """Core v1 Events (as posted by Kopf), oldest first, optionally for one object."""
        found = self.list_objects("events", namespace)
        if involved_name is not None:
            found = [e for e in found if e.get("involvedObject", {}).get("name") == involved_name]
        return sorted(found, key=lambda e: int(e["metadata"]["resourceVersion"]))

    def inject_fault(self, verb: str, resource: str = "*", **kwargs: Any) -> Fault:
        """Fail the next matching request(s), e.g. `inject_fault("patch", "clawinstances", code=409)`."""
        plural = self.emulator.resolve(resource).plural if resource != "*" else "*"
        return self.emulator.inject_fault(Fault(verb=verb, plural=plural, **kwargs))

    def writes(
        self,
        *,
        resource: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        include_direct: bool = False,
    ) -> list[WriteRecord]:
        plural = self.emulator.resolve(resource).plural if resource else None
        return [
            w
            for w in self.emulator.writes
            if (include_direct or not w.direct)
            and (plural is None or w.plural == plural)
            and (namespace is None or w.namespace == namespace)
            and (name is None or w.name == name)
        ]

    def write_counts(self, **filters: Any) -> dict[str, int]:
        """Writes by kind: `{"create": 1, "patch": 3, "patch/status": 2, "delete": 1}`."""
        counts: collections.Counter[str] = collections.Counter(
            f"{w.verb}/{w.subresource}" if w.subresource else w.verb for w in self.writes(**filters)
        )
        return dict(counts)

    def count_writes(
        self,
        *,
        verb: str | None = None,
        subresource: str | None = None,
        changed_only: bool = False,
        **filters: Any,
    ) -> int:
        """How many writes match; `subresource=""` counts main-resource writes only."""
        return sum(
            1
            for w in self.writes(**filters)
            if (verb is None or w.verb == verb)
            and (subresource is None or w.subresource == subresource)
            and (not changed_only or w.changed)
        )

    def request_counts(
        self, *, verb: str | None = None, resource: str | None = None
    ) -> dict[tuple[str, str], int]:
        """API requests by (verb, resource): verb is get|list|watch|create|update|patch|delete,
        resource the plural with its subresource (`clawinstances/status`). Helpers are not
        requests. Filter by verb and/or resource (any name kubectl accepts, or `x/status`)."""
        wanted = None
        if resource is not None:
            plural, _, sub = resource.partition("/")
            wanted = self.emulator.resolve(plural).plural + (f"/{sub}" if sub else "")
        return {
            key: count
            for key, count in self.emulator.request_stats.by_verb_and_resource().items()
            if (verb is None or key[0] == verb) and (wanted is None or key[1] == wanted)
        }

    @property
    def requests(self) -> list[RequestRecord]:
        """Every API request, oldest first; empty unless the server was made with request_log=True."""
        return list(self.emulator.request_stats.log)

    def reset_request_counts(self) -> None:
        """Forget the requests counted so far (e.g. after a benchmark's warm-up)."""
        self.emulator.request_stats.reset()

    def count_objects(self, resource: str, namespace: str | None = None) -> int:
        """How many objects of `resource` exist, without copying them (cheap at 10,000)."""
        return self.emulator.count_objects(self.emulator.resolve(resource), namespace)

    def _rdef_for(self, body: Mapping[str, Any]) -> ResourceDef:
        api_version, kind = body.get("apiVersion", ""), body.get("kind", "")
        for rdef in self.emulator.resource_defs:
            if rdef.api_version == api_version and rdef.kind == kind:
                return rdef
        raise KeyError(f"no resource serves {api_version} {kind}")
