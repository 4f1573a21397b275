"""Synthetic build logs, deploy logs and metrics for emulated deployments.

Logs are derived from a deployment's timeline, so they grow as it advances and a failed
build ends with error lines. With the `echo_variables` fault the build log prints every
variable with its value, the way a careless build script would; tests use it to prove the
operator redacts what it relays.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from typing import Any

from claw_emulators.railway.deploys import Deployment

Line = tuple[float, str, str]  # (time, severity, message)


def rfc3339(moment: float) -> str:
    stamp = datetime.fromtimestamp(moment, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond:06d}000Z"


def _source(dep: Deployment) -> str:
    return dep.image or f"{dep.repo}@{dep.branch or 'main'}"


def _build_lines(dep: Deployment, status: str, now: float) -> list[Line]:
    queued, initializing, building, _deploying = dep.phase_ends()
    lines: list[Line] = [(dep.created_at, "info", f"Deployment {dep.id} queued")]
    if now >= queued:
        lines.append((queued, "info", "Initializing build environment"))
    if now < initializing:
        return lines
    lines.append((initializing, "info", f"Building from {_source(dep)}"))
    if dep.echo_variables:
        lines += [
            (initializing, "info", f"ENV {key}={value}") for key, value in sorted(dep.variables.items())
        ]
    if dep.image:
        lines.append((initializing, "info", f"Pulling image {dep.image}"))
    else:
        lines += [(initializing, "info", "Installing dependencies"), (initializing, "info", "Running build")]
    if dep.fail_build and now >= building:
        lines += [
            (building, "error", "ERROR: failed to solve: process did not complete successfully: exit code 1"),
            (building, "error", "Build failed"),
        ]
    elif now >= building and not dep.hang and status != "SKIPPED":
        lines.append((building, "info", "Build completed, pushing image"))
    return lines


def _deploy_lines(dep: Deployment, status: str, since: float, now: float) -> list[Line]:
    _, _, building, deploying = dep.phase_ends()
    if dep.hang or dep.fail_build or now < building:
        return []
    lines: list[Line] = [(building, "info", "Starting Container")]
    if now >= deploying:
        lines += [
            (deploying, "info", "OpenClaw gateway starting"),
            (deploying, "info", "Listening on 0.0.0.0:8080"),
        ]
        lines += [(moment, "info", "Container restarted") for moment in dep.restarts if moment <= now]
    if status == "CRASHED":
        lines += [
            (since, "error", "Error: process exited unexpectedly"),
            (since, "error", "Container crashed with exit code 1"),
        ]
    if status == "REMOVED":
        lines.append((since, "info", "Stopping Container"))
    return lines


def _render(lines: list[Line], limit: int | None, filter_text: str | None) -> list[dict[str, Any]]:
    if filter_text:
        lines = [line for line in lines if filter_text.lower() in line[2].lower()]
    if limit is not None:
        lines = lines[-limit:] if limit > 0 else []
    return [
        {"timestamp": rfc3339(moment), "severity": severity, "message": message}
        for moment, severity, message in lines
    ]


def build_logs(
    dep: Deployment, status: str, now: float, *, limit: int | None = None, filter_text: str | None = None
) -> list[dict[str, Any]]:
    return _render(_build_lines(dep, status, now), limit, filter_text)


def deploy_logs(
    dep: Deployment,
    status: str,
    since: float,
    now: float,
    *,
    limit: int | None = None,
    filter_text: str | None = None,
) -> list[dict[str, Any]]:
    return _render(_deploy_lines(dep, status, since, now), limit, filter_text)


# Typical values for a small chatbot: a little CPU, a few hundred MB, slow network.
_BASELINES = {
    "CPU_USAGE": 0.05,
    "CPU_USAGE_2": 0.05,
    "CPU_LIMIT": 8.0,
    "MEMORY_USAGE_GB": 0.35,
    "MEMORY_LIMIT_GB": 8.0,
    "NETWORK_RX_GB": 0.0004,
    "NETWORK_TX_GB": 0.0006,
    "DISK_USAGE_GB": 0.1,
    "EPHEMERAL_DISK_USAGE_GB": 0.05,
    "BACKUP_USAGE_GB": 0.0,
}
MAX_SAMPLES = 1000


def _jitter(key: str, ts: int) -> float:
    """A stable pseudo-random factor in [0.5, 1.5) so repeated reads agree."""
    digest = hashlib.sha256(f"{key}:{ts}".encode()).digest()
    return 0.5 + int.from_bytes(digest[:4], "big") / 2**32


def metrics(
    key: str,
    measurements: list[str],
    start: float,
    end: float,
    sample_seconds: int,
    limits: tuple[float | None, float | None] = (None, None),
) -> list[dict[str, Any]]:
    """Samples from `start` to `end` every `sample_seconds`, for each measurement."""
    step = max(1, sample_seconds)
    first = math.ceil(start / step) * step
    stamps = list(range(int(first), int(end) + 1, step))[-MAX_SAMPLES:]
    vcpus, memory_gb = limits
    results = []
    for measurement in measurements:
        if measurement == "CPU_LIMIT" and vcpus is not None:
            values = [{"ts": ts, "value": vcpus} for ts in stamps]
        elif measurement == "MEMORY_LIMIT_GB" and memory_gb is not None:
            values = [{"ts": ts, "value": memory_gb} for ts in stamps]
        else:
            base = _BASELINES.get(measurement, 0.0)
            values = [
                {"ts": ts, "value": round(base * _jitter(f"{key}:{measurement}", ts), 6)} for ts in stamps
            ]
        results.append({"measurement": measurement, "values": values})
    return results
