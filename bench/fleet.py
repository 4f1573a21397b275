"""Fleet figures for issue #7, printed as a table (never asserted: machines are noisy).

Three processes, as a platform would run them: the Railway emulator enforcing a tier
(Pro by default: 10,000 requests/hour, 50/s), the Kubernetes emulator (here, so its
request log can be counted), and `claw-operator run` with product defaults.

1. Convergence: N ClawInstances applied at once; time until all are Running, against the
   rate-limit lower bound  LB = 3 * N / RPS + 4 * PHASE  (three mutations per instance,
   ProjectCreate, ServiceCreate, ServiceConfigure, at Railway's per-second limit, then one
   deployment's four phases). Railway requests per instance and by operation; 429s.
2. Idle: `--idle` seconds of a steady fleet: Railway requests per instance-hour,
   Kubernetes requests per instance-hour by verb and resource, Kubernetes writes, the
   operator's CPU.
3. Freshness: `--crashes` deployments forced to CRASHED at random moments through the
   emulator's admin API; seconds until the instance's status shows it (median, max).
Plus the operator's peak RSS, the old system's model and the largest fleet one token
keeps at this freshness.

Usage: .venv/bin/python bench/fleet.py [--instances 1000] [--idle 120] [--crashes 10]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from claw_emulators.kubernetes import KubernetesServer
from claw_operator.railway.documents import READ_OPERATIONS
from claw_operator.rules.naming import project_name

REPO = Path(__file__).resolve().parents[1]
TOKEN, WORKSPACE = "bench-platform-token", "ws-bench"
NAMESPACE = "fleet"
TIERS = {"pro": (10_000, 50)}
# Seconds without a status write that make the fleet idle (the idle window starts then).
QUIET_SECONDS = 10.0


def plan(interval: int) -> dict[str, Any]:
    return {
        "apiVersion": "claw.io/v1alpha1",
        "kind": "ClawPlan",
        "metadata": {"name": "pro"},
        "spec": {
            "source": {"image": "ghcr.io/openclaw/openclaw:2026.2.1"},
            "limits": {"maxInstances": 100_000, "maxChannels": 4, "bandwidthGB": 50},
            "healthCheck": {"path": "/health", "intervalSeconds": interval},
        },
    }


def instance(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "claw.io/v1alpha1",
        "kind": "ClawInstance",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"planRef": "pro"},
    }


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_json(url: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


class Railway:
    """The Railway emulator in its own process."""

    def __init__(self, tier: str, phase: float) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "claw_operator", "railway-emulator", "--port", str(self.port)]
        command += ["--token", f"{TOKEN}:{WORKSPACE}:{tier}", "--phase-seconds", str(phase)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.seen = 0
        self.records: list[dict[str, Any]] = []

    def wait_ready(self) -> None:
        for _ in range(200):
            with contextlib.suppress(OSError):
                http_json(self.base + "/healthz")
                return
            time.sleep(0.05)
        raise SystemExit("the Railway emulator did not start")

    def pull(self) -> list[dict[str, Any]]:
        """Requests since the last pull."""
        fresh: list[dict[str, Any]] = http_json(f"{self.base}/_admin/requests?since={self.seen}")["requests"]
        if fresh:
            self.seen = fresh[-1]["seq"]
        self.records += fresh
        return fresh

    def crash(self, project: str) -> float | None:
        try:
            answer = http_json(self.base + "/_admin/crash", {"project": project})
        except OSError:
            return None
        return float(answer["crashedAt"])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class KubeCounter:
    """The Kubernetes emulator's own request counters, by (verb, resource)."""

    def __init__(self, k8s: KubernetesServer) -> None:
        self.k8s = k8s

    def drain(self) -> None:
        """Nothing to drain: the emulator keeps counts, not requests."""

    def snapshot(self) -> collections.Counter[tuple[str, str]]:
        return collections.Counter(self.k8s.request_counts())


