"""What clients asked the Kubernetes emulator, for benchmarks: counters by verb and resource,
cheap at any request rate, and (only when asked for) the full log of requests."""

from __future__ import annotations

import collections
import dataclasses

VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One API request: verb is get|list|watch|create|update|patch|delete; resource is the
    plural (`clawinstances`), subresource "" or "status"."""

    verb: str
    resource: str
    subresource: str = ""
    namespace: str | None = None
    name: str | None = None
    label_selector: str | None = None
    field_selector: str | None = None

    @property
    def resource_key(self) -> str:
        """`clawinstances` or `clawinstances/status`."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


@dataclasses.dataclass
class RequestStats:
    """Counts of requests by (verb, resource[/subresource]); `keep_log` keeps every record."""

    keep_log: bool = False
    counts: collections.Counter[tuple[str, str]] = dataclasses.field(default_factory=collections.Counter)
    log: list[RequestRecord] = dataclasses.field(default_factory=list)

    def record(self, request: RequestRecord) -> None:
        self.counts[(request.verb, request.resource_key)] += 1
        if self.keep_log:
            self.log.append(request)

    def by_verb_and_resource(self) -> dict[tuple[str, str], int]:
        """`{("list", "clawinstances"): 1, ("patch", "clawinstances/status"): 12, ...}`."""
        return dict(sorted(self.counts.items()))

    def total(self, verb: str | None = None, resource: str | None = None) -> int:
        """Requests with this verb and/or resource key (`secrets`, `clawinstances/status`)."""
        return sum(
            count
            for (v, r), count in self.counts.items()
            if (verb is None or v == verb) and (resource is None or r == resource)
        )

    def reset(self) -> None:
        self.counts.clear()
        self.log.clear()
