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
from claw_operator.k8s.handlers import build_registry
from claw_operator.k8s.kube import KubeApi
from claw_operator.k8s.operator_state import OperatorState

log = logging.getLogger(__name__)


def kubernetes_configuration(kubeconfig: str | None = None) -> kubernetes.client.Configuration:
    configuration = kubernetes.client.Configuration()
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
    return configuration


def build_state(settings: Settings, configuration: kubernetes.client.Configuration) -> OperatorState:
    return OperatorState(settings=settings, kube=KubeApi(kubernetes.client.ApiClient(configuration)))


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
    state: OperatorState | None = None,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
    liveness_endpoint: str | None = None,
) -> None:
    """Run until `stop_flag` is set (or a signal stops Kopf)."""
    configuration = kubernetes_configuration(kubeconfig)
    state = state or build_state(settings, configuration)
    registry = build_registry()
    kopf.on.login(registry=registry)(_login_handler(configuration))
    namespaces = list(settings.namespaces)
    await kopf.operator(
        registry=registry,
        memo=kopf.Memo(claw=state),
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
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    env = dict(os.environ)
    if args.namespace:
        env["CLAW_NAMESPACES"] = ",".join(args.namespace)
    if args.railway_api_url:
        env["RAILWAY_API_URL"] = args.railway_api_url
    settings = Settings.from_env(env)
    if settings.railway_token is None:
        log.warning("RAILWAY_TOKEN is not set: Managed instances will report RailwayAuthFailed")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_operator(settings, kubeconfig=args.kubeconfig, liveness_endpoint=args.liveness))
    return 0
