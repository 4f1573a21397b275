"""The Kubernetes API emulator behaves as the API server does where Kopf and kubectl care."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from claw_emulators.kubernetes import KubernetesServer
from claw_emulators.kubernetes_patches import PatchError, json_patch, merge_patch
from claw_emulators.kubernetes_tables import human_age, jsonpath

CLAWS = "/apis/claw.io/v1alpha1/namespaces/tenant-a/clawinstances"
MERGE = {"Content-Type": "application/merge-patch+json"}
JSONPATCH = {"Content-Type": "application/json-patch+json"}


def claw(name: str = "bot", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "claw.io/v1alpha1",
        "kind": "ClawInstance",
        "metadata": {"name": name},
        "spec": {"planRef": "pro", **spec},
    }


async def call(k8s: KubernetesServer, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        data = json.dumps(body) if body is not None else None
        headers = kw.pop("headers", {"Content-Type": "application/json"})
        async with session.request(method, k8s.url + path, data=data, headers=headers, **kw) as response:
            return response.status, await response.json(content_type=None)


async def test_create_sets_server_fields(k8s: KubernetesServer) -> None:
    status, obj = await call(k8s, "POST", CLAWS, {**claw(), "status": {"phase": "Forged"}})
    assert status == 201
    meta = obj["metadata"]
    assert meta["namespace"] == "tenant-a" and meta["generation"] == 1 and meta["uid"]
    assert meta["creationTimestamp"].endswith("Z") and int(meta["resourceVersion"]) > 0
    assert "status" not in obj, "the status subresource ignores status on create"
    status, again = await call(k8s, "POST", CLAWS, claw())
    assert status == 409 and again["reason"] == "AlreadyExists"


async def test_generate_name_and_list_kind(k8s: KubernetesServer) -> None:
    body = {"metadata": {"generateName": "kopf-event-"}, "reason": "Test", "involvedObject": {"name": "bot"}}
    status, event = await call(k8s, "POST", "/api/v1/namespaces/tenant-a/events", body)
    assert status == 201 and event["metadata"]["name"].startswith("kopf-event-")
    status, listed = await call(k8s, "GET", "/api/v1/namespaces/tenant-a/events")
    assert listed["kind"] == "EventList" and listed["apiVersion"] == "v1"
    assert [e["reason"] for e in listed["items"]] == ["Test"]
    assert listed["metadata"]["resourceVersion"] == k8s.emulator.resource_version
    assert k8s.events("tenant-a", involved_name="bot")[0]["reason"] == "Test"


async def test_resource_version_increments_and_conflicts(k8s: KubernetesServer) -> None:
    created = k8s.create("claw", claw(), namespace="tenant-a")
    rv1 = int(created["metadata"]["resourceVersion"])
    status, patched = await call(k8s, "PATCH", f"{CLAWS}/bot", {"spec": {"suspend": True}}, headers=MERGE)
    assert status == 200 and int(patched["metadata"]["resourceVersion"]) > rv1
    stale = {"metadata": {"resourceVersion": str(rv1)}, "spec": {"suspend": False}}
    status, error = await call(k8s, "PATCH", f"{CLAWS}/bot", stale, headers=MERGE)
    assert status == 409 and error["reason"] == "Conflict"
    status, _ = await call(
        k8s, "PUT", f"{CLAWS}/bot", {**claw(), "metadata": {"name": "bot", "resourceVersion": "1"}}
    )
    assert status == 409
    # A patch that changes nothing leaves resourceVersion alone (and is counted as unchanged).
    status, same = await call(k8s, "PATCH", f"{CLAWS}/bot", {"spec": {"suspend": True}}, headers=MERGE)
    assert same["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]
    # Rejected requests are not writes; accepted no-op patches are, marked unchanged.
    assert k8s.count_writes(verb="patch") == 2 and k8s.count_writes(verb="patch", changed_only=True) == 1


async def test_json_patch_test_op(k8s: KubernetesServer) -> None:
    rv = k8s.create("claw", claw(), namespace="tenant-a")["metadata"]["resourceVersion"]
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/metadata/finalizers", "value": ["claw.io/finalizer"]},
    ]
    status, patched = await call(k8s, "PATCH", f"{CLAWS}/bot", ops, headers=JSONPATCH)
    assert status == 200 and patched["metadata"]["finalizers"] == ["claw.io/finalizer"]
    status, error = await call(k8s, "PATCH", f"{CLAWS}/bot", ops, headers=JSONPATCH)
    assert status == 422 and error["reason"] == "Invalid"  # Kopf retries on 422


async def test_generation_bumps_only_on_spec(k8s: KubernetesServer) -> None:
    k8s.create("claw", claw(), namespace="tenant-a")
    k8s.patch("claw", "tenant-a", "bot", {"metadata": {"labels": {"a": "b"}}})
    k8s.patch("claw", "tenant-a", "bot", {"status": {"phase": "Running"}}, subresource="status")
    assert k8s.get("claw", "tenant-a", "bot")["metadata"]["generation"] == 1  # type: ignore[index]
    k8s.patch("claw", "tenant-a", "bot", {"spec": {"planRef": "basic"}})
    assert k8s.get("claw", "tenant-a", "bot")["metadata"]["generation"] == 2  # type: ignore[index]


async def test_status_subresource_isolation(k8s: KubernetesServer) -> None:
    k8s.create("claw", claw(), namespace="tenant-a")
    status, obj = await call(
        k8s,
        "PATCH",
        f"{CLAWS}/bot/status",
        {"spec": {"planRef": "x"}, "status": {"phase": "Running"}},
        headers=MERGE,
    )
    assert status == 200 and obj["status"] == {"phase": "Running"} and obj["spec"]["planRef"] == "pro"
    status, obj = await call(k8s, "PATCH", f"{CLAWS}/bot", {"status": {"phase": "Failed"}}, headers=MERGE)
    assert obj["status"] == {"phase": "Running"}, "the main resource ignores .status"
    # Secrets have no status subresource: everything is written through the main endpoint.
    secret = {"metadata": {"name": "s"}, "stringData": {"token": "t"}}
    status, created = await call(k8s, "POST", "/api/v1/namespaces/tenant-a/secrets", secret)
    assert created["data"] == {"token": "dA=="} and created["type"] == "Opaque"
    assert "generation" not in created["metadata"]
    status, _ = await call(k8s, "PATCH", "/api/v1/namespaces/tenant-a/secrets/s/status", {}, headers=MERGE)
    assert status == 404
    counts = k8s.write_counts(resource="claw")
    assert counts == {"patch/status": 1, "patch": 1}


async def test_finalizer_aware_deletion(k8s: KubernetesServer) -> None:
    k8s.create(
        "claw", {**claw(), "metadata": {"name": "bot", "finalizers": ["claw.io/finalizer"]}}, "tenant-a"
    )
    status, marked = await call(k8s, "DELETE", f"{CLAWS}/bot")
    assert status == 200 and marked["metadata"]["deletionTimestamp"]
    assert k8s.get("claw", "tenant-a", "bot") is not None
    await call(k8s, "PATCH", f"{CLAWS}/bot", {"metadata": {"finalizers": None}}, headers=MERGE)
    assert k8s.get("claw", "tenant-a", "bot") is None
    k8s.create("claw", claw("plain"), namespace="tenant-a")
    status, _ = await call(k8s, "DELETE", f"{CLAWS}/plain")
    assert status == 200 and k8s.get("claw", "tenant-a", "plain") is None
    status, _ = await call(k8s, "DELETE", f"{CLAWS}/plain")
    assert status == 404


async def test_watch_resumes_from_resource_version(k8s: KubernetesServer) -> None:
    rv = k8s.create("claw", {**claw(), "metadata": {"name": "bot", "finalizers": ["f"]}}, "tenant-a")[
        "metadata"
    ]["resourceVersion"]
    k8s.patch("claw", "tenant-a", "bot", {"spec": {"suspend": True}})
    k8s.delete("claw", "tenant-a", "bot")
    k8s.patch("claw", "tenant-a", "bot", {"metadata": {"finalizers": []}})
    params = {"watch": "true", "resourceVersion": rv, "timeoutSeconds": "1"}
    async with aiohttp.ClientSession() as session, session.get(k8s.url + CLAWS, params=params) as response:
        lines = [json.loads(line) async for line in response.content if line.strip()]
    assert [e["type"] for e in lines] == ["MODIFIED", "MODIFIED", "DELETED"]
    assert lines[1]["object"]["metadata"]["deletionTimestamp"]


async def test_live_watch_sees_changes(k8s: KubernetesServer) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            k8s.url + "/apis/claw.io/v1alpha1/clawinstances", params={"watch": "true", "timeoutSeconds": "5"}
        ) as response,
    ):
        k8s.create("claw", claw(), namespace="tenant-a")
        first = json.loads(await asyncio.wait_for(response.content.readline(), timeout=5))
    assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "bot"


async def test_namespaces_and_discovery(k8s: KubernetesServer) -> None:
    k8s.create("claw", claw(), namespace="tenant-b")
    status, namespaces = await call(k8s, "GET", "/api/v1/namespaces")
    assert status == 200 and namespaces["kind"] == "NamespaceList"
    assert {"default", "tenant-b"} <= {n["metadata"]["name"] for n in namespaces["items"]}
    status, one = await call(k8s, "GET", "/api/v1/namespaces/tenant-b")
    assert one["status"]["phase"] == "Active"
    _, groups = await call(k8s, "GET", "/apis")
    claw_group = next(g for g in groups["groups"] if g["name"] == "claw.io")
    assert claw_group["preferredVersion"]["version"] == "v1alpha1"
    _, resources = await call(k8s, "GET", "/apis/claw.io/v1alpha1")
    by_name = {r["name"]: r for r in resources["resources"]}
    assert by_name["clawinstances"]["namespaced"] and by_name["clawinstances"]["shortNames"] == [
        "claw",
        "claws",
    ]
    assert by_name["clawinstances"]["categories"], "a category lets `kubectl get <category>` list both kinds"
    assert not by_name["clawplans"]["namespaced"] and "clawplans/status" in by_name
    _, core = await call(k8s, "GET", "/api/v1")
    assert {"secrets", "events", "namespaces"} <= {r["name"] for r in core["resources"]}


async def test_crd_posted_registers_resource(k8s: KubernetesServer) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Cluster",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": True, "storage": True}],
        },
    }
    status, _ = await call(k8s, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert status == 201
    status, widget = await call(k8s, "POST", "/apis/example.com/v1/widgets", {"metadata": {"name": "w"}})
    assert status == 201 and widget["kind"] == "Widget"


async def test_table_rendering(k8s: KubernetesServer) -> None:
    k8s.create("claw", claw(), namespace="tenant-a")
    k8s.patch("claw", "tenant-a", "bot", {"status": {"phase": "Running"}}, subresource="status")
    headers = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
    status, table = await call(k8s, "GET", "/apis/claw.io/v1alpha1/clawinstances", headers=headers)
    assert status == 200 and table["kind"] == "Table"
    columns = [c["name"].lower() for c in table["columnDefinitions"]]
    assert columns[0] == "name" and "phase" in columns and columns[-1] == "age"
    cells = table["rows"][0]["cells"]
    assert cells[0] == "bot" and cells[columns.index("phase")] == "Running"
    assert table["rows"][0]["object"]["metadata"]["namespace"] == "tenant-a"


def test_patch_semantics() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}, "l": [1, 2]}, {"a": {"b": None}, "l": [3]}) == {
        "a": {"c": 2},
        "l": [3],
    }
    doc = {"metadata": {"finalizers": ["x", "y"]}}
    assert json_patch(doc, [{"op": "remove", "path": "/metadata/finalizers/0"}]) == {
        "metadata": {"finalizers": ["y"]}
    }
    assert doc == {"metadata": {"finalizers": ["x", "y"]}}, "the input is not mutated"
    with pytest.raises(PatchError):
        json_patch(doc, [{"op": "test", "path": "/metadata/finalizers/0", "value": "y"}])


def test_jsonpath_and_age() -> None:
    obj = {
        "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}
    }
    assert jsonpath(obj, '.status.conditions[?(@.type=="Ready")].status') == "True"
    assert jsonpath(obj, ".status.conditions[0].type") == "Synced"
    assert jsonpath(obj, ".spec.missing") is None
    assert human_age("2000-01-01T00:00:00Z") is not None and human_age(None) is None


async def test_injected_fault(k8s: KubernetesServer) -> None:
    k8s.create("claw", claw(), namespace="tenant-a")
    k8s.inject_fault("patch", "claw", code=503)
    status, _ = await call(k8s, "PATCH", f"{CLAWS}/bot", {"spec": {}}, headers=MERGE)
    assert status == 503
    status, _ = await call(k8s, "PATCH", f"{CLAWS}/bot", {"spec": {}}, headers=MERGE)
    assert status == 200


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
async def test_kubectl_round_trip(k8s: KubernetesServer, kubeconfig: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "objects.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: tenant-a}\nstringData: {appId: a}\n"
        "---\napiVersion: claw.io/v1alpha1\nkind: ClawInstance\n"
        "metadata: {name: bot, namespace: tenant-a}\nspec: {planRef: pro}\n"
    )

    async def kubectl(*args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            "kubectl",
            "--kubeconfig",
            str(kubeconfig),
            *args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == 0, out.decode()
        return out.decode()

    assert "created" in await kubectl("apply", "-f", str(manifest))
    assert "unchanged" in await kubectl("apply", "-f", str(manifest))
    assert k8s.get("secrets", "tenant-a", "creds")["data"] == {"appId": "YQ=="}  # type: ignore[index]

    waiting = asyncio.create_task(
        kubectl("wait", "--for=condition=Ready", "clawinstance/bot", "-n", "tenant-a", "--timeout=20s")
    )
    await asyncio.sleep(0.5)
    condition = {
        "type": "Ready",
        "status": "True",
        "reason": "Available",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    ready = {"phase": "Running", "conditions": [condition]}
    k8s.patch("claw", "tenant-a", "bot", {"status": ready}, subresource="status")
    assert "condition met" in await waiting

    listing = await kubectl("get", "claw", "-A")
    header, row = listing.splitlines()[:2]
    assert header.split()[:4] == ["NAMESPACE", "NAME", "PLAN", "PHASE"]
    assert row.split()[:4] == ["tenant-a", "bot", "pro", "Running"]


async def test_the_write_log_keeps_only_the_newest_writes() -> None:
    # A long `make run` must not grow the emulator without bound.
    async with KubernetesServer(write_log_limit=3) as server:
        for n in range(5):
            status, _ = await call(
                server, "POST", "/api/v1/namespaces/tenant-a/configmaps", {"metadata": {"name": f"c{n}"}}
            )
            assert status == 201
        assert [w.name for w in server.writes(resource="configmaps")] == ["c2", "c3", "c4"]


async def test_a_generated_name_already_taken_is_generated_again(
    k8s: KubernetesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # kube-apiserver retries generateName on a collision (RetryGenerateName): Kopf posts
    # events as kopf-event-xxxxx, and 50,000 of them would otherwise collide.
    import claw_emulators.kubernetes as emulator_module

    suffixes = iter(["bbbbb", "bbbbb", "ccccc"])
    monkeypatch.setattr(emulator_module.random, "choices", lambda alphabet, k: list(next(suffixes)))
    body = {"metadata": {"generateName": "kopf-event-"}, "reason": "Test", "involvedObject": {"name": "bot"}}
    first = await call(k8s, "POST", "/api/v1/namespaces/tenant-a/events", body)
    second = await call(k8s, "POST", "/api/v1/namespaces/tenant-a/events", body)
    assert (first[0], first[1]["metadata"]["name"]) == (201, "kopf-event-bbbbb")
    assert (second[0], second[1]["metadata"]["name"]) == (201, "kopf-event-ccccc")
