"""`claw-operator run`: the operator against the cluster in the current kubeconfig (or the
in-cluster service account), configured from the environment (API.md, settings)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
from typing import Any

import kopf
import kubernetes.client
import kubernetes.config

from claw_operator.config import Settings
from claw_operator.k8s.engine import Engine
from claw_operator.k8s.handlers import build_registry
from claw_operator.k8s.probes import DEFAULT_HOST, ProbeServer, open_gate_when_set
from claw_operator.support import metrics
from claw_operator.support.logging_setup import configure_logging

log = logging.getLogger(__name__)

DEFAULT_METRICS_PORT = 9090


def kubernetes_configuration(kubeconfig: str | None = None) -> kubernetes.client.Configuration:
    configuration = kubernetes.client.Configuration()
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
    return configuration


def _login_handler(configuration: kubernetes.client.Configuration) -> Any:
    """Kopf logs in with exactly what the `kubernetes` client uses, so both agree."""

    def login(**_: Any) -> kopf.ConnectionInfo:
        header = str((configuration.api_key or {}).get("authorization", ""))
        scheme, _sep, value = header.partition(" ")
        return kopf.ConnectionInfo(
            server=configuration.host,
            ca_path=configuration.ssl_ca_cert,
            insecure=not configuration.verify_ssl,
            certificate_path=configuration.cert_file,
            private_key_path=configuration.key_file,
            scheme=scheme or None,
            token=value or None,
        )

    return login


async def run_operator(
    settings: Settings,
    *,
    kubeconfig: str | None = None,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
    liveness_endpoint: str | None = None,
    metrics_port: int | None = None,
    metrics_host: str = DEFAULT_HOST,
) -> None:
    """Run until `stop_flag` is set (or a signal stops Kopf). With `metrics_port`, serve
    /metrics, /healthz and /readyz there (0: any free port) for as long."""
    configuration = kubernetes_configuration(kubeconfig)
    metrics.configure_token_key(settings.fingerprint_key.get_secret_value().encode())
    if metrics_port is None:
        await _run_kopf(settings, configuration, stop_flag, ready_flag, liveness_endpoint)
        return
    ready_flag = ready_flag or asyncio.Event()
    async with ProbeServer(metrics_port, host=metrics_host) as server:
        log.info("serving /metrics, /healthz and /readyz on port %d", server.port)
        gate = asyncio.create_task(open_gate_when_set(ready_flag, "kopf"), name="claw-readiness")
        try:
            await _run_kopf(settings, configuration, stop_flag, ready_flag, liveness_endpoint)
        finally:
            gate.cancel()


async def _run_kopf(
    settings: Settings,
    configuration: kubernetes.client.Configuration,
    stop_flag: asyncio.Event | None,
    ready_flag: asyncio.Event | None,
    liveness_endpoint: str | None,
) -> None:
    registry = build_registry(lambda: Engine(settings=settings, concurrency=settings.concurrency))
    kopf.on.login(registry=registry)(_login_handler(configuration))
    namespaces = list(settings.namespaces)
    await kopf.operator(
        registry=registry,
        memo=kopf.Memo(),
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=True,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
        liveness_endpoint=liveness_endpoint,
    )


def cli_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="claw-operator run", description=__doc__)
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"), help="kubeconfig file")
    parser.add_argument(
        "--namespace", "-n", action="append", default=[], help="namespace to watch (repeatable)"
    )
    parser.add_argument("--railway-api-url", help="overrides RAILWAY_API_URL")
    parser.add_argument("--liveness", default=None, help="e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help=f"port of /metrics, /healthz and /readyz (CLAW_METRICS_PORT, default {DEFAULT_METRICS_PORT})",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logs, HTTP requests included")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    try:
        configure_logging(env, verbose=args.verbose)
        metrics_port = metrics_port_setting(args.metrics_port, env)
    except ValueError as exc:
        parser.error(str(exc))
    if args.namespace:
        env["CLAW_NAMESPACES"] = ",".join(args.namespace)
    if args.railway_api_url:
        env["RAILWAY_API_URL"] = args.railway_api_url
    settings = Settings.from_env(env)
    if settings.railway_token is None:
        log.warning("RAILWAY_TOKEN is not set: Managed instances will report RailwayAuthFailed")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_operator(
                settings,
                kubeconfig=args.kubeconfig,
                liveness_endpoint=args.liveness,
                metrics_port=metrics_port,
            )
        )
    return 0


def metrics_port_setting(flag: int | None, env: dict[str, str]) -> int:
    """--metrics-port, else CLAW_METRICS_PORT, else 9090."""
    if flag is not None:
        value: object = flag
    else:
        value = env.get("CLAW_METRICS_PORT") or DEFAULT_METRICS_PORT
    try:
        port = int(str(value))
    except ValueError:
        raise ValueError(f"CLAW_METRICS_PORT={value!r} is not a port number; use 1-65535") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"the metrics port {port} is out of range; use 1-65535")
    return port
