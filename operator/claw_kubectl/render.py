"""Text for people: `kubectl claw status`, `list` and `rollout status`. Pure functions of
the objects, so they are tested without a cluster."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, get_args

from claw_operator.api.models import Phase
from claw_operator.rules.progress import progress_of
from claw_operator.support.clock import parse_time

Obj = Mapping[str, Any]
BAR_WIDTH = 20
# The order a fleet moves through (as API.md lists the phases), for `list`; unknown phases go last.
PHASE_ORDER = list(get_args(Phase))


def progress_bar(percent: int, width: int = BAR_WIDTH) -> str:
    percent = max(0, min(100, percent))
    filled = round(width * percent / 100)
    return "[" + "#" * filled + "-" * (width - filled) + f"] {percent:3d}%"


def age(value: Any, now: datetime | None = None) -> str:
    """kubectl's short ages: 42s, 5m, 3h, 2d; the raw value when it is not a time."""
    moment = parse_time(str(value)) if value else None
    if moment is None:
        return str(value or "")
    seconds = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [list(map(str, header))] + [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def _condition(status: Obj, type_: str) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), None)


def _progress(status: Obj) -> int:
    deployment = status.get("deployment") or {}
    if isinstance(deployment.get("progress"), int):
        return int(deployment["progress"])
    if deployment.get("status"):
        return progress_of(str(deployment["status"])) or 0
    return 100 if status.get("phase") == "Running" else 0


def status_text(obj: Obj, events: Sequence[Obj] = (), last_events: int = 5) -> str:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    annotations = meta.get("annotations") or {}
    lines = [
        f"Name:        {meta.get('name')}",
        f"Namespace:   {meta.get('namespace')}",
        f"Plan:        {spec.get('planRef', '')}",
    ]
    phase = status.get("phase") or "Unknown"
    deployment = status.get("deployment") or {}
    line = f"Phase:       {phase:<13}{progress_bar(_progress(status))}"
    remaining = deployment.get("estimatedSecondsRemaining")
    if remaining:
        line += f"  (~{int(remaining)}s remaining)"
    lines.append(line)
    if annotations.get("claw.io/paused") == "true":
        lines.append("Paused:      yes (annotation claw.io/paused): the operator leaves it alone")
    if spec.get("suspend"):
        lines.append("Suspended:   yes (spec.suspend)")
    health = status.get("health") or {}
    if health:
        text = str(health.get("status", "Unknown"))
        if health.get("since"):
            text += f" since {health['since']}"
        failures = health.get("consecutiveFailures")
        if failures:
            text += f", {failures} consecutive failures"
        if health.get("lastError"):
            text += f" (last error: {health['lastError']})"
        lines.append(f"Health:      {text}")
    else:
        lines.append("Health:      Unknown")
    lines.append(f"URL:         {status.get('url') or '<none>'}")
    if status.get("message"):
        lines.append(f"Message:     {status['message']}")
    railway = status.get("railway") or {}
    if railway:
        lines.append("Railway:")
        for key in ("projectId", "projectName", "environmentId", "serviceId", "serviceName"):
            if railway.get(key):
                lines.append(f"  {key + ':':<15}{railway[key]}")
    if deployment:
        text = f"{deployment.get('id', '')} {deployment.get('status', '')}".strip()
        if deployment.get("startedAt"):
            text += f", started {deployment['startedAt']}"
        if deployment.get("finishedAt"):
            text += f", finished {deployment['finishedAt']}"
        lines.append(f"Deployment:  {text}")
    usage = status.get("usage") or {}
    if usage:
        parts = []
        if usage.get("cpu") is not None:
            parts.append(f"cpu {usage['cpu']} vCPU")
        if usage.get("memoryGB") is not None:
            parts.append(f"memory {usage['memoryGB']} GB")
        if usage.get("networkEgressGB") is not None:
            parts.append(f"egress {usage['networkEgressGB']} GB (30 days)")
        if usage.get("estimatedCostUSD") is not None:
            parts.append(f"estimated ${usage['estimatedCostUSD']}")
        sampled = f" (sampled {usage['sampledAt']})" if usage.get("sampledAt") else ""
        lines.append(f"Usage:       {', '.join(parts)}{sampled}")
    conditions = status.get("conditions") or []
    lines.append("Conditions:")
    if conditions:
        rows = [[c.get("type"), c.get("status"), c.get("reason"), c.get("message", "")] for c in conditions]
        lines += ["  " + row for row in table(["TYPE", "STATUS", "REASON", "MESSAGE"], rows).splitlines()]
    else:
        lines.append("  <none yet: the operator has not reported status>")
    lines.append("Events:")
    recent = list(events)[-last_events:]
    if recent:
        rows = [
            [
                age(e.get("lastTimestamp") or e.get("eventTime")),
                e.get("type"),
                e.get("reason"),
                e.get("message", ""),
            ]
            for e in recent
        ]
        lines += ["  " + row for row in table(["LAST SEEN", "TYPE", "REASON", "MESSAGE"], rows).splitlines()]
    else:
        lines.append("  <none>")
    return "\n".join(lines)