class Operator:
    def __init__(
        self, kubeconfig: Path, railway: Railway, instances: int, logfile: Path, rph: int, rps: int
    ) -> None:
        env = dict(os.environ)
        env.update(
            {
                # The operator's budget is the tier's, as a platform configures it.
                "RAILWAY_RATE_LIMIT_RPS": str(rps),
                "RAILWAY_RATE_LIMIT_RPH": str(rph),
                "RAILWAY_API_URL": railway.base + "/graphql/v2",
                "RAILWAY_TOKEN": TOKEN,
                "RAILWAY_WORKSPACE_ID": WORKSPACE,
                "CLAW_HEALTH_URL_TEMPLATE": railway.base + "/_domains/{domain}{path}",
                "CLAW_MAX_MANAGED_INSTANCES": str(instances + 10),
                "CLAW_METRICS_PORT": str(free_port()),
            }
        )
        command = [sys.executable, "-m", "claw_operator", "run", "--kubeconfig", str(kubeconfig)]
        if os.environ.get("BENCH_PROFILE"):
            # `BENCH_PROFILE=out.prof`: the operator under cProfile (stats written on exit).
            command[1:3] = ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"], "-m", "claw_operator"]
        self.log = logfile.open("w")
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def status_of(k8s: KubernetesServer, name: str) -> dict[str, Any]:
    return (k8s.get("clawinstances", NAMESPACE, name) or {}).get("status") or {}


def running_count(k8s: KubernetesServer, names: list[str]) -> int:
    """Read the stored objects in place: copying 10,000 of them five times a second would
    load the process that also serves the operator's requests."""
    rdef = k8s.emulator.resolve("clawinstances")
    stored = k8s.emulator._select(rdef, NAMESPACE)
    return sum(1 for o in stored if (o.get("status") or {}).get("phase") == "Running")


def shows_crash(status: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Deployed" and c.get("reason") == "DeployCrashed"
        for c in status.get("conditions") or []
    )


def row(label: str, value: str, target: str = "") -> str:
    return f"| {label} | {value} | {target} |"


