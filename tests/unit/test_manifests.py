"""Deploy manifests, Helm chart, Dockerfile and CI workflow: they parse, agree with each
other, and keep the promises of ARCHITECTURE.md (least privilege, one operator at a time,
a locked-down pod)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from claw_operator import cli

ROOT = Path(__file__).resolve().parents[2]
OPERATOR = ROOT / "manifests" / "operator"
CHART = ROOT / "charts" / "claw-operator"
Obj = dict[str, Any]

# (apiGroup, resource, verb): exactly what the operator calls (ARCHITECTURE.md, least privilege).
EXPECTED_RBAC = {
    # Kopf watches both kinds; the engine patches its finalizer on instances (read from the
    # watch cache, never got one by one). Plans get only their status patched (the rollout
    # coordinator writes it), so the plans themselves are never patched.
    *{("claw.io", "clawinstances", v) for v in ("list", "watch", "patch")},
    *{("claw.io", "clawplans", v) for v in ("list", "watch")},
    ("claw.io", "clawinstances/status", "patch"),
    ("claw.io", "clawplans/status", "patch"),
    ("", "events", "create"),  # kopf.event() POSTs core/v1 events, nothing more
    ("", "secrets", "get"),  # kube.get_secret(): unlabelled Secrets by name, at the slow resync
    # Labelled Secrets (claw.io/watch=true) are listed and watched with a label selector.
    ("", "secrets", "list"),
    ("", "secrets", "watch"),
    ("", "secrets", "patch"),  # OAuth refresh writes rotated tokens back (secret_store.py)
    ("", "namespaces", "list"),
    ("", "namespaces", "watch"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
}


def _docs(path: Path) -> list[Obj]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _operator_objects() -> list[Obj]:
    kustomization = yaml.safe_load((OPERATOR / "kustomization.yaml").read_text(encoding="utf-8"))
    objects: list[Obj] = []
    for resource in kustomization["resources"]:
        path = (OPERATOR / resource).resolve()
        if path.is_dir():
            inner = yaml.safe_load((path / "kustomization.yaml").read_text(encoding="utf-8"))
            for name in inner["resources"]:
                objects += _docs(path / name)
        else:
            objects += _docs(path)
    return objects


OBJECTS = _operator_objects()


def _one(kind: str) -> Obj:
    [obj] = [o for o in OBJECTS if o["kind"] == kind]
    return obj


def _triples(rules: list[Obj]) -> set[tuple[str, str, str]]:
    return {
        (g, r, v)
        for rule in rules
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


def test_kustomization_lists_every_file_and_the_crds() -> None:
    kustomization = yaml.safe_load((OPERATOR / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = set(kustomization["resources"])
    assert "../../crds" in listed
    on_disk = {p.name for p in OPERATOR.glob("*.yaml")} - {"kustomization.yaml"}
    assert on_disk <= listed, f"not in kustomization.yaml: {on_disk - listed}"
    kinds = sorted(o["kind"] for o in OBJECTS)
    assert kinds == sorted(
        [
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",  # Leases of shards and standbys, in the operator's namespace
            "RoleBinding",
            "Deployment",
            "Service",
        ]
    )


def test_cluster_role_is_exactly_what_the_operator_uses() -> None:
    role = _one("ClusterRole")
    assert _triples(role["rules"]) == EXPECTED_RBAC
    assert not any("*" in part for rule in role["rules"] for part in rule["verbs"] + rule["resources"])
    assert not any("kopf.dev" in rule["apiGroups"] for rule in role["rules"]), "peering is disabled"


def test_binding_targets_the_operator_service_account() -> None:
    binding, account = _one("ClusterRoleBinding"), _one("ServiceAccount")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": _one("ClusterRole")["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": account["metadata"]["name"],
            "namespace": account["metadata"]["namespace"],
        }
    ]


def test_deployment_is_sane() -> None:
    deployment = _one("Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}, (
        "peering is off: one operator at a time"
    )
    pod = spec["template"]["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert pod["serviceAccountName"] == _one("ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    assert re.fullmatch(r"ghcr\.io/[\w.-]+/claw-operator:[\w.-]+", container["image"])
    assert container["args"][0] == "run"
    assert "--liveness=http://0.0.0.0:8080/healthz" in container["args"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "metrics": 9090}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    env = {e["name"]: e for e in container["env"]}
    assert env["RAILWAY_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "railway-platform-token",
        "key": "token",
    }
    for item in container["env"]:
        if "value" in item:
            assert "TOKEN" not in item["name"] and "KEY" not in item["name"], "secrets come from Secrets"


def test_namespaced_objects_live_in_the_operator_namespace() -> None:
    namespace = _one("Namespace")["metadata"]["name"]
    assert namespace == "claw-system"
    for obj in OBJECTS:
        if obj["kind"] in {"ServiceAccount", "Deployment", "Service"}:
            assert obj["metadata"]["namespace"] == namespace


def test_metrics_service_selects_the_operator_pod() -> None:
    service, deployment = _one("Service"), _one("Deployment")
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9090, "targetPort": "metrics"}]


# ---------------------------------------------------------------- Helm chart


def _render_simple(path: Path) -> list[Obj]:
    """Helm is not installed here: good enough for templates whose only logic is names,
    label includes and if-blocks (which are assumed false: the default values)."""
    kept: list[str] = []
    blocks: list[bool] = []  # per open block: is its body dropped?
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith(("{{- if ", "{{- with ", "{{- range ")):
            blocks.append("not .Values" not in stripped)
            continue
        if stripped.startswith("{{- end"):
            blocks.pop()
            continue
        if any(blocks) or stripped.startswith("{{- include"):
            continue
        line = line.replace('{{ include "claw-operator.fullname" . }}', "claw-operator")
        kept.append(line.replace("{{ .Release.Namespace }}", "claw-system"))
    return [d for d in yaml.safe_load_all("\n".join(kept)) if d]


def test_chart_metadata_and_values_parse() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["apiVersion"] == "v2" and chart["name"] == "claw-operator"
    assert chart["version"] and chart["appVersion"]
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert values["railway"]["tokenSecretName"] == "railway-platform-token"
    assert (
        values["image"]["repository"]
        == _one("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"].rsplit(":", 1)[0]
    )
    assert values["watchNamespaces"] == []


def test_chart_cluster_role_matches_the_manifests() -> None:
    """The chart grants what manifests/default grants, which a recorded run derives
    (tests/integration/test_operate.py)."""
    objects = _render_simple(CHART / "templates" / "clusterrole.yaml")
    [role] = [o for o in objects if o["kind"] == "ClusterRole"]
    default = [d for d in _docs(ROOT / "manifests" / "default" / "rbac.yaml") if d["kind"] == "ClusterRole"]
    assert _triples(role["rules"]) == _triples(default[0]["rules"])
    assert _triples(role["rules"]) <= EXPECTED_RBAC


def test_chart_deployment_keeps_the_same_promises() -> None:
    text = (CHART / "templates" / "deployment.yaml").read_text(encoding="utf-8")
    for promise in (
        "type: Recreate",
        "replicas: {{ $.Values.replicas }}",  # 1 by default (values.schema.json); more are standbys
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "allowPrivilegeEscalation: false",
        "drop: [ALL]",
        "path: /healthz",  # liveness and readiness on the metrics port
        "path: /readyz",
        "key: token",
    ):
        assert promise in text, promise


def test_chart_templates_exist() -> None:
    names = {p.name for p in (CHART / "templates").iterdir()}
    assert {"deployment.yaml", "clusterrole.yaml", "serviceaccount.yaml", "_helpers.tpl"} <= names


# ---------------------------------------------------------------- image and CI


def test_dockerfile() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    # Pinned by version tag (python:3.11.N-slim-<debian>), the same base in both stages.
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+$", text, re.M)
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1].split(":")[0] != "0" and user[-1] != "root"
    run_as = _one("Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert user[-1].split(":")[0] == str(run_as)
    # The wheel without extras: no emulators, no dev dependencies in the image.
    assert "pip wheel --no-deps" in text and "pip install /wheels/claw_operator-*.whl" in text
    assert "[emulators]" not in text and "[dev]" not in text
    assert "rm -rf /opt/venv/lib/python3.11/site-packages/claw_emulators" in text
    assert 'ENTRYPOINT ["claw-operator"]' in text
    assert 'CMD ["run"]' in text


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert lines[lines.index("*")] == "*", "ignore everything, then allow what the build needs"
    assert {"!pyproject.toml", "!README.md", "!operator/"} <= set(lines)


def test_ci_workflow() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8"))
    jobs = workflow["jobs"]
    assert any(step.get("run") == "make test" for step in jobs["test"]["steps"])
    e2e = jobs["e2e"]
    assert e2e["runs-on"].startswith("ubuntu")
    uses = [step.get("uses", "") for step in e2e["steps"]]
    assert any(u.startswith("helm/kind-action@") for u in uses)
    runs = "\n".join(step.get("run", "") for step in e2e["steps"])
    assert "docker build" in runs and "kind load docker-image" in runs
    # Installed twice: with the Helm chart (and its CRDs), then with manifests/default
    # through tests/e2e/overlay, which swaps the released image for the one it built.
    assert "helm install claw-operator charts/claw-operator" in runs and "tests/e2e/overlay" in runs
    overlay = yaml.safe_load(
        (ROOT / "tests" / "e2e" / "overlay" / "kustomization.yaml").read_text(encoding="utf-8")
    )
    assert overlay["resources"] == ["../../../manifests/default"]
    image = _one("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert overlay["images"][0]["name"] == image.rsplit(":", 1)[0]
    assert f"{overlay['images'][0]['newName']}:{overlay['images'][0]['newTag']}" == e2e["env"]["IMAGE"]
    assert "Dockerfile.emulator" in runs and "tests/e2e/railway-emulator.yaml" in runs
    tests = [s for s in e2e["steps"] if "pytest" in s.get("run", "") and "tests/e2e" in s["run"]]
    assert tests and all(t["env"]["CLAW_E2E_KIND"] == "1" for t in tests)
    assert {t["env"].get("CLAW_E2E_INSTALL") for t in tests} >= {"helm", "kustomize"}
    chart = "\n".join(step.get("run", "") for step in jobs["chart"]["steps"])
    assert "helm lint --strict" in chart and "helm template" in chart


@pytest.mark.parametrize("command", ["crds"])
def test_console_script_dispatches_to_crdgen(command: str) -> None:
    assert cli.SUBCOMMANDS[command][0] == "claw_operator.api.crdgen"


@pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl (with its built-in kustomize) is not installed"
)
def test_kustomize_builds_the_same_objects() -> None:
    built = subprocess.run(
        ["kubectl", "kustomize", str(OPERATOR)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    objects = [d for d in yaml.safe_load_all(built) if d]
    assert sorted((o["kind"], o["metadata"]["name"]) for o in objects) == sorted(
        (o["kind"], o["metadata"]["name"]) for o in OBJECTS
    )
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    assert (
        deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        == _one("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    )
