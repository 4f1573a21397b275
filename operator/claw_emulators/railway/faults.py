"""Fault injection for the Railway emulator.

Two families of faults:
- request faults act on a whole HTTP request before it reaches GraphQL (5xx, throttling,
  latency, an invalidated token). They can be scoped to one token.
- deployment faults are decided when a deployment is created and stay with it (a failed
  build, a crash after start, a deploy that never finishes, variables echoed into logs).
  They can be scoped to a project-name, service-name and/or image substring (a bad
  release: every deployment of that image fails, a rollback to another image does not).

Faults with a `count` apply that many times and then retire; `fraction` makes a request
fault apply to a random share of requests (seeded, so runs are reproducible).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

FaultKind = Literal[
    "fail_build",
    "crash_after_start",
    "hang_deploy",
    "echo_variables",
    "http_error",
    "throttle",
    "latency",
    "invalid_token",
]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
DEPLOYMENT_FAULTS = frozenset({"fail_build", "crash_after_start", "hang_deploy", "echo_variables"})
REQUEST_FAULTS = frozenset({"http_error", "throttle", "latency", "invalid_token"})


def fingerprint(token: str) -> str:
    """A short, stable name for a token that reveals nothing about it."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


@dataclass
class Fault:
    """One injected fault. Parameters not relevant to `kind` are ignored.

    - fail_build: the deployment FAILs at the end of BUILDING, with error lines in its build log.
    - crash_after_start: SUCCESS, then CRASHED `seconds` later (again after each restart).
    - hang_deploy: the deployment stays BUILDING forever.
    - echo_variables: the build log prints every variable of the service with its value.
    - http_error: answer HTTP `status` (502 or 503 or any 5xx) instead of serving.
    - throttle: `mode` "http" answers 429 with Retry-After `seconds` (default 1);
      "graphql" answers 200 with a "You're doing that too quickly" error.
    - latency: sleep `seconds` before answering.
    - invalid_token: the token (or every token when `token` is unset) is "Not Authorized".
    """

    kind: FaultKind
    project: str | None = None
    service: str | None = None
    image: str | None = None
    token_fingerprint: str | None = None
    seconds: float = 0.0
    status: int = 503
    mode: Literal["http", "graphql"] = "graphql"
    fraction: float | None = None
    count: int | None = None
    id: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_FLOAT_PARAMS = {"seconds", "fraction"}
_INT_PARAMS = {"status", "count"}
_STR_PARAMS = {"project", "service", "image", "mode"}


def fault_from_mapping(data: dict[str, Any]) -> Fault:
    """Build a fault from admin-API JSON or parsed CLI parameters. A raw `token` is turned
    into its fingerprint at once and never kept."""
    kind = data.get("kind")
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
    known = _FLOAT_PARAMS | _INT_PARAMS | _STR_PARAMS | {"kind", "token", "token_fingerprint"}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown fault parameters: {', '.join(sorted(unknown))}")
    fault = Fault(kind=kind)
    for key in _STR_PARAMS & set(data):
        setattr(fault, key, None if data[key] is None else str(data[key]))
    for key in _FLOAT_PARAMS & set(data):
        setattr(fault, key, None if data[key] is None else float(data[key]))
    for key in _INT_PARAMS & set(data):
        setattr(fault, key, None if data[key] is None else int(data[key]))
    if data.get("token"):
        fault.token_fingerprint = fingerprint(str(data["token"]))
    elif data.get("token_fingerprint"):
        fault.token_fingerprint = str(data["token_fingerprint"])
    if fault.mode not in ("http", "graphql"):
        raise ValueError("throttle mode must be 'http' or 'graphql'")
    if fault.kind == "throttle" and fault.mode == "http" and not fault.seconds:
        fault.seconds = 1.0
    return fault


def parse_fault_flag(text: str) -> Fault:
    """Parse the CLI form `KIND[:key=value,key=value]`, e.g. `http_error:status=502,fraction=0.1`."""
    kind, _, params = text.partition(":")
    data: dict[str, Any] = {"kind": kind}
    for pair in filter(None, params.split(",")):
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"fault parameter {pair!r} is not key=value")
        data[key.strip()] = value.strip()
    return fault_from_mapping(data)


@dataclass
class DeploymentOutcome:
    """What the active faults decided for one new deployment."""

    fail_build: bool = False
    hang: bool = False
    crash_after: float | None = None
    echo_variables: bool = False


@dataclass
class FaultBook:
    """The active faults, consulted by the HTTP layer and by deployment creation."""

    seed: int = 0
    faults: list[Fault] = field(default_factory=list)
    _next_id: int = 1
    _random: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def add(self, fault: Fault) -> Fault:
        fault.id = self._next_id
        self._next_id += 1
        self.faults.append(fault)
        return fault

    def clear(self, kind: str | None = None) -> int:
        before = len(self.faults)
        self.faults = [f for f in self.faults if kind is not None and f.kind != kind]
        return before - len(self.faults)

    def _fires(self, fault: Fault) -> bool:
        """Whether this fault applies now; consumes one use of a counted fault."""
        if fault.count is not None and fault.count <= 0:
            return False
        if fault.fraction is not None and self._random.random() >= fault.fraction:
            return False
        if fault.count is not None:
            fault.count -= 1
        return True

    def _retire_spent(self) -> None:
        self.faults = [f for f in self.faults if f.count is None or f.count > 0]

    def request_faults(self, token_fingerprint: str | None) -> list[Fault]:
        """Request faults that fire for this request, in the order they were added."""
        fired = [
            fault
            for fault in self.faults
            if fault.kind in REQUEST_FAULTS
            and (fault.token_fingerprint is None or fault.token_fingerprint == token_fingerprint)
            and self._fires(fault)
        ]
        self._retire_spent()
        return fired

    def deployment_outcome(
        self, project_name: str, service_name: str, image: str | None = None
    ) -> DeploymentOutcome:
        outcome = DeploymentOutcome()
        for fault in self.faults:
            if fault.kind not in DEPLOYMENT_FAULTS:
                continue
            if fault.project is not None and fault.project not in project_name:
                continue
            if fault.service is not None and fault.service not in service_name:
                continue
            if fault.image is not None and (image is None or fault.image not in image):
                continue
            if not self._fires(fault):
                continue
            if fault.kind == "fail_build":
                outcome.fail_build = True
            elif fault.kind == "hang_deploy":
                outcome.hang = True
            elif fault.kind == "crash_after_start":
                outcome.crash_after = fault.seconds
            elif fault.kind == "echo_variables":
                outcome.echo_variables = True
        self._retire_spent()
        return outcome
