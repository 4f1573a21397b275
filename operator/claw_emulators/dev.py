"""`claw-operator dev` (`make run`): the operator on local Kubernetes and Railway emulators.

Starts both emulators in this process, writes `.dev/kubeconfig`, applies the CRDs from
`crds/` and the samples from `manifests/samples/`, then runs the operator against them until
Ctrl-C. Nothing leaves the machine: no cluster, no Railway account, no Docker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from claw_emulators.kubernetes import KubernetesServer, load_crds

log = logging.getLogger("claw_emulators.dev")

# Samples are applied in dependency order: what an object refers to exists before it.
_APPLY_ORDER = {"CustomResourceDefinition": 0, "Namespace": 1, "ClawPlan": 2, "Secret": 3, "ClawInstance": 5}


def load_manifests(directory: Path) -> list[dict[str, Any]]:
    """Every YAML document under `directory`, ordered namespaces, plans, secrets, instances."""
    docs: list[dict[str, Any]] = []
    if directory.is_dir():
        for file in sorted(directory.rglob("*.y*ml")):
            docs.extend(
                doc
                for doc in yaml.safe_load_all(file.read_text())
                if isinstance(doc, dict) and doc.get("kind")
            )
    return sorted(docs, key=lambda doc: _APPLY_ORDER.get(doc["kind"], 4))


def apply_all(k8s: KubernetesServer, docs: Iterable[dict[str, Any]]) -> list[str]:
    """Apply manifests straight into the emulator; returns `kind/name` of each."""
    applied = []
    for doc in docs:
        meta = doc.get("metadata") or {}
        try:
            k8s.apply(doc)
        except (KeyError, ValueError) as exc:  # e.g. a kind the emulator does not serve
            log.warning("skipped %s/%s: %s", doc.get("kind"), meta.get("name"), exc)
            continue
        where = f"{meta['namespace']}/" if meta.get("namespace") else ""
        applied.append(f"{doc['kind']}/{where}{meta.get('name')}")
    return applied


async def _run_operator(kubeconfig: Path, stop: asyncio.Event) -> int:
    """The operator in its own process, exactly as `claw-operator run` runs in a cluster:
    the emulators and the operator share nothing but the two HTTP APIs."""
    command = [sys.executable, "-m", "claw_operator", "run", "--kubeconfig", str(kubeconfig)]
    child = await asyncio.create_subprocess_exec(*command, env=dict(os.environ))
    waiting = asyncio.ensure_future(child.wait())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not waiting.done():
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(waiting), timeout=15)
        except TimeoutError:
            child.kill()
            await waiting
    stopping.cancel()
    return child.returncode or 0


def _banner(k8s_url: str, railway_url: str, kubeconfig: Path, applied: list[str]) -> str:
    kubectl = f"kubectl --kubeconfig {kubeconfig}"
    lines = [
        "",
        "claw-operator dev: the emulators run here, the operator in a child process; Ctrl-C stops both.",
        f"  Kubernetes API emulator  {k8s_url}   (kubeconfig: {kubeconfig})",
        f"  Railway API emulator     {railway_url}",
        f"  applied {len(applied)} objects: {', '.join(applied) or 'none'}",
        "",
        "Try, in another terminal:",
        f"  {kubectl} get clawinstances -A",
        f"  {kubectl} get claw -A -w",
        f"  {kubectl} get clawplans",
        f"  {kubectl} wait --for=condition=Ready clawinstance/<name> -n <namespace>",
        f"  {kubectl} get events -A",
        f"  export KUBECONFIG={kubeconfig}   # then plain `kubectl ...`",
        "",
    ]
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> int:
    from claw_emulators.railway.server import DEV_TOKEN, RailwayEmulator

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Until Kopf takes over these signals, stop the startup cleanly ourselves.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)

    dev_dir: Path = args.dev_dir
    crds = load_crds(args.crds)
    if not crds:
        log.warning("no CRDs in %s: run `make crds` first for ClawPlan/ClawInstance", args.crds)
    async with (
        RailwayEmulator(port=args.railway_port, phase_seconds=args.phase_seconds) as railway,
        KubernetesServer(crds=crds, port=args.kubernetes_port, record_requests=False) as k8s,
    ):
        kubeconfig = k8s.write_kubeconfig(dev_dir / "kubeconfig")
        applied = apply_all(k8s, load_manifests(Path(args.samples)))
        os.environ.update(
            {
                "KUBECONFIG": str(kubeconfig),
                "RAILWAY_API_URL": railway.url,
                "RAILWAY_TOKEN": DEV_TOKEN,
                "CLAW_HEALTH_URL_TEMPLATE": f"http://127.0.0.1:{railway.port}/_domains/{{domain}}{{path}}",
            }
        )
        print(_banner(k8s.url, railway.url, kubeconfig, applied), flush=True)
        if not stop.is_set():
            await _run_operator(kubeconfig, stop)
        print("claw-operator dev: stopped.", flush=True)
    return 0


def cli_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="claw-operator dev", description=__doc__)
    parser.add_argument(
        "--kubernetes-port", type=int, default=8791, help="Kubernetes API emulator port (8791)"
    )
    parser.add_argument("--railway-port", type=int, default=8790, help="Railway API emulator port (8790)")
    parser.add_argument("--phase-seconds", type=float, default=2.0, help="seconds per Railway deploy phase")
    parser.add_argument("--crds", default="crds", help="directory of CustomResourceDefinitions")
    parser.add_argument("--samples", default="manifests/samples", help="directory of manifests to apply")
    parser.add_argument("--dev-dir", default=".dev", help="where the kubeconfig is written")
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    args.dev_dir = Path(args.dev_dir).resolve()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        return 0
