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


class QuotaBook(list[InstanceEntry]):
    """The entries, with every instance's places computed once (a sort per change of the
    fleet instead of one per pass: at 10,000 instances the passes of a steady fleet would
    otherwise spend their time ordering it). Pass it wherever a list of entries goes."""

    def __init__(self, entries: Iterable[InstanceEntry] = ()) -> None:
        super().__init__(entries)
        self.by_name: dict[tuple[str, str], InstanceEntry] = {}
        self.group_place: dict[tuple[str, str], int] = {}
        self.managed_place: dict[tuple[str, str], int] = {}
        groups: dict[tuple[str | None, str, str], list[InstanceEntry]] = {}
        managed: list[InstanceEntry] = []
        for entry in self:
            self.by_name.setdefault((entry.namespace, entry.name), entry)
            if entry.deleting:
                continue
            group = (
                (entry.subscription_id, "", "")
                if entry.subscription_id
                else (None, entry.namespace, entry.plan)
            )
            groups.setdefault(group, []).append(entry)
            if entry.managed:
                managed.append(entry)
        for members in groups.values():
            for index, entry in enumerate(sorted(members, key=lambda e: e.place)):
                self.group_place[(entry.namespace, entry.name)] = index
        for index, entry in enumerate(sorted(managed, key=lambda e: e.place)):
            self.managed_place[(entry.namespace, entry.name)] = index


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
    if isinstance(entries, QuotaBook):
        me = entries.by_name.get((namespace, name))
    else:
        me = next((e for e in entries if e.namespace == namespace and e.name == name), None)
    if me is None:  # not yet indexed: judge it as the newest
        return None
    if isinstance(entries, QuotaBook) and me.plan == plan_name:
        return _problem(
            me,
            entries.group_place.get((namespace, name)),
            entries.managed_place.get((namespace, name)) if me.managed else None,
            namespace=namespace,
            plan_name=plan_name,
            max_instances=max_instances,
            max_managed=max_managed,
        )
    if me.subscription_id:
        group = [e for e in entries if e.subscription_id == me.subscription_id]
    else:
        group = [
            e for e in entries if not e.subscription_id and e.namespace == namespace and e.plan == plan_name
        ]
    return _problem(
        me,
        _position(group, namespace, name),
        _position([e for e in entries if e.managed], namespace, name) if me.managed else None,
        namespace=namespace,
        plan_name=plan_name,
        max_instances=max_instances,
        max_managed=max_managed,
    )


def _problem(
    me: InstanceEntry,
    group_position: int | None,
    managed_position: int | None,
    *,
    namespace: str,
    plan_name: str,
    max_instances: int,
    max_managed: int,
) -> str | None:
    if me.subscription_id:
        scope = f"subscription {me.subscription_id}"
    else:
        scope = f"namespace {namespace} on plan {plan_name}"
    if group_position is not None and group_position >= max_instances:
        return (
            f"Quota exceeded: plan {plan_name} allows {max_instances} instance(s) for {scope} and older "
            f"instances hold them; delete one or raise limits.maxInstances."
        )
    if managed_position is not None and managed_position >= max_managed:
        return (
            f"Quota exceeded: the cluster allows {max_managed} Managed instances "
            f"(CLAW_MAX_MANAGED_INSTANCES); delete one or raise the cap."
        )
    return None
