"""Fleet rollout figures for issue #10, printed (never asserted: machines are noisy).

Runs the real operator (`run_operator`, as `claw-operator run` does) against the Kubernetes
and Railway emulators. Setup: N instances on plan "pro" reach Running with a relaxed
budget on a setup token; then the operator restarts on a second token of the same
workspace for which the Railway emulator enforces the Pro tier (50 requests/s, 10,000/h)
and the operator keeps its default (Pro) budget. Measured:

  1. plan image changed, rollout maxConcurrent M: time to Complete, and its ratio to two
     lower bounds (printed with their formulas): waves x deploy duration, and the Railway
     requests the rollout needs at the Pro tier's rate; peak concurrent deploys of the new
     image (Railway deployments in progress at once); 429s;
  2. the same with an image whose every build fails: instances touched before the halt,
     time from the first failure to the halt, time until every rolled-back instance is
     Running again.

Usage: .venv/bin/python bench/rollout.py [--fleet 1000] [--max-concurrent 50] [--phase 0.25]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import yaml

from claw_emulators.kubernetes import KubernetesServer
from claw_emulators.railway.server import RailwayEmulator
from claw_operator.config import Settings
from claw_operator.k8s.runner import run_operator
from claw_operator.railway.documents import READ_OPERATIONS
from claw_operator.rules.revision import plan_revision

REPO = Path(__file__).resolve().parents[1]
SETUP_TOKEN, TOKEN, WORKSPACE = "bench-setup-token", "bench-rollout-token", "ws-bench"
GOOD, NEXT, BAD = (
    "ghcr.io/openclaw/openclaw:2026.2.1",
    "ghcr.io/openclaw/openclaw:2026.3.0",
    "ghcr.io/openclaw/openclaw:broken",
)
PRO_RPS, PRO_RPH = 50, 10_000
HEALTHY_FOR = 0


def plan_manifest(max_concurrent: int) -> dict[str, Any]:
    return {
        "apiVersion": "claw.io/v1alpha1",
        "kind": "ClawPlan",
        "metadata": {"name": "pro"},
        "spec": {
            "source": {"image": GOOD},
            "limits": {"maxInstances": 100_000, "maxChannels": 4, "bandwidthGB": 50},
            "healthCheck": {"path": "/health", "intervalSeconds": 60},
            "rollout": {
                "maxConcurrent": max_concurrent,
                "canary": 1,
                "healthyForSeconds": HEALTHY_FOR,
                "maxFailures": 1,
                "autoRollback": True,
            },
        },
    }


def instance(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "claw.io/v1alpha1",
        "kind": "ClawInstance",
        "metadata": {"name": name, "namespace": "bench"},
        "spec": {"planRef": "pro"},
    }


async def wait_for(
    check: Callable[[], Any], within: float, what: str, report: Callable[[], Any] = lambda: ""
) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}: {report()}")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def operator(settings: Settings, kubeconfig: str) -> AsyncIterator[None]:
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        run_operator(settings, kubeconfig=kubeconfig, stop_flag=stop, ready_flag=ready)
    )
    await asyncio.wait_for(ready.wait(), 60)
    try:
        yield
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 60)


class Probe:
    """Reads of the emulators' state that measure without going through the operator."""

    def __init__(self, k8s: KubernetesServer, emu: RailwayEmulator, names: list[str]) -> None:
        self.k8s, self.emu, self.names = k8s, emu, names

    def statuses(self) -> list[dict[str, Any]]:
        return [o.get("status") or {} for o in self.k8s.list_objects("clawinstances", "bench")]

    def running_on(self, revision: str) -> int:
        return sum(
            1 for s in self.statuses() if s.get("phase") == "Running" and s.get("planRevision") == revision
        )

    def revision(self) -> str:
        """The plan's revision as stored (the API server fills in defaults)."""
        return plan_revision((self.k8s.get("clawplans", None, "pro") or {}).get("spec") or {})

    def rollout(self) -> dict[str, Any]:
        return ((self.k8s.get("clawplans", None, "pro") or {}).get("status") or {}).get("rollout") or {}

    def deployments_of(self, image: str) -> list[Any]:
        return [d for d in self.emu.state.deployments.values() if d.image == image]

    def peak_concurrent(self, image: str) -> int:
        """Most deployments of `image` in progress (created, not yet through DEPLOYING) at once."""
        edges: list[tuple[float, int]] = []
        for dep in self.deployments_of(image):
            end = dep.phase_ends()[-1] if dep.success_at() is not None else dep.phase_ends()[2]
            edges += [(dep.created_at, 1), (end, -1)]
        peak = current = 0
        for _, delta in sorted(edges):
            current += delta
            peak = max(peak, current)
        return peak


