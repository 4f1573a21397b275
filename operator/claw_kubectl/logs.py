"""`kubectl claw logs`: an instance's deploy or build logs read from Railway with the
token the operator would use (Managed: the platform token; SelfHosted: the instance's
tokenSecretRef), every secret value of the instance redacted."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from claw_kubectl.cluster import Cluster, PluginError
from claw_operator.railway.client import RailwayClient
from claw_operator.railway.errors import RailwayError
from claw_operator.railway.types import LogLine
from claw_operator.support.redact import redact

DEFAULT_API_URL = "https://backboard.railway.com/graphql/v2"
FOLLOW_WINDOW = 500
Obj = Mapping[str, Any]


class LogReader(Protocol):
    async def deployment_logs(
        self, deployment_id: str, limit: int = 50
    ) -> tuple[list[LogLine], list[LogLine]]: ...


@dataclass(frozen=True)
class LogSource:
    token: str
    secrets: frozenset[str]  # every value to redact, the token among them
    deployment_id: str


def _ref(value: str, flag: str) -> tuple[str, str]:
    namespace, _, name = value.partition("/")
    if not namespace or not name:
        raise PluginError(f"{flag}={value!r}: use NAMESPACE/NAME")
    return namespace, name


def instance_secrets(cluster: Cluster, obj: Obj) -> set[str]:
    """Every value of the Secrets the instance names (channels, env, token)."""
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    namespace = str(meta.get("namespace"))
    values: set[str] = set()
    for channel in spec.get("channels") or []:
        values |= set(cluster.secret(namespace, channel["secretRef"]["name"]).values())
    for env in spec.get("env") or []:
        ref = (env.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            values.add(cluster.secret(namespace, ref["name"]).get(ref["key"], ""))
    token_ref = (spec.get("railway") or {}).get("tokenSecretRef")
    if token_ref:
        values |= set(cluster.secret(namespace, token_ref["name"]).values())
    return {v for v in values if v}


def resolve_source(cluster: Cluster, obj: Obj, token_secret: str | None, env: Mapping[str, str]) -> LogSource:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    name = f"{meta.get('namespace')}/{meta.get('name')}"
    deployment_id = (status.get("deployment") or {}).get("id")
    if not deployment_id:
        raise PluginError(f"clawinstance {name} has no deployment yet (status.deployment.id is empty)")
    railway = spec.get("railway") or {}
    if railway.get("mode") == "SelfHosted":
        ref = railway.get("tokenSecretRef") or {}
        if not ref.get("name"):
            raise PluginError(f"clawinstance {name} is SelfHosted but names no spec.railway.tokenSecretRef")
        key = ref.get("key") or "token"
        token = cluster.secret(str(meta.get("namespace")), ref["name"]).get(key, "")
        if not token:
            raise PluginError(
                f"Secret {meta.get('namespace')}/{ref['name']} has no key {key!r} with the Railway token"
            )
    elif token_secret:
        namespace, secret_name = _ref(token_secret, "--token-secret")
        token = cluster.secret(namespace, secret_name).get("token", "")
        if not token:
            raise PluginError(f"Secret {namespace}/{secret_name} has no key 'token' with the Railway token")
    else:
        token = env.get("RAILWAY_TOKEN", "")
        if not token:
            raise PluginError(
                f"clawinstance {name} is Managed: set RAILWAY_TOKEN or pass "
                "--token-secret NAMESPACE/NAME (e.g. claw-system/railway-platform-token)"
            )
    secrets = instance_secrets(cluster, obj) | {token}
    return LogSource(token=token, secrets=frozenset(secrets), deployment_id=str(deployment_id))


def format_line(line: LogLine, secrets: Iterable[str]) -> str:
    prefix = f"{line.timestamp} " if line.timestamp else ""
    return redact(prefix + line.message, secrets)


async def stream_logs(
    reader: LogReader,
    source: LogSource,
    out: TextIO,
    *,
    build: bool,
    tail: int,
    follow: bool,
    interval: float = 2.0,
    stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Print the last `tail` lines; with `follow`, keep printing new ones until `stop()`."""
    seen: set[tuple[str | None, str]] = set()
    first = True
    while True:
        # Following reads a wide window every time, so a line shown once is known later.
        window = max(tail, FOLLOW_WINDOW) if follow else max(tail, 1)
        build_lines, deploy_lines = await reader.deployment_logs(source.deployment_id, limit=window)
        lines = build_lines if build else deploy_lines
        fresh = [line for line in lines if (line.timestamp, line.message) not in seen]
        if first:
            fresh = fresh[max(0, len(fresh) - tail) :] if tail >= 0 else fresh
            seen.update((line.timestamp, line.message) for line in lines)
        else:
            seen.update((line.timestamp, line.message) for line in fresh)
        for line in fresh:
            print(format_line(line, source.secrets), file=out, flush=True)
        first = False
        if not follow or stop():
            return
        await sleep(interval)
        if stop():
            return


def run_logs(
    cluster: Cluster,
    obj: Obj,
    out: TextIO,
    *,
    build: bool,
    tail: int,
    follow: bool,
    token_secret: str | None,
    api_url: str | None,
    env: Mapping[str, str] | None = None,
) -> None:
    env = os.environ if env is None else env
    source = resolve_source(cluster, obj, token_secret, env)
    url = api_url or env.get("RAILWAY_API_URL") or DEFAULT_API_URL

    async def main() -> None:
        async with RailwayClient(url=url, token=source.token, max_retries=2) as client:
            await stream_logs(client, source, out, build=build, tail=tail, follow=follow)

    try:
        asyncio.run(main())
    except RailwayError as exc:
        raise PluginError("Railway: " + redact(str(exc), source.secrets)) from None
