"""Lifecycle figures for issue #3, printed (never asserted: machines are noisy).

Runs the real operator (`run_operator`, as `claw-operator run` does) against the Kubernetes
and Railway emulators and measures:
  1. Railway requests for one image-sourced instance from apply to its first deployment
     triggered, polling (FleetObserve) excluded;
  2. Kubernetes writes to the instance from apply to Running, and over 10 idle resync cycles;
  3. time from apply to the first Railway mutation;
  4. for a fleet of N instances: Railway requests per steady resync cycle (batching).

Usage: .venv/bin/python bench/lifecycle.py [--fleet 50] [--resync 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from claw_emulators.kubernetes import KubernetesServer
from claw_emulators.railway.server import RailwayEmulator
from claw_operator.config import Settings
from claw_operator.k8s.runner import run_operator
from claw_operator.railway.documents import READ_OPERATIONS

REPO = Path(__file__).resolve().parents[1]
TOKEN, WORKSPACE = "bench-platform-token", "ws-bench"
PLAN = {
    "apiVersion": "claw.io/v1alpha1",
    "kind": "ClawPlan",
    "metadata": {"name": "pro"},
    "spec": {
        "source": {"image": "ghcr.io/openclaw/openclaw:2026.2.1"},
        "limits": {"maxInstances": 10000, "maxChannels": 4, "bandwidthGB": 50},
        "healthCheck": {"path": "/health", "intervalSeconds": 60},
    },
}


def instance(name: str, namespace: str = "bench") -> dict[str, Any]:
    return {
        "apiVersion": "claw.io/v1alpha1",
        "kind": "ClawInstance",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"planRef": "pro"},
    }


def phase(k8s: KubernetesServer, name: str, namespace: str = "bench") -> str | None:
    return ((k8s.get("clawinstances", namespace, name) or {}).get("status") or {}).get("phase")


async def wait_for(check: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting; the operator did not converge")
        await asyncio.sleep(0.02)


def writes(k8s: KubernetesServer, name: str | None = None) -> int:
    return len(k8s.writes(resource="clawinstances", name=name))


async def main(fleet: int, resync: float) -> None:
    crds = [yaml.safe_load(p.read_text()) for p in sorted((REPO / "crds").glob("*.claw.io.yaml"))]
    async with (
        KubernetesServer(crds=crds) as k8s,
        RailwayEmulator(phase_seconds=0.2, tokens={TOKEN: (WORKSPACE, "1000000/10000")}) as emu,
    ):
        kubeconfig = k8s.write_kubeconfig(Path(tempfile.mkdtemp()) / "kubeconfig")
        settings = Settings.model_validate(
            {
                "railway_api_url": emu.url,
                "railway_token": TOKEN,
                "railway_workspace_id": WORKSPACE,
                "health_url_template": emu.base_url + "/_domains/{domain}{path}",
                "resync_seconds": resync,
                "deploying_poll_seconds": 0.2,
            }
        )
        k8s.apply(PLAN)
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(
            run_operator(settings, kubeconfig=str(kubeconfig), stop_flag=stop, ready_flag=ready)
        )
        await asyncio.wait_for(ready.wait(), 30)

        # --- one instance
        applied_at = time.time()
        k8s.apply(instance("solo"))
        await wait_for(lambda: emu.state.deployments, 30)
        until_deploy = [r for r in emu.requests if r.operation_name != "FleetObserve"]
        first_mutation = next(r for r in emu.requests if r.operation_name not in READ_OPERATIONS)
        await wait_for(lambda: phase(k8s, "solo") == "Running", 60)
        to_running = writes(k8s, "solo")
        before_idle, railway_before = writes(k8s, "solo"), len(emu.requests)
        await asyncio.sleep(10 * resync)
        idle_writes = writes(k8s, "solo") - before_idle
        idle_mutations = [r for r in emu.requests[railway_before:] if r.operation_name not in READ_OPERATIONS]

        print("== one image-sourced instance")
        print(
            f"railway requests, apply -> first deployment triggered: {len(until_deploy)} "
            f"({', '.join(str(r.operation_name) for r in until_deploy)})"
        )
        print(f"time, apply -> first railway mutation: {(first_mutation.time - applied_at) * 1000:.0f} ms")
        print(
            f"kubernetes writes to the instance, apply -> Running: {to_running} "
            f"({k8s.write_counts(resource='clawinstances', name='solo')})"
        )
        print(f"kubernetes writes over 10 idle resync cycles ({resync:g}s each): {idle_writes}")
        print(
            f"railway mutations over those cycles: {len(idle_mutations)}; "
            f"railway reads: {len(emu.requests) - railway_before - len(idle_mutations)}"
        )

        # --- a fleet
        if fleet:
            for i in range(fleet):
                k8s.apply(instance(f"fleet-{i:04d}"))
            started = time.monotonic()
            await wait_for(lambda: all(phase(k8s, f"fleet-{i:04d}") == "Running" for i in range(fleet)), 300)
            converged = time.monotonic() - started
            await asyncio.sleep(2 * resync)
            mark = len(emu.requests)
            await asyncio.sleep(10 * resync)
            steady = emu.requests[mark:]
            print(f"== fleet of {fleet} more instances")
            print(f"apply -> all Running: {converged:.1f} s")
            print(
                f"railway requests per steady resync cycle for {fleet + 1} instances: {len(steady) / 10:.1f} "
                f"(mutations: {sum(r.operation_name not in READ_OPERATIONS for r in steady)})"
            )
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fleet", type=int, default=50)
    parser.add_argument("--resync", type=float, default=1.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(args.fleet, args.resync))