async def main(
    fleet: int, max_concurrent: int, phase_seconds: float, deadline_seconds: float, verbose: bool
) -> None:
    crds = [yaml.safe_load(p.read_text()) for p in sorted((REPO / "crds").glob("*.claw.io.yaml"))]
    async with (
        KubernetesServer(crds=crds) as k8s,
        RailwayEmulator(
            phase_seconds=phase_seconds,
            tokens={SETUP_TOKEN: (WORKSPACE, "10000000/2000"), TOKEN: (WORKSPACE, "pro")},
        ) as emu,
    ):
        kubeconfig = str(k8s.write_kubeconfig(Path(tempfile.mkdtemp()) / "kubeconfig"))
        base = {
            "railway_api_url": emu.url,
            "railway_workspace_id": WORKSPACE,
            "health_url_template": emu.base_url + "/_domains/{domain}{path}",
            "resync_seconds": 600,
            "deploying_poll_seconds": 0.5,
            "max_managed_instances": fleet,
        }
        names = [f"claw-{i:04d}" for i in range(fleet)]
        probe = Probe(k8s, emu, names)
        manifest = plan_manifest(max_concurrent)
        k8s.apply(manifest)
        good_revision = probe.revision()

        # --- setup, relaxed budget
        setup = Settings.model_validate(
            {
                **base,
                "railway_token": SETUP_TOKEN,
                "railway_rate_limit_rps": 1000,
                "railway_rate_limit_rph": 10**7,
            }
        )
        started = time.monotonic()
        async with operator(setup, kubeconfig):
            for name in names:
                k8s.apply(instance(name))
            await wait_for(
                lambda: probe.running_on(good_revision) == fleet,
                deadline_seconds,
                "the fleet to run",
                lambda: Counter((s.get("phase"), s.get("planRevision")) for s in probe.statuses()),
            )
        print(f"setup: {fleet} instances Running in {time.monotonic() - started:.0f} s (relaxed budget)")

        pro = Settings.model_validate(
            {
                **base,
                "railway_token": TOKEN,
                "railway_rate_limit_rps": PRO_RPS,
                "railway_rate_limit_rph": PRO_RPH,
            }
        )
        async with operator(pro, kubeconfig):
            # Let the restarted operator look at its fleet once before the change.
            await wait_for(lambda: probe.rollout().get("phase") == "Complete", 120, "a settled plan")
            await asyncio.sleep(5)

            # --- 1. a good image
            mark = len(emu.requests)
            k8s.patch("clawplans", None, "pro", {"spec": {"source": {"image": NEXT}}})
            next_revision = probe.revision()
            changed_at = time.time()
            await wait_for(
                lambda: (
                    probe.rollout().get("phase") == "Complete"
                    and probe.rollout().get("revision") == next_revision
                ),
                deadline_seconds,
                "the rollout to complete",
            )
            elapsed = time.time() - changed_at
            window = emu.requests[mark:]
            throttled = sum(1 for r in window if r.status == 429)
            mutations = [r for r in window if r.operation_name not in READ_OPERATIONS]
            deploy_seconds = 4 * phase_seconds
            waves = 1 + math.ceil((fleet - 1) / max_concurrent)
            bound_waves = waves * (deploy_seconds + HEALTHY_FOR)
            bound_rate = len(mutations) / PRO_RPS
            print(f"== rollout of a new image to {fleet} instances, maxConcurrent {max_concurrent}")
            print(f"time to Complete: {elapsed:.1f} s")
            print(
                f"lower bound by maxConcurrent: (1 canary wave + ceil(({fleet} - 1) / {max_concurrent})) "
                "waves "
                f"x (deploy {deploy_seconds:g} s + healthyForSeconds {HEALTHY_FOR}) = {bound_waves:.1f} s; "
                f"ratio {elapsed / bound_waves:.2f}"
            )
            print(
                f"lower bound by the rate limit: {len(mutations)} Railway mutations / {PRO_RPS} requests/s = "
                f"{bound_rate:.1f} s; ratio {elapsed / bound_rate:.2f}"
                + (" (also within 10,000/h)" if len(window) <= PRO_RPH else "")
            )
            print(
                f"railway requests during the rollout: {len(window)} ({len(mutations)} mutations); "
                f"429s: {throttled}"
            )
            if verbose:
                for dep in sorted(probe.deployments_of(NEXT), key=lambda d: d.created_at):
                    print(f"  deploy {dep.service_id[:8]} created +{dep.created_at - changed_at:.2f} s")
            print(
                f"peak concurrent deploys of the new image: {probe.peak_concurrent(NEXT)} "
                f"(limit {max_concurrent})"
            )

            # --- 2. a failing image
            emu.add_fault(kind="fail_build", image=":broken")
            mark = len(emu.requests)
            k8s.patch("clawplans", None, "pro", {"spec": {"source": {"image": BAD}}})
            await wait_for(
                lambda: probe.rollout().get("phase") == "Halted", deadline_seconds, "the rollout to halt"
            )
            halted_wall = time.time()
            touched = {d.service_id for d in probe.deployments_of(BAD)}
            first_failure = min(d.phase_ends()[2] for d in probe.deployments_of(BAD))
            await wait_for(
                lambda: probe.running_on(next_revision) == fleet, deadline_seconds, "rolled back instances"
            )
            back_wall = time.time()
            window = emu.requests[mark:]
            print("== the same with an image whose builds fail (maxFailures 1, autoRollback)")
            print(
                f"instances touched before the halt: {len(touched)} "
                f"(target: canary 1 + at most {max_concurrent})"
            )
            print(f"time from the first failure to the halt: {halted_wall - first_failure:.2f} s")
            print(
                "time from the halt until every rolled back instance is Running: "
                f"{back_wall - halted_wall:.2f} s"
            )
            print(
                f"failed instances: {probe.rollout().get('failed')}; "
                f"429s: {sum(r.status == 429 for r in window)}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fleet", type=int, default=1000)
    parser.add_argument("--max-concurrent", type=int, default=50)
    parser.add_argument("--phase", type=float, default=0.25, help="seconds per deploy phase (4 phases)")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--verbose", action="store_true", help="print when each new deployment started")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(args.fleet, args.max_concurrent, args.phase, args.timeout, args.verbose))
