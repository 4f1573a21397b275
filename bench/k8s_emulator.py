"""Throughput of the Kubernetes API emulator with a fleet of ClawInstances, printed (never
asserted: machines are noisy).

Over HTTP, as the operator and kubectl see it: creates (admission included), a list of
every instance, a label-selected list, single-object gets, a watch that replays every
instance, and status patches; then the request counters by verb and resource.

Usage: .venv/bin/python bench/k8s_emulator.py [--objects 10000] [--gets 2000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from claw_emulators.kubernetes import KubernetesServer, load_crds

REPO = Path(__file__).resolve().parents[1]
NAMESPACES = 20  # the fleet spread over tenants, as in production


def instance(i: int) -> tuple[str, dict[str, Any]]:
    namespace = f"tenant-{i % NAMESPACES:02d}"
    body = {
        "apiVersion": "claw.io/v1alpha1",
        "kind": "ClawInstance",
        "metadata": {"name": f"claw-{i:05d}", "labels": {"claw.io/shard": str(i % 4)}},
        "spec": {
            "planRef": "pro",
            "owner": {"userId": f"user-{i}", "subscriptionId": f"sub-{i}"},
            "channels": [{"type": "feishu", "secretRef": {"name": f"feishu-{i}"}}],
            "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "GREETING", "value": "hello"}],
        },
    }
    return namespace, body


async def in_parallel(job: Callable[[int], Awaitable[None]], count: int, concurrency: int) -> None:
    """`job(0)` ... `job(count - 1)`, at most `concurrency` at a time."""
    indices = iter(range(count))

    async def worker() -> None:
        for index in indices:
            await job(index)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def report(what: str, count: int, seconds: float) -> None:
    print(f"  {what:<44} {count:>6} in {seconds:7.3f} s  = {count / seconds:>9.0f}/s")


async def main(objects: int, gets: int, concurrency: int) -> None:
    async with (
        KubernetesServer(crds=load_crds(REPO / "crds")) as k8s,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http,
    ):
        base = f"{k8s.url}/apis/claw.io/v1alpha1"
        print(f"Kubernetes emulator, {objects} ClawInstances in {NAMESPACES} namespaces:")

        async def create(i: int) -> None:
            namespace, body = instance(i)
            async with http.post(f"{base}/namespaces/{namespace}/clawinstances", json=body) as response:
                assert response.status == 201, await response.text()

        started = time.perf_counter()
        await in_parallel(create, objects, concurrency)
        report("create (POST, admission included)", objects, time.perf_counter() - started)

        started = time.perf_counter()
        async with http.get(f"{base}/clawinstances") as response:
            listed = json.loads(await response.read())
        elapsed = time.perf_counter() - started
        assert len(listed["items"]) == objects
        print(f"  {'list all (GET, one response)':<44} {objects:>6} in {elapsed:7.3f} s")

        started = time.perf_counter()
        async with http.get(f"{base}/clawinstances", params={"labelSelector": "claw.io/shard=1"}) as response:
            selected = json.loads(await response.read())
        elapsed = time.perf_counter() - started
        found = len(selected["items"])
        print(f"  {'list by labelSelector claw.io/shard=1':<44} {found:>6} in {elapsed:7.3f} s")

        async def get(i: int) -> None:
            namespace, body = instance(i * 7919 % objects)
            url = f"{base}/namespaces/{namespace}/clawinstances/{body['metadata']['name']}"
            async with http.get(url) as response:
                assert response.status == 200
                await response.read()

        started = time.perf_counter()
        await in_parallel(get, gets, concurrency)
        report("get (GET one object)", gets, time.perf_counter() - started)

        started = time.perf_counter()
        seen = 0
        watch = {"watch": "true", "timeoutSeconds": "1"}
        async with http.get(f"{base}/clawinstances", params=watch) as response:
            async for line in response.content:
                if line.strip():
                    seen += 1
                    if seen == objects:
                        break
        report("watch from 0 (initial ADDED events)", seen, time.perf_counter() - started)

        async def patch_status(i: int) -> None:
            namespace, body = instance(i)
            url = f"{base}/namespaces/{namespace}/clawinstances/{body['metadata']['name']}/status"
            status = {"status": {"phase": "Running", "observedGeneration": 1}}
            headers = {"Content-Type": "application/merge-patch+json"}
            async with http.patch(url, data=json.dumps(status), headers=headers) as response:
                assert response.status == 200, await response.text()

        patches = min(objects, gets)
        started = time.perf_counter()
        await in_parallel(patch_status, patches, concurrency)
        report("patch status (merge-patch, admission)", patches, time.perf_counter() - started)

        helper_creates = min(objects, gets)
        started = time.perf_counter()
        for i in range(helper_creates):
            _, body = instance(i)
            k8s.apply({**body, "metadata": {**body["metadata"], "namespace": "bench-helpers"}})
        report("create (k8s.apply helper, in-process)", helper_creates, time.perf_counter() - started)

        print("Kubernetes requests by verb and resource:")
        for (verb, resource), count in k8s.request_counts().items():
            print(f"  {verb:<8} {resource:<28} {count:>7}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--gets", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(main(args.objects, args.gets, args.concurrency))
