"""The rollout coordinator's I/O decisions: who writes a plan's status and posts its
events (the owner of the plan's shard), and that every replica wakes the instances a
rollout lets move."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from claw_operator.api.conditions import EventReason
from claw_operator.controller.rollout import revision_fields
from claw_operator.controller.rollout_book import RolloutBook
from claw_operator.k8s.rollouts import RolloutCoordinator
from claw_operator.rules.revision import plan_revision

OLD_SPEC: dict[str, Any] = {"source": {"image": "ghcr.io/openclaw/openclaw:1"}}
NEW_SPEC: dict[str, Any] = {"source": {"image": "ghcr.io/openclaw/openclaw:2"}}
OLD, NEW = plan_revision(OLD_SPEC), plan_revision(NEW_SPEC)


def book() -> RolloutBook:
    b = RolloutBook()
    b.set_plan(
        "pro",
        {
            "metadata": {"name": "pro", "generation": 2},
            "spec": NEW_SPEC,
            "status": {
                "revision": OLD,
                "rollout": {"revision": OLD, "phase": "Complete"},
                "revisionHistory": [
                    {"revision": NEW, **revision_fields(NEW_SPEC)},
                    {"revision": OLD, **revision_fields(OLD_SPEC)},
                ],
            },
        },
    )
    for i in range(3):
        b.set_instance(
            {
                "metadata": {
                    "namespace": "ns",
                    "name": f"i{i}",
                    "creationTimestamp": f"2026-01-01T00:00:0{i}Z",
                },
                "spec": {"planRef": "pro"},
                "status": {
                    "planRevision": OLD,
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "Available",
                            "lastTransitionTime": "2026-01-01T01:00:00Z",
                        }
                    ],
                },
            }
        )
    b.primed = True
    return b


@pytest.mark.parametrize("owner", [True, False])
async def test_only_the_owner_writes_and_posts_but_every_replica_wakes(owner: bool) -> None:
    writes: list[dict[str, Any]] = []
    events: list[str] = []
    woken: list[str] = []

    async def write(name: str, changes: dict[str, Any]) -> Mapping[str, Any] | None:
        writes.append(changes)
        return {"status": changes}

    coordinator = RolloutCoordinator(
        book(),
        write,
        lambda name, type_, reason, message: events.append(reason),
        woken.append,
        writes_for=lambda plan: owner,
    )
    update = await coordinator.decide("pro")
    assert update is not None and update.decision.phase == "Progressing"
    assert woken == ["ns/i0"]
    if owner:
        assert len(writes) == 1 and writes[0]["rollout"]["revision"] == NEW
        assert writes[0]["instances"] == 3
        assert events == [EventReason.ROLLOUT_STARTED]
    else:
        assert writes == [] and events == []
