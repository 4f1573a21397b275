"""Instance quotas (API.md, Quota). Places go by creationTimestamp, then name, so the
oldest objects keep theirs and the answer is the same on every replica and restart."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class InstanceEntry:
    namespace: str
    name: str
    created: str  # RFC 3339; sorts chronologically as text
    plan: str
    subscription_id: str | None
    managed: bool
    deleting: bool = False

    @property
    def place(self) -> tuple[str, str, str]:
        return (self.created, self.name, self.namespace)


def _position(entries: Iterable[InstanceEntry], namespace: str, name: str) -> int | None:
    """How many live entries come before this one: a count, not a sort, since every pass
    of every instance asks (places are unique: name and namespace break ties)."""
    live = [e for e in entries if not e.deleting]
    me = next((e for e in live if e.namespace == namespace and e.name == name), None)
    if me is None:
        return None
    created, place = me.created, me.place
    return sum(1 for e in live if e.created <= created and e.place < place)


def quota_problem(
    entries: list[InstanceEntry],
    *,
    namespace: str,
    name: str,
    plan_name: str,
    max_instances: int,
    max_managed: int,
) -> str | None:
    """A sentence saying which quota this instance is over, or None."""
    me = next((e for e in entries if e.namespace == namespace and e.name == name), None)
    if me is None:  # not yet indexed: judge it as the newest
        return None
    if me.subscription_id:
        group = [e for e in entries if e.subscription_id == me.subscription_id]
        scope = f"subscription {me.subscription_id}"
    else:
        group = [
            e for e in entries if not e.subscription_id and e.namespace == namespace and e.plan == plan_name
        ]
        scope = f"namespace {namespace} on plan {plan_name}"
    position = _position(group, namespace, name)
    if position is not None and position >= max_instances:
        return (
            f"Quota exceeded: plan {plan_name} allows {max_instances} instance(s) for {scope} and older "
            f"instances hold them; delete one or raise limits.maxInstances."
        )
    if me.managed:
        position = _position([e for e in entries if e.managed], namespace, name)
        if position is not None and position >= max_managed:
            return (
                f"Quota exceeded: the cluster allows {max_managed} Managed instances "
                f"(CLAW_MAX_MANAGED_INSTANCES); delete one or raise the cap."
            )
    return None
