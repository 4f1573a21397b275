"""Synthetic build logs, deploy logs, metrics and usage estimates for emulated deployments.

Logs are derived from a deployment's timeline, so they grow as it advances and a failed
build ends with error lines. With the `echo_variables` fault the build log prints every
variable with its value, the way a careless build script would; tests use it to prove the
operator redacts what it relays.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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


# Network measurements count bytes moved, so a sample holds what moved during its
# interval; an admin-set network value is given per day and scaled to the interval.
_PER_INTERVAL = {"NETWORK_RX_GB", "NETWORK_TX_GB"}
_DAY = 86400
# Minutes in a 30-day billing period, for estimates nobody set.
_PERIOD_MINUTES = 30 * 24 * 60


@dataclass
class UsageBook:
    """Admin-set usage, so tests can move figures: per service, the value of every sample
    of a measurement (CPU_USAGE in vCPUs, MEMORY_USAGE_GB in GB; NETWORK_*_GB in GB per
    day); per project, Railway's billing-period estimate of a measurement (CPU_USAGE in
    vCPU-minutes, MEMORY_USAGE_GB in GB-minutes, NETWORK_TX_GB in GB)."""

    services: dict[str, dict[str, float]] = field(default_factory=dict)
    estimates: dict[str, dict[str, float]] = field(default_factory=dict)

    def set_service(self, service_id: str, values: Mapping[str, float]) -> None:
        self.services.setdefault(service_id, {}).update({k: float(v) for k, v in values.items()})

    def set_estimate(self, project_id: str, values: Mapping[str, float]) -> None:
        self.estimates.setdefault(project_id, {}).update({k: float(v) for k, v in values.items()})

    def clear(self) -> None:
        self.services.clear()
        self.estimates.clear()


def metrics(
    key: str,
    measurements: list[str],
    start: float,
    end: float,
    sample_seconds: int,
    limits: tuple[float | None, float | None] = (None, None),
    values: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Samples from `start` to `end` every `sample_seconds`, for each measurement; `values`
    (a UsageBook entry) replaces the synthetic ones."""
    step = max(1, sample_seconds)
    first = math.ceil(start / step) * step
    stamps = list(range(int(first), int(end) + 1, step))[-MAX_SAMPLES:]
    vcpus, memory_gb = limits
    results = []
    for measurement in measurements:
        if values is not None and measurement in values:
            value = values[measurement] * step / _DAY if measurement in _PER_INTERVAL else values[measurement]
            series = [{"ts": ts, "value": value} for ts in stamps]
        elif measurement == "CPU_LIMIT" and vcpus is not None:
            series = [{"ts": ts, "value": vcpus} for ts in stamps]
        elif measurement == "MEMORY_LIMIT_GB" and memory_gb is not None:
            series = [{"ts": ts, "value": memory_gb} for ts in stamps]
        else:
            base = _BASELINES.get(measurement, 0.0)
            series = [
                {"ts": ts, "value": round(base * _jitter(f"{key}:{measurement}", ts), 6)} for ts in stamps
            ]
        results.append({"measurement": measurement, "tags": {}, "values": series})
    return results


def grouped_metrics(
    members: Iterable[dict[str, str]],
    group_by: list[str],
    measurements: list[str],
    start: float,
    end: float,
    sample_seconds: int,
    book: UsageBook,
) -> list[dict[str, Any]]:
    """Railway's `metrics(groupBy: ...)` over many service instances: one series per
    measurement and group, summing the members' samples. `members` are tag dicts with
    projectId, environmentId and serviceId; `group_by` names tag fields (e.g. serviceId)."""
    groups: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for member in members:
        groups.setdefault(tuple(member[tag] for tag in group_by), []).append(member)
    results: list[dict[str, Any]] = []
    for group_key, group in sorted(groups.items()):
        per_member = [
            metrics(
                f"{m['projectId']}:{m['environmentId']}:{m['serviceId']}",
                measurements,
                start,
                end,
                sample_seconds,
                values=book.services.get(m["serviceId"]),
            )
            for m in group
        ]
        for index, measurement in enumerate(measurements):
            totals: dict[int, float] = {}
            for member_series in per_member:
                for sample in member_series[index]["values"]:
                    totals[sample["ts"]] = totals.get(sample["ts"], 0.0) + sample["value"]
            results.append(
                {
                    "measurement": measurement,
                    "tags": dict(zip(group_by, group_key, strict=True)),
                    "values": [{"ts": ts, "value": round(v, 9)} for ts, v in sorted(totals.items())],
                }
            )
    return results


def estimated_usage(
    projects: Iterable[tuple[str, list[str]]], measurements: list[str], book: UsageBook
) -> list[dict[str, Any]]:
    """Railway's `estimatedUsage`: per project (id, its service ids) and measurement, the
    admin-set estimate, else the services' sample values over a whole billing period."""
    results: list[dict[str, Any]] = []
    for project_id, service_ids in projects:
        for measurement in measurements:
            estimate = book.estimates.get(project_id, {}).get(measurement)
            if estimate is None:
                estimate = 0.0
                for service_id in service_ids:
                    value = book.services.get(service_id, {}).get(
                        measurement, _BASELINES.get(measurement, 0.0)
                    )
                    estimate += value * 30 if measurement in _PER_INTERVAL else value * _PERIOD_MINUTES
            results.append({"projectId": project_id, "measurement": measurement, "estimatedValue": estimate})
    return results
