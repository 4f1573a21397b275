"""Least privilege, checked from behaviour: the Kubernetes calls of a recorded emulator
run, as (apiGroup, resource, verb), against what a kustomize directory's RBAC grants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from claw_emulators.kubernetes import KubernetesServer

ROOT = Path(__file__).resolve().parents[1]
Call = tuple[str, str, str]


def recorded_calls(k8s: KubernetesServer) -> set[Call]:
    """What the run asked the API server for: the emulator counts requests by verb and
    resource (with subresource), in the API server's verb names; the group comes from the
    resource's definition. Discovery (/api, /apis, /version) needs no RBAC and is not counted."""
    calls = set()
    for verb, resource in k8s.request_counts():
        plural = resource.partition("/")[0]
        calls.add((k8s.emulator.resolve(plural).group, resource, verb))
    return calls


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def objects(directory: Path) -> list[dict[str, Any]]:
    """The objects of a kustomization (resources only: files and directories)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = (directory / resource).resolve()
        found += objects(path) if path.is_dir() else _docs(path)
    return found


def granted_calls(directory: Path, service_account: str = "claw-operator") -> set[Call]:
    """What the Roles and ClusterRoles bound to the operator's ServiceAccount grant (roles
    for people, such as the aggregated view/edit ones, are not the operator's)."""
    found = objects(directory)
    bound = {
        (binding["roleRef"]["kind"], binding["roleRef"]["name"])
        for binding in found
        if binding["kind"] in {"ClusterRoleBinding", "RoleBinding"}
        and any(
            subject.get("kind") == "ServiceAccount" and subject.get("name") == service_account
            for subject in binding.get("subjects") or []
        )
    }
    granted = set()
    for obj in found:
        if (obj["kind"], obj["metadata"]["name"]) in bound:
            for rule in obj["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        for verb in rule["verbs"]:
                            granted.add((group, resource, verb))
    return granted


def unused_allowed() -> set[Call]:
    """Grants a lifecycle run may leave unused: listing Leases, which only replicas without
    CLAW_SHARD_ID do to find each other (a one-shard run renews its one Lease by name)."""
    return {("coordination.k8s.io", "leases", "list")}