async def main(args: argparse.Namespace) -> None:
    n = args.instances
    rph, rps = TIERS.get(args.tier, (0, 0))
    if args.tier not in TIERS:
        hour, _, second = args.tier.partition("/")
        rph, rps = int(hour), int(second or 50)
    crds = [yaml.safe_load(p.read_text()) for p in sorted((REPO / "crds").glob("*.claw.io.yaml"))]
    railway = Railway(args.tier, args.phase)
    railway.wait_ready()
    workdir = Path(tempfile.mkdtemp(prefix="claw-fleet-bench-"))
    names = [f"bot-{i:05d}" for i in range(n)]
    async with KubernetesServer(crds=crds, record_requests=False) as k8s:
        counter = KubeCounter(k8s)
        kubeconfig = k8s.write_kubeconfig(workdir / "kubeconfig")
        k8s.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        k8s.apply(plan(args.health_interval))
        operator = Operator(kubeconfig, railway, n, workdir / "operator.log", rph, rps)
        try:
            # The operator is up once it watches the instances.
            deadline = time.monotonic() + 60
            while not any(v == "watch" and r == "clawinstances" for v, r in counter.snapshot()):
                if time.monotonic() > deadline or operator.process.poll() is not None:
                    raise SystemExit(f"the operator did not start; see {workdir / 'operator.log'}")
                await asyncio.sleep(0.1)
            await asyncio.sleep(2)
            railway.pull()
            railway.records.clear()
            k8s_before = counter.snapshot()

            # ---------------------------------------------------------------- converge
            started = time.monotonic()
            for name in names:
                k8s.apply(instance(name))
            last_report = started
            applied_wall = time.time()
            timeline: list[tuple[float, int]] = []
            while True:
                done = running_count(k8s, names)
                now = time.monotonic()
                if not timeline or now - started - timeline[-1][0] >= 10:
                    timeline.append((now - started, done))
                if done == n:
                    break
                if now - last_report > 15:
                    print(f"  ... {done}/{n} Running after {now - started:.0f}s", file=sys.stderr, flush=True)
                    last_report = now
                    railway.pull()
                    counter.drain()
                if now - started > args.timeout:
                    raise SystemExit(f"not converged after {args.timeout}s ({done}/{n}); see {workdir}")
                await asyncio.sleep(0.2)
            converged = time.monotonic() - started
            railway.pull()
            converge_requests = list(railway.records)
            k8s_converge = counter.snapshot() - k8s_before
            by_operation = collections.Counter(str(r["operation_name"]) for r in converge_requests)
            mutation_times = [
                r["time"] - applied_wall
                for r in converge_requests
                if r["operation_name"] not in READ_OPERATIONS
            ]
            throttled = sum(
                1
                for r in converge_requests
                if r["status"] == 429 or r["error"] in ("rate_limited", "throttled")
            )

            # ---------------------------------------------------------------- idle
            # Idle means nothing left to do: after `--settle`, wait (up to --settle-max) until
            # no status write happened for QUIET_SECONDS. At 10,000 the first usage round's
            # status writes (lowest urgency) can still be draining when the last is Running.
            await asyncio.sleep(args.settle)
            settle_started, last_count = time.monotonic(), len(k8s.writes(resource="clawinstances"))
            quiet_since = time.monotonic()
            while time.monotonic() - quiet_since < QUIET_SECONDS:
                if time.monotonic() - settle_started > args.settle_max:
                    break
                await asyncio.sleep(1)
                count = len(k8s.writes(resource="clawinstances"))
                if count != last_count:
                    last_count, quiet_since = count, time.monotonic()
            settled = args.settle + time.monotonic() - settle_started
            railway.pull()
            railway.records.clear()
            k8s_idle_before = counter.snapshot()
            writes_before = len(k8s.writes(resource="clawinstances"))
            cpu_before, idle_started = operator.cpu_seconds(), time.monotonic()
            # A marker for a profiler attached from outside (e.g. py-spy on the operator's pid).
            print(f"  idle window starts (operator pid {operator.process.pid})", file=sys.stderr, flush=True)
            while time.monotonic() - idle_started < args.idle:
                await asyncio.sleep(5)
                railway.pull()
                counter.drain()
            idle_seconds = time.monotonic() - idle_started
            idle_cpu = (operator.cpu_seconds() - cpu_before) / idle_seconds
            railway.pull()
            idle_requests = list(railway.records)
            k8s_idle = counter.snapshot() - k8s_idle_before
            idle_writes = len(k8s.writes(resource="clawinstances")) - writes_before
            instance_hours = n * idle_seconds / 3600

            # ---------------------------------------------------------------- freshness
            rng = random.Random(7)
            victims = rng.sample(names, min(args.crashes, n))
            lags: list[float] = []
            pending: dict[str, float] = {}
            window_started = time.monotonic()
            crash_at = sorted(rng.uniform(0, args.crash_window) for _ in victims)
            queue = list(zip(crash_at, victims, strict=True))
            while queue or pending:
                now = time.monotonic() - window_started
                while queue and queue[0][0] <= now:
                    _, victim = queue.pop(0)
                    if railway.crash(project_name("claw", NAMESPACE, victim)) is not None:
                        pending[victim] = time.monotonic()
                for victim, since in list(pending.items()):
                    if shows_crash(status_of(k8s, victim)):
                        lags.append(time.monotonic() - since)
                        del pending[victim]
                    elif time.monotonic() - since > 300:
                        lags.append(float("inf"))
                        del pending[victim]
                await asyncio.sleep(0.1)
            peak_rss = operator.peak_rss_mib()
        finally:
            operator.stop()
            railway.stop()
        counter.drain()

    # -------------------------------------------------------------------- report
    lower_bound = 3 * n / rps + 4 * args.phase
    per_instance = len(converge_requests) / n
    steady_rate = len(idle_requests) / instance_hours
    load = os.getloadavg()
    print(f"\n## bench/fleet.py --instances {n} (tier {args.tier}: {rph}/h, {rps}/s; phase {args.phase}s)")
    print(
        f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end"
    )
    print("\n| figure | measured | target |\n| --- | --- | --- |")
    print(row("all Running after", f"{converged:.1f} s", ""))
    print(
        row(
            "lower bound LB = 3*N/RPS + 4*PHASE",
            f"3*{n}/{rps} + 4*{args.phase} = {lower_bound:.1f} s",
            "",
        )
    )
    print(row("convergence / LB", f"{converged / lower_bound:.2f}x", "<= 1.3x"))
    print(row("429s while converging", str(throttled), "0"))
    print(row("Railway requests per instance to converge", f"{per_instance:.2f}", "<= 4.5"))
    ops = ", ".join(f"{op} {count / n:.3f}" for op, count in by_operation.most_common())
    print(row("  by operation (per instance)", ops, ""))
    buckets = collections.Counter(int(t // 10) * 10 for t in mutation_times)
    spread = " ".join(f"{k}s:{v}" for k, v in sorted(buckets.items()))
    print(row("  Railway mutations per 10 s from apply", spread, ""))
    print(row("  Running instances by time", " ".join(f"{t:.0f}s:{d}" for t, d in timeline), ""))
    print(
        row("Kubernetes requests while converging, per instance", f"{sum(k8s_converge.values()) / n:.1f}", "")
    )
    print(
        row(
            "idle window starts after the last Running (status writes drained)",
            f"{settled:.0f} s",
            f"no status write for {QUIET_SECONDS:.0f} s",
        )
    )
    print(row("steady Railway requests per instance-hour", f"{steady_rate:.2f}", "<= 2.5"))
    idle_ops = collections.Counter(str(r["operation_name"]) for r in idle_requests)
    print(
        row(
            "  by operation (idle window)",
            ", ".join(f"{k} {v}" for k, v in idle_ops.most_common()) or "none",
            "",
        )
    )
    idle_mutations = sum(1 for r in idle_requests if r["operation_name"] not in READ_OPERATIONS)
    print(row("  Railway mutations while idle", str(idle_mutations), "0"))
    k8s_total = sum(k8s_idle.values()) / instance_hours
    print(row("Kubernetes requests per idle instance-hour", f"{k8s_total:.3f}", "<= 1"))
    for (verb, resource), count in sorted(k8s_idle.items()):
        print(
            row(f"  {verb} {resource}", f"{count / instance_hours:.3f} ({count} in {idle_seconds:.0f} s)", "")
        )
    print(row("Kubernetes writes while idle", str(idle_writes), "0"))
    print(row("operator idle CPU", f"{idle_cpu * 100:.1f}% of a core", "<= 3%"))
    print(row("operator peak RSS", f"{peak_rss:.0f} MiB", "<= 250 MiB at 1,000; 1 GiB at 10,000"))
    finite = [lag for lag in lags if lag != float("inf")]
    if finite:
        print(
            row(
                f"freshness, {len(lags)} forced CRASHED (median / max)",
                f"{statistics.median(finite):.1f} s / {max(lags):.1f} s",
                "<= 10 s / <= 30 s",
            )
        )
    old_limit = rph / (3600 / 30)
    print(
        row(
            "old system: 1 request per instance per 30 s",
            f"a {rph}/h token saturates at {old_limit:.0f} instances",
            "",
        )
    )
    if steady_rate > 0:
        pro_rph = TIERS["pro"][0]
        print(
            row(
                "largest fleet one Pro token keeps at this freshness",
                f"{pro_rph}/h / {steady_rate:.2f} per instance-hour = {pro_rph / steady_rate:,.0f} instances",
                "",
            )
        )
    print(f"\noperator log: {workdir / 'operator.log'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--tier", default="pro", help="pro, or PER_HOUR/PER_SECOND (e.g. 1000000/50)")
    parser.add_argument("--phase", type=float, default=0.25, help="seconds per Railway deploy phase")
    parser.add_argument("--health-interval", type=int, default=60, help="plan healthCheck.intervalSeconds")
    parser.add_argument("--idle", type=float, default=120.0, help="seconds of the idle window")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds between Running and idle")
    parser.add_argument(
        "--settle-max", type=float, default=600.0, help="longest wait for the status writes to stop"
    )
    parser.add_argument("--crashes", type=int, default=10)
    parser.add_argument("--crash-window", type=float, default=60.0)
    parser.add_argument("--timeout", type=float, default=1800.0)
    asyncio.run(main(parser.parse_args()))
