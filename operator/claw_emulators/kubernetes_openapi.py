"""The OpenAPI documents of the Kubernetes emulator: `/openapi/v2` (Swagger 2.0) and
`/openapi/v3` (an index, and one OpenAPI 3.0 document per group-version).

kubectl reads them for two things: `kubectl explain` (the CRD's schema with its
descriptions, found by `x-kubernetes-group-version-kind`), and `kubectl apply`'s choice of
server-side field validation (the `fieldValidation` parameter of each resource's PATCH).
Schemas are named as the API server names them: `io.claw.v1alpha1.ClawInstance`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from claw_emulators.kubernetes_resources import ResourceDef

_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_OBJECT_META_SCHEMA: dict[str, Any] = {
    "description": "ObjectMeta is metadata that all persisted resources must have.",
    "type": "object",
    "properties": {
        "name": {"description": "Name must be unique within a namespace.", "type": "string"},
        "generateName": {"description": "Prefix of a server-generated name.", "type": "string"},
        "namespace": {
            "description": "Namespace of the object; empty for cluster-scoped ones.",
            "type": "string",
        },
        "uid": {"description": "Unique id, set by the server.", "type": "string"},
        "resourceVersion": {"description": "Opaque version for optimistic concurrency.", "type": "string"},
        "generation": {
            "description": "Sequence number of spec changes.",
            "type": "integer",
            "format": "int64",
        },
        "creationTimestamp": {"description": "When the object was created (RFC 3339).", "type": "string"},
        "deletionTimestamp": {"description": "When the object will be deleted (RFC 3339).", "type": "string"},
        "labels": {
            "description": "Labels to organize and select objects.",
            "type": "object",
            "additionalProperties": {"type": "string"},
        },
        "annotations": {
            "description": "Unstructured key-value data for tools.",
            "type": "object",
            "additionalProperties": {"type": "string"},
        },
        "finalizers": {
            "description": "Must be empty before the object is deleted from the registry.",
            "type": "array",
            "items": {"type": "string"},
        },
    },
}
_METADATA_DESCRIPTION = (
    "Standard object's metadata. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)


def schema_name(rdef: ResourceDef) -> str:
    """`io.claw.v1alpha1.ClawInstance`; built-in kinds as `io.k8s.api.core.v1.Secret`."""
    if not rdef.group:
        return f"io.k8s.api.core.{rdef.version}.{rdef.kind}"
    reversed_group = ".".join(reversed(rdef.group.split(".")))
    return f"{reversed_group}.{rdef.version}.{rdef.kind}"


def group_version_path(rdef: ResourceDef) -> str:
    """`apis/claw.io/v1alpha1` or `api/v1`, the key of `/openapi/v3`'s index."""
    return f"apis/{rdef.group}/{rdef.version}" if rdef.group else f"api/{rdef.version}"


def _gvk(rdef: ResourceDef) -> dict[str, str]:
    return {"group": rdef.group, "version": rdef.version, "kind": rdef.kind}


def _definition(rdef: ResourceDef, ref_prefix: str) -> dict[str, Any]:
    schema: dict[str, Any] = copy.deepcopy(dict(rdef.schema or {}))
    if not schema:
        schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    schema.setdefault("description", f"{rdef.kind} of {rdef.api_version}.")
    properties = schema.setdefault("properties", {})
    properties["metadata"] = {
        "description": _METADATA_DESCRIPTION,
        "allOf": [{"$ref": f"{ref_prefix}{_OBJECT_META}"}],
    }
    schema["x-kubernetes-group-version-kind"] = [_gvk(rdef)]
    return schema


def _v2_schema(node: Any) -> Any:
    """OpenAPI v3 structural schema to Swagger 2.0, as the API server publishes CRDs in v2:
    without `nullable` and the CEL rules, which v2 clients do not understand."""
    if isinstance(node, Mapping):
        return {
            key: _v2_schema(value)
            for key, value in node.items()
            if key not in ("nullable", "x-kubernetes-validations")
        }
    if isinstance(node, list):
        return [_v2_schema(item) for item in node]
    return node


def _resource_paths(rdef: ResourceDef, ref: str, *, v3: bool) -> dict[str, Any]:
    prefix = "/" + group_version_path(rdef)
    scope = "/namespaces/{namespace}" if rdef.namespaced else ""
    body_ref = {"$ref": ref}
    field_validation: dict[str, Any] = {
        "name": "fieldValidation",
        "in": "query",
        "description": "Ignore, Warn or Strict: what to do with unknown or duplicate fields.",
    }
    if v3:
        field_validation["schema"] = {"type": "string", "uniqueItems": True}
        ok: dict[str, Any] = {"description": "OK", "content": {"application/json": {"schema": body_ref}}}
    else:
        field_validation.update(type="string", uniqueItems=True)
        ok = {"description": "OK", "schema": body_ref}

    def operation(verb: str) -> dict[str, Any]:
        return {
            "operationId": f"{verb}{rdef.kind}",
            "x-kubernetes-action": verb,
            "x-kubernetes-group-version-kind": _gvk(rdef),
            "parameters": [field_validation] if verb in ("post", "put", "patch") else [],
            "responses": {"200": ok},
        }

    return {
        f"{prefix}{scope}/{rdef.plural}": {"get": operation("list"), "post": operation("post")},
        f"{prefix}{scope}/{rdef.plural}/{{name}}": {
            "get": operation("get"),
            "put": operation("put"),
            "patch": operation("patch"),
            "delete": operation("delete"),
        },
    }


def openapi_v3_index(defs: Iterable[ResourceDef]) -> dict[str, Any]:
    """`/openapi/v3`: where each group-version's document is."""
    paths = sorted({group_version_path(rdef) for rdef in defs})
    return {"paths": {path: {"serverRelativeURL": f"/openapi/v3/{path}"} for path in paths}}


def openapi_v3_document(defs: Iterable[ResourceDef], group_version: str) -> dict[str, Any] | None:
    """`/openapi/v3/apis/<group>/<version>`, or None when nothing is served there."""
    served = [rdef for rdef in defs if group_version_path(rdef) == group_version.strip("/")]
    if not served:
        return None
    ref_prefix = "#/components/schemas/"
    schemas: dict[str, Any] = {_OBJECT_META: _OBJECT_META_SCHEMA}
    paths: dict[str, Any] = {}
    for rdef in served:
        schemas[schema_name(rdef)] = _definition(rdef, ref_prefix)
        paths.update(_resource_paths(rdef, ref_prefix + schema_name(rdef), v3=True))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "emulator"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def openapi_v2(defs: Iterable[ResourceDef]) -> dict[str, Any]:
    """`/openapi/v2`: every served kind in one Swagger 2.0 document."""
    ref_prefix = "#/definitions/"
    definitions: dict[str, Any] = {_OBJECT_META: _OBJECT_META_SCHEMA}
    paths: dict[str, Any] = {}
    for rdef in defs:
        definitions[schema_name(rdef)] = _v2_schema(_definition(rdef, ref_prefix))
        paths.update(_resource_paths(rdef, ref_prefix + schema_name(rdef), v3=False))
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "emulator"},
        "paths": paths,
        "definitions": definitions,
    }
