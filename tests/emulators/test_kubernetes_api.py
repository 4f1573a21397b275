"""What the fleet engine needs of the Kubernetes emulator: selectors on list and watch,
Leases and Secrets with optimistic concurrency, namespaces, bookmarks, watch resumption
over many objects, and request counters by verb and resource."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from claw_emulators.kubernetes import KubernetesServer
from claw_emulators.kubernetes_resources import labels_match
from tests.emulators.k8s_http import CLAWS, MERGE, call, claw

SECRETS = "/api/v1/namespaces/tenant-a/secrets"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/tenant-a/leases"


def secret(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "stringData": {"token": "t"}}


async def watch_lines(k8s: KubernetesServer, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(k8s.url + path, params=params) as response:
        return [json.loads(line) async for line in response.content if line.strip()]


def test_label_selector_grammar() -> None:
    labels = {"claw.io/watch": "true", "tier": "gold"}
    assert labels_match(labels, "claw.io/watch=true")
    assert labels_match(labels, "claw.io/watch==true,tier")
    assert not labels_match(labels, "tier!=gold")
    assert labels_match(labels, "missing!=x")
    assert labels_match(labels, "!missing") and not labels_match(labels, "!tier")
    assert labels_match(labels, "tier in (gold, silver)") and not labels_match(labels, "tier in (silver)")
    assert labels_match(labels, "tier notin (silver)") and labels_match(labels, "missing notin (x)")
    assert not labels_match(labels, "missing in (x)")
    assert labels_match({}, "") and labels_match({}, None)


async def test_label_and_field_selectors_on_list(k8s: KubernetesServer) -> None:
    for name, labels in [("a", {"claw.io/watch": "true"}), ("b", {"claw.io/watch": "false"}), ("c", {})]:
        k8s.create("secrets", secret(name, labels), namespace="tenant-a")
    k8s.create("secrets", secret("d", {"claw.io/watch": "true"}), namespace="tenant-b")

    async def names(path: str, **params: str) -> list[str]:
        status, listed, _ = await call(k8s, "GET", path, params=params)
        assert status == 200, listed
        return [f"{o['metadata']['namespace']}/{o['metadata']['name']}" for o in listed["items"]]

    assert await names("/api/v1/secrets", labelSelector="claw.io/watch=true") == ["tenant-a/a", "tenant-b/d"]
    assert await names(SECRETS, labelSelector="claw.io/watch=true") == ["tenant-a/a"]
    assert await names(SECRETS, labelSelector="claw.io/watch!=true") == ["tenant-a/b", "tenant-a/c"]
    assert await names(SECRETS, labelSelector="claw.io/watch in (true,false)") == ["tenant-a/a", "tenant-a/b"]
    assert await names(SECRETS, labelSelector="!claw.io/watch") == ["tenant-a/c"]
    assert await names("/api/v1/secrets", fieldSelector="metadata.name=d") == ["tenant-b/d"]
    assert await names("/api/v1/secrets", fieldSelector="metadata.namespace=tenant-b") == ["tenant-b/d"]
    status, error, _ = await call(k8s, "GET", SECRETS, params={"labelSelector": "bad key=x"})
    assert status == 400 and error["reason"] == "BadRequest"


async def test_label_selector_on_watch(k8s: KubernetesServer) -> None:
    k8s.create("secrets", secret("old", {"claw.io/watch": "true"}), namespace="tenant-a")
    params = {"watch": "true", "labelSelector": "claw.io/watch=true", "timeoutSeconds": "5"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(k8s.url + "/api/v1/secrets", params=params) as response,
    ):
        first = json.loads(await asyncio.wait_for(response.content.readline(), timeout=5))
        k8s.create("secrets", secret("ignored"), namespace="tenant-a")
        k8s.create("secrets", secret("new", {"claw.io/watch": "true"}), namespace="tenant-a")
        second = json.loads(await asyncio.wait_for(response.content.readline(), timeout=5))
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "old")
    assert (second["type"], second["object"]["metadata"]["name"]) == ("ADDED", "new")


async def test_leases_with_optimistic_concurrency(k8s: KubernetesServer) -> None:
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "shard-0"},
        "spec": {"holderIdentity": "pod-a", "leaseDurationSeconds": 15},
    }
    status, created, _ = await call(k8s, "POST", LEASES, lease)
    assert status == 201 and created["kind"] == "Lease"
    rv = created["metadata"]["resourceVersion"]
    taken = {**created, "spec": {**created["spec"], "holderIdentity": "pod-b"}}
    status, updated, _ = await call(k8s, "PUT", f"{LEASES}/shard-0", taken)
    assert status == 200 and updated["spec"]["holderIdentity"] == "pod-b"
    # A second replica still holding the old resourceVersion loses the race.
    stale = {**created, "spec": {**created["spec"], "holderIdentity": "pod-c"}}
    status, conflict, _ = await call(k8s, "PUT", f"{LEASES}/shard-0", stale)
    assert status == 409 and conflict["reason"] == "Conflict"
    patch = {"metadata": {"resourceVersion": rv}, "spec": {"holderIdentity": "pod-c"}}
    status, _, _ = await call(k8s, "PATCH", f"{LEASES}/shard-0", patch, headers=MERGE)
    assert status == 409
    status, got, _ = await call(k8s, "GET", f"{LEASES}/shard-0")
    assert got["spec"]["holderIdentity"] == "pod-b"
    status, listed, _ = await call(k8s, "GET", "/apis/coordination.k8s.io/v1/leases")
    assert [item["metadata"]["name"] for item in listed["items"]] == ["shard-0"]
    events = await watch_lines(k8s, LEASES, {"watch": "true", "resourceVersion": rv, "timeoutSeconds": "1"})
    assert [e["type"] for e in events] == ["MODIFIED"]
    status, _, _ = await call(k8s, "DELETE", f"{LEASES}/shard-0")
    assert status == 200 and k8s.get("leases", "tenant-a", "shard-0") is None
    _, discovery, _ = await call(k8s, "GET", "/apis/coordination.k8s.io/v1")
    assert discovery["resources"][0]["name"] == "leases" and discovery["resources"][0]["namespaced"]


async def test_secret_writes_with_a_stale_resource_version_conflict(k8s: KubernetesServer) -> None:
    created = k8s.create("secrets", secret("oauth"), namespace="tenant-a")
    rv = created["metadata"]["resourceVersion"]
    fresh = {**created, "data": {"token": "bmV3"}}
    status, refreshed, _ = await call(k8s, "PUT", f"{SECRETS}/oauth", fresh)
    assert status == 200 and refreshed["data"] == {"token": "bmV3"}
    status, conflict, _ = await call(k8s, "PUT", f"{SECRETS}/oauth", {**created, "data": {"token": "eA=="}})
    assert status == 409 and conflict["reason"] == "Conflict"
    patch = {"metadata": {"resourceVersion": rv}, "data": {"token": "eQ=="}}
    strategic = {"Content-Type": "application/strategic-merge-patch+json"}
    status, _, _ = await call(k8s, "PATCH", f"{SECRETS}/oauth", patch, headers=strategic)
    assert status == 409
    assert k8s.get("secrets", "tenant-a", "oauth")["data"] == {"token": "bmV3"}  # type: ignore[index]


async def test_namespaces_list_and_get(k8s: KubernetesServer) -> None:
    k8s.create("secrets", secret("s"), namespace="tenant-z")
    status, listed, _ = await call(k8s, "GET", "/api/v1/namespaces")
    assert status == 200 and listed["kind"] == "NamespaceList"
    assert {"default", "kube-system", "tenant-z"} <= {n["metadata"]["name"] for n in listed["items"]}
    status, one, _ = await call(k8s, "GET", "/api/v1/namespaces/tenant-z")
    assert status == 200 and one["metadata"]["name"] == "tenant-z"
    status, _, _ = await call(k8s, "GET", "/api/v1/namespaces/nowhere")
    assert status == 404


async def test_bookmarks_when_asked_for() -> None:
    async with KubernetesServer(bookmark_interval=0.05) as k8s:
        rv = k8s.emulator.resource_version
        params = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": rv,
            "timeoutSeconds": "1",
        }
        events = await watch_lines(k8s, SECRETS, params)
        assert events and {e["type"] for e in events} == {"BOOKMARK"}
        assert events[0]["object"]["kind"] == "Secret" and events[0]["object"]["metadata"]["resourceVersion"]
        without = await watch_lines(k8s, SECRETS, {**params, "allowWatchBookmarks": "false"})
        assert without == []


async def test_watch_resumes_exactly_among_many_objects(k8s: KubernetesServer) -> None:
    for i in range(300):
        k8s.create("claw", claw(f"bot-{i:03d}"), namespace="tenant-a")
    middle = k8s.get("claw", "tenant-a", "bot-149")["metadata"]["resourceVersion"]  # type: ignore[index]
    k8s.patch("claw", "tenant-a", "bot-007", {"spec": {"suspend": True}})
    params = {"watch": "true", "resourceVersion": middle, "timeoutSeconds": "1"}
    events = await watch_lines(k8s, CLAWS, params)
    names = [e["object"]["metadata"]["name"] for e in events]
    assert names == [f"bot-{i:03d}" for i in range(150, 300)] + ["bot-007"]
    assert [e["type"] for e in events] == ["ADDED"] * 150 + ["MODIFIED"]
    everything = await watch_lines(k8s, CLAWS, {"watch": "true", "timeoutSeconds": "1"})
    assert len(everything) == 300 and {e["type"] for e in everything} == {"ADDED"}
    expired = await watch_lines(k8s, CLAWS, {"watch": "true", "resourceVersion": "-1", "timeoutSeconds": "1"})
    assert expired[0]["type"] == "ERROR" and expired[0]["object"]["code"] == 410


async def test_request_counts_by_verb_and_resource(k8s: KubernetesServer) -> None:
    k8s.create("claw", claw(), namespace="tenant-a")  # a helper, not a request
    await call(k8s, "GET", CLAWS)
    await call(k8s, "GET", f"{CLAWS}/bot")
    await call(k8s, "GET", f"{CLAWS}/bot")
    await call(k8s, "PATCH", f"{CLAWS}/bot/status", {"status": {"phase": "Running"}}, headers=MERGE)
    await call(k8s, "PUT", f"{CLAWS}/bot", claw())
    await call(k8s, "POST", SECRETS, secret("s"))
    await call(k8s, "GET", "/api/v1/secrets", params={"labelSelector": "claw.io/watch=true"})
    await watch_lines(k8s, SECRETS, {"watch": "true", "timeoutSeconds": "0.1"})
    await call(k8s, "DELETE", f"{SECRETS}/s")
    assert k8s.request_counts() == {
        ("create", "secrets"): 1,
        ("delete", "secrets"): 1,
        ("get", "clawinstances"): 2,
        ("list", "clawinstances"): 1,
        ("list", "secrets"): 1,
        ("patch", "clawinstances/status"): 1,
        ("update", "clawinstances"): 1,
        ("watch", "secrets"): 1,
    }
    assert k8s.request_counts(verb="get") == {("get", "clawinstances"): 2}
    assert k8s.request_counts(resource="claw/status") == {("patch", "clawinstances/status"): 1}
    assert k8s.requests == [], "the full log is kept only when asked for"
    # write accounting is unchanged: put is still "put" there
    assert k8s.write_counts(resource="claw") == {"patch/status": 1, "put": 1}
    k8s.reset_request_counts()
    assert k8s.request_counts() == {}


async def test_full_request_log_when_asked_for() -> None:
    async with KubernetesServer(request_log=True) as k8s:
        await call(k8s, "GET", "/api/v1/secrets", params={"labelSelector": "claw.io/watch=true"})
        [record] = k8s.requests
        assert (record.verb, record.resource, record.label_selector) == (
            "list",
            "secrets",
            "claw.io/watch=true",
        )
        assert record.namespace is None and record.name is None


async def test_builtin_kinds_are_checked_as_their_go_types_would_be(k8s: KubernetesServer) -> None:
    status, answer, _ = await call(
        k8s, "POST", SECRETS, {"metadata": {"name": "s"}, "data": {"k": "not base64!"}}
    )
    assert status == 400 and answer["message"] == (
        'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 3'
    )
    status, answer, _ = await call(
        k8s, "POST", SECRETS, {"metadata": {"name": "s"}, "stringData": {"bad key": "v"}}
    )
    assert status == 422 and answer["details"]["causes"][0]["field"] == "stringData[bad key]"
    status, answer, _ = await call(
        k8s,
        "POST",
        SECRETS,
        {"metadata": {"name": "s"}, "stringdata": {"k": "v"}},
        params={"fieldValidation": "Strict"},
    )
    assert status == 400 and 'unknown field "stringdata"' in answer["message"]
    lease = {"metadata": {"name": "l"}, "spec": {"holderIdentity": "a", "renewTime": 1700000000.5}}
    status, answer, _ = await call(k8s, "POST", LEASES, lease)
    assert status == 422 and answer["details"]["causes"][0]["field"] == "spec.renewTime"
    lease["spec"]["renewTime"] = "2026-01-01T00:00:00.123456Z"
    status, _, _ = await call(k8s, "POST", LEASES, lease)
    assert status == 201


def test_object_history_is_bounded() -> None:
    from claw_emulators.kubernetes import KubernetesAPIEmulator

    emulator = KubernetesAPIEmulator(object_history=3)
    secrets = emulator.resolve("secrets")
    emulator.create_object(secrets, "tenant-a", secret("s"))
    for value in ("YQ==", "Yg==", "Yw==", "ZA=="):
        emulator.patch_object(secrets, "tenant-a", "s", {"data": {"token": value}})
    history = emulator.objects["v1/secrets", "tenant-a", "s"].history
    assert [version["data"]["token"] for version in history] == ["Yg==", "Yw==", "ZA=="]
