"""What the Kubernetes emulator serves: resource definitions (built-in kinds and those of
CustomResourceDefinitions) and label and field selectors. Pure data and functions."""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

CRD_GROUP = "apiextensions.k8s.io"


@dataclasses.dataclass(frozen=True)
class ResourceDef:
    """One served resource (group, version, plural) and what the API server knows of it."""

    group: str
    version: str
    plural: str
    kind: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    # With a status subresource, the main endpoint ignores `.status` and `/status` changes
    # only `.status`: CRDs declare it; Secrets and Events have none.
    status_subresource: bool = False
    # Custom resources count spec changes in metadata.generation; Secrets and Events do not.
    has_generation: bool = False
    printer_columns: tuple[Mapping[str, Any], ...] = ()
    schema: Mapping[str, Any] | None = dataclasses.field(default=None, compare=False, hash=False)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.group, self.version, self.plural)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`clawinstances.claw.io` or `secrets`, as in the API server's messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def names(self) -> set[str]:
        """Every name kubectl users may type for it."""
        base = {self.plural, self.singular, self.kind.lower(), *self.short_names}
        return base | {f"{name}.{self.group}" for name in base if self.group} | {"/".join(self.key)}

    def discovery(self) -> list[dict[str, Any]]:
        """APIResource entries: the resource itself and its subresources."""
        entries: list[dict[str, Any]] = [
            {
                "name": self.plural,
                "singularName": self.singular,
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                "shortNames": list(self.short_names),
                "categories": list(self.categories),
            }
        ]
        if self.status_subresource:
            entries.append(
                {
                    "name": f"{self.plural}/status",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        return entries


def _age(name: str = "Age") -> dict[str, Any]:
    return {"name": name, "type": "date", "jsonPath": ".metadata.creationTimestamp"}


NAMESPACES = ResourceDef(
    "",
    "v1",
    "namespaces",
    "Namespace",
    "namespace",
    namespaced=False,
    short_names=("ns",),
    status_subresource=True,
    printer_columns=({"name": "Status", "type": "string", "jsonPath": ".status.phase"}, _age()),
)
# Schemas of the built-in kinds the operator writes, in the structural form of a CRD's: the
# API server decodes these into Go structs, which drops unknown fields and refuses wrong
# types; admitting them against a schema does the same (a wrong type is a 422 here, a 400
# there), and lets `fieldValidation=Strict` name a misspelt field.
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_MICRO_TIME = {
    "type": "string",
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$",
}


def _builtin_schema(**fields: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, **fields},
    }


SECRETS = ResourceDef(
    "",
    "v1",
    "secrets",
    "Secret",
    "secret",
    namespaced=True,
    printer_columns=({"name": "Type", "type": "string", "jsonPath": ".type"}, _age()),
    schema=_builtin_schema(
        data=_STRING_MAP, stringData=_STRING_MAP, type={"type": "string"}, immutable={"type": "boolean"}
    ),
)
CONFIGMAPS = ResourceDef(
    "",
    "v1",
    "configmaps",
    "ConfigMap",
    "configmap",
    namespaced=True,
    short_names=("cm",),
    schema=_builtin_schema(data=_STRING_MAP, binaryData=_STRING_MAP, immutable={"type": "boolean"}),
)
EVENTS = ResourceDef(
    "",
    "v1",
    "events",
    "Event",
    "event",
    namespaced=True,
    short_names=("ev",),
    printer_columns=(
        {"name": "Last Seen", "type": "date", "jsonPath": ".lastTimestamp"},
        {"name": "Type", "type": "string", "jsonPath": ".type"},
        {"name": "Reason", "type": "string", "jsonPath": ".reason"},
        {"name": "Object", "type": "string", "jsonPath": ".involvedObject.name"},
        {"name": "Message", "type": "string", "jsonPath": ".message"},
    ),
)
CRDS = ResourceDef(
    CRD_GROUP,
    "v1",
    "customresourcedefinitions",
    "CustomResourceDefinition",
    "customresourcedefinition",
    namespaced=False,
    short_names=("crd", "crds"),
    status_subresource=True,
    has_generation=True,
    printer_columns=(_age("Created At"),),
)
# Leases let operator replicas elect a leader or split the fleet into shards.
LEASES = ResourceDef(
    "coordination.k8s.io",
    "v1",
    "leases",
    "Lease",
    "lease",
    namespaced=True,
    printer_columns=({"name": "Holder", "type": "string", "jsonPath": ".spec.holderIdentity"}, _age()),
    schema=_builtin_schema(
        spec={
            "type": "object",
            "properties": {
                "holderIdentity": {"type": "string"},
                "leaseDurationSeconds": {"type": "integer"},
                "acquireTime": _MICRO_TIME,
                "renewTime": _MICRO_TIME,
                "leaseTransitions": {"type": "integer"},
                "strategy": {"type": "string"},
                "preferredHolder": {"type": "string"},
            },
        }
    ),
)
BUILTIN_RESOURCES: tuple[ResourceDef, ...] = (NAMESPACES, SECRETS, CONFIGMAPS, EVENTS, LEASES, CRDS)


def resources_from_crd(crd: Mapping[str, Any]) -> list[ResourceDef]:
    """The resources an apiextensions.k8s.io/v1 CustomResourceDefinition declares."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    if not spec.get("group") or not names.get("plural") or not names.get("kind"):
        raise ValueError("a CustomResourceDefinition needs spec.group, spec.names.plural and .kind")
    result = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        result.append(
            ResourceDef(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                singular=names.get("singular") or names["kind"].lower(),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status_subresource="status" in (version.get("subresources") or {}),
                has_generation=True,
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
            )
        )
    return result


def _split_requirements(selector: str) -> Iterable[str]:
    depth, start = 0, 0
    for pos, char in enumerate(selector):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            yield selector[start:pos].strip()
            start = pos + 1
    if selector[start:].strip():
        yield selector[start:].strip()


_SET_REQUIREMENT = re.compile(r"^(\S+)\s+(in|notin)\s+\((.*)\)$")
_KEY = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")

LabelTest = Callable[[Mapping[str, str]], bool]


class SelectorError(ValueError):
    """A label or field selector that does not parse (the API server answers 400)."""


def _checked_key(key: str, selector: str) -> str:
    if not _KEY.match(key):
        raise SelectorError(f"unable to parse requirement: invalid label key {key!r} in {selector!r}")
    return key


def _requirement(requirement: str, selector: str) -> LabelTest:
    set_match = _SET_REQUIREMENT.match(requirement)
    if set_match:
        key, operator, values = set_match.groups()
        _checked_key(key, selector)
        options = frozenset(value.strip() for value in values.split(","))
        if operator == "in":
            return lambda labels: labels.get(key) in options
        return lambda labels: labels.get(key) not in options
    if requirement.startswith("!"):
        absent = _checked_key(requirement[1:].strip(), selector)
        return lambda labels: absent not in labels
    if "!=" in requirement:
        key, value = (part.strip() for part in requirement.split("!=", 1))
        _checked_key(key, selector)
        return lambda labels: labels.get(key) != value
    if "=" in requirement:
        key, value = (part.strip() for part in requirement.replace("==", "=").split("=", 1))
        _checked_key(key, selector)
        return lambda labels: labels.get(key) == value
    present = _checked_key(requirement, selector)
    return lambda labels: present in labels


@functools.lru_cache(maxsize=256)
def label_selector(selector: str | None) -> LabelTest:
    """A compiled label selector: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`,
    comma-separated (all must hold). Raises SelectorError for one that does not parse."""
    tests = [_requirement(requirement, selector or "") for requirement in _split_requirements(selector or "")]
    return lambda labels: all(test(labels) for test in tests)


def labels_match(labels: Mapping[str, str], selector: str | None) -> bool:
    """Whether `labels` satisfy the label selector."""
    return label_selector(selector)(labels)


FieldTest = Callable[[Mapping[str, Any]], bool]


@functools.lru_cache(maxsize=256)
def field_selector(selector: str | None) -> FieldTest:
    """A compiled field selector over dotted paths: `metadata.name=x`, `involvedObject.uid!=y`."""
    tests: list[tuple[list[str], str, bool]] = []
    for requirement in _split_requirements(selector or ""):
        if "=" not in requirement:
            raise SelectorError(f"invalid field selector {selector!r}: {requirement!r} has no operator")
        negate = "!=" in requirement
        key, value = (
            part.strip() for part in requirement.replace("==", "=").replace("!=", "=").split("=", 1)
        )
        tests.append((key.split("."), value, negate))

    def test(obj: Mapping[str, Any]) -> bool:
        for path, value, negate in tests:
            node: Any = obj
            for part in path:
                node = node.get(part) if isinstance(node, Mapping) else None
            actual = "" if node is None else str(node)
            if (actual == value) == negate:
                return False
        return True

    return test


def fields_match(obj: Mapping[str, Any], selector: str | None) -> bool:
    """Whether `obj` satisfies the field selector."""
    return field_selector(selector)(obj)
