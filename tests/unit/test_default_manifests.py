"""manifests/default: the kustomize install. Its RBAC is checked against behaviour in
tests/integration/test_operate.py; here, the shape: every file listed, probes on the
metrics port, a restricted pod, the metrics Service, Leases only in its namespace."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.rbac import objects

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "manifests" / "default"
OBJECTS = objects(DEFAULT)


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    [obj] = [o for o in OBJECTS if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    return obj


def test_every_file_is_listed_with_the_crds() -> None:
    kustomization = yaml.safe_load((DEFAULT / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = set(kustomization["resources"])
    assert "../../crds" in listed
    assert {p.name for p in DEFAULT.glob("*.yaml")} - {"kustomization.yaml"} <= listed
    assert kustomization["namespace"] == "claw-system"
    kinds = sorted(o["kind"] for o in OBJECTS)
    assert kinds == sorted(
        [
            *("Namespace", "CustomResourceDefinition", "CustomResourceDefinition", "ServiceAccount"),
            *("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "Service"),
            *("ClusterRole", "ClusterRole"),  # claw-operator-view and -edit, for people
        ]
    )


def test_deployment_probes_resources_and_restricted_security() -> None:
    deployment = _one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == _one("ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    assert container["args"] == ["run"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": 9090}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]} and security["runAsNonRoot"] is True
    assert {"cpu", "memory"} <= set(container["resources"]["requests"]) and "memory" in container[
        "resources"
    ]["limits"]
    env = {e["name"]: e for e in container["env"]}
    assert env["RAILWAY_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "railway-platform-token"
    assert env["CLAW_METRICS_PORT"]["value"] == "9090"
    assert env["CLAW_OPERATOR_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    for item in container["env"]:
        if "value" in item:
            assert "TOKEN" not in item["name"] and "KEY" not in item["name"], "secrets come from Secrets"
    assert _one("Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_metrics_service_selects_the_pod() -> None:
    service, deployment = _one("Service"), _one("Deployment")
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9090, "targetPort": "metrics"}]


def test_leases_are_namespaced_and_bound_to_the_operator() -> None:
    role, binding = _one("Role"), _one("RoleBinding")
    assert role["metadata"]["namespace"] == "claw-system"
    assert [r["resources"] for r in role["rules"]] == [["leases"]]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "claw-operator", "namespace": "claw-system"}
    ]
    cluster_role = _one("ClusterRole", "claw-operator")
    assert not any("leases" in r["resources"] for r in cluster_role["rules"])
    assert not any("*" in part for r in cluster_role["rules"] for part in r["verbs"] + r["resources"])


@pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl (with its built-in kustomize) is not installed"
)
def test_kustomize_builds_it() -> None:
    built = subprocess.run(
        ["kubectl", "kustomize", str(DEFAULT)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(built) if d)
    assert kinds == sorted(o["kind"] for o in OBJECTS)


def test_people_get_view_and_edit_through_aggregation() -> None:
    view, edit = _one("ClusterRole", "claw-operator-view"), _one("ClusterRole", "claw-operator-edit")
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert "aggregate-to-view" not in " ".join(edit["metadata"]["labels"]), "viewers must not edit"
    assert {v for r in view["rules"] for v in r["verbs"]} == {"get", "list", "watch"}
    assert [r["resources"] for r in edit["rules"]] == [["clawinstances"]], "plans stay with cluster admins"
    bound = {o["roleRef"]["name"] for o in OBJECTS if o["kind"].endswith("Binding")}
    assert not bound & {"claw-operator-view", "claw-operator-edit"}