def health_word(status: Obj) -> str:
    return str((status.get("health") or {}).get("status") or "")


def list_text(instances: Sequence[Obj], all_namespaces: bool = False) -> str:
    if not instances:
        return "No ClawInstances found."
    rank = {phase: i for i, phase in enumerate(PHASE_ORDER)}

    def key(obj: Obj) -> tuple[int, str, str, str]:
        status, meta = obj.get("status") or {}, obj.get("metadata") or {}
        phase = str(status.get("phase") or "")
        return rank.get(phase, len(rank)), phase, str(meta.get("namespace")), str(meta.get("name"))

    rows = []
    for obj in sorted(instances, key=key):
        meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
        row = [
            meta.get("name"),
            spec.get("planRef"),
            status.get("phase") or "",
            f"{_progress(status)}%",
            health_word(status),
            status.get("url") or "",
        ]
        rows.append(([meta.get("namespace")] if all_namespaces else []) + row)
    header = (["NAMESPACE"] if all_namespaces else []) + [
        "NAME",
        "PLAN",
        "PHASE",
        "PROGRESS",
        "HEALTH",
        "URL",
    ]
    by_phase = Counter(str((o.get("status") or {}).get("phase") or "Unknown") for o in instances)
    by_plan = Counter(str((o.get("spec") or {}).get("planRef") or "") for o in instances)
    summary = [
        "",
        f"{len(instances)} instances",
        "  by phase: "
        + ", ".join(
            f"{p} {n}" for p, n in sorted(by_phase.items(), key=lambda kv: (rank.get(kv[0], 99), kv[0]))
        ),
        "  by plan:  " + ", ".join(f"{p} {n}" for p, n in sorted(by_plan.items())),
    ]
    return table(header, rows) + "\n" + "\n".join(summary)


def rollout_text(plan: Obj) -> str:
    meta, status = plan.get("metadata") or {}, plan.get("status") or {}
    rollout = status.get("rollout") or {}
    lines = [f"Plan:        {meta.get('name')}", f"Revision:    {status.get('revision') or '<none>'}"]
    if not rollout:
        condition = _condition(status, "RolloutComplete")
        lines.append(
            "Rollout:     "
            + (
                f"{condition.get('reason')}: {condition.get('message', '')}"
                if condition
                else "<none reported yet>"
            )
        )
        return "\n".join(lines)
    updated, pending, failed = (int(rollout.get(k) or 0) for k in ("updated", "pending", "failed"))
    total = updated + pending + failed
    percent = round(100 * updated / total) if total else 100
    lines += [
        f"Rollout:     {rollout.get('phase', 'Unknown')} (revision {rollout.get('revision', '')})",
        f"Progress:    {progress_bar(percent)}  {updated} updated, {pending} pending, {failed} failed",
    ]
    if rollout.get("message"):
        lines.append(f"Message:     {rollout['message']}")
    if rollout.get("phase") == "Halted":
        lines.append(
            f"Resume it with: kubectl claw rollout resume {meta.get('name')} (sets claw.io/rolloutResumedAt)"
        )
    return "\n".join(lines)
