"""The deployment state machine, computed from timestamps rather than driven by timers.

A deployment's status at time `t` follows from when it was created, the phase durations,
the faults fixed at its creation, when it was stopped or restarted, and its newer
siblings on the same service instance. Nothing runs in the background, so an emulator can
be dropped at any moment without leaking tasks, and a test can move a clock instead of
sleeping.

Normal life: QUEUED -> INITIALIZING -> BUILDING -> DEPLOYING -> SUCCESS.
Supersession by a newer deployment of the same service instance:
- still QUEUED/INITIALIZING when the newer one is created -> SKIPPED (it never built);
- still BUILDING/DEPLOYING then -> REMOVED;
- SUCCESS (or CRASHED) -> REMOVED once a newer one reaches SUCCESS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

PHASES = ("QUEUED", "INITIALIZING", "BUILDING", "DEPLOYING")
IN_PROGRESS = frozenset(PHASES)
NEVER_BUILT = frozenset({"QUEUED", "INITIALIZING"})
RUNNING = frozenset({"SUCCESS", "CRASHED"})


@dataclass(frozen=True)
class PhaseDurations:
    """Seconds spent in each phase before the next one."""

    queued: float = 1.0
    initializing: float = 1.0
    building: float = 1.0
    deploying: float = 1.0

    @classmethod
    def uniform(cls, seconds: float) -> PhaseDurations:
        return cls(seconds, seconds, seconds, seconds)

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.queued, self.initializing, self.building, self.deploying)


@dataclass
class Deployment:
    """One deployment of a service instance, with the config it was made from."""

    id: str
    project_id: str
    environment_id: str
    service_id: str
    created_at: float
    phases: PhaseDurations
    image: str | None = None
    repo: str | None = None
    branch: str | None = None
    # The variables as they were when the deployment was made: a deployment keeps the
    # config it was built with, later variable changes need a new deployment.
    variables: dict[str, str] = field(default_factory=dict)
    fail_build: bool = False
    hang: bool = False
    crash_after: float | None = None
    echo_variables: bool = False
    stopped_at: float | None = None
    restarts: list[float] = field(default_factory=list)

    def phase_ends(self) -> list[float]:
        """The moments QUEUED, INITIALIZING, BUILDING and DEPLOYING end."""
        ends: list[float] = []
        moment = self.created_at
        for seconds in self.phases.as_tuple():
            moment += seconds
            ends.append(moment)
        return ends

    def natural(self, t: float) -> tuple[str, float]:
        """(status, since) at time t, ignoring stop and newer siblings."""
        start = self.created_at
        ends = self.phase_ends()
        for phase, end in zip(PHASES, ends, strict=True):
            if phase == "BUILDING" and (self.hang or self.fail_build):
                if self.hang or t < end:
                    return phase, start
                return "FAILED", end
            if t < end:
                return phase, start
            start = end
        up_since = max([start, *[r for r in self.restarts if r <= t]])
        if self.crash_after is not None and t >= up_since + self.crash_after:
            return "CRASHED", up_since + self.crash_after
        return "SUCCESS", up_since

    def success_at(self) -> float | None:
        """When this deployment first reaches SUCCESS on its own, if ever."""
        if self.hang or self.fail_build:
            return None
        return self.phase_ends()[-1]


def status_of(deployments: Sequence[Deployment], index: int, t: float) -> tuple[str, float]:
    """(status, since) of deployments[index] at t; `deployments` are one service instance's,
    oldest first."""
    dep = deployments[index]
    newer = deployments[index + 1 :]
    events: list[tuple[float, str]] = []
    if newer and newer[0].created_at <= t:
        cut = newer[0].created_at
        state, _ = dep.natural(cut)
        if dep.stopped_at is None or dep.stopped_at > cut:
            if state in NEVER_BUILT:
                events.append((cut, "SKIPPED"))
            elif state in IN_PROGRESS:
                events.append((cut, "REMOVED"))
    if dep.stopped_at is not None and dep.stopped_at <= t and dep.natural(dep.stopped_at)[0] != "FAILED":
        events.append((dep.stopped_at, "REMOVED"))
    # An older running deployment is replaced once a newer one is up. A newer deployment
    # only counts if it got there itself: not cut short by its own successor or a stop.
    for position, candidate in enumerate(newer):
        up = candidate.success_at()
        if up is None or up > t:
            continue
        following = newer[position + 1] if position + 1 < len(newer) else None
        if following is not None and following.created_at < up:
            continue
        if candidate.stopped_at is not None and candidate.stopped_at < up:
            continue
        if dep.natural(up)[0] in RUNNING:
            events.append((up, "REMOVED"))
        break
    if events:
        since, status = min(events)
        return status, since
    return dep.natural(t)


def instance_status(deployments: Sequence[Deployment], t: float) -> list[tuple[str, float]]:
    return [status_of(deployments, index, t) for index in range(len(deployments))]


def describe(dep: Deployment, status: str, since: float) -> dict[str, Any]:
    return {
        "id": dep.id,
        "status": status,
        "statusUpdatedAt": since,
        "createdAt": dep.created_at,
        "updatedAt": max([since, dep.created_at, *dep.restarts]),
    }
