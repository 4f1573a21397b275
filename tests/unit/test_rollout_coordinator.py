"""The rollout coordinator's I/O decisions: who writes a plan's status and posts its
events (the owner of the plan's shard), and that every replica wakes the instances a
rollout lets move."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pytest

from claw_operator.api.conditions import EventReason
from claw_operator.controller.rollout import revision_fields
from claw_operator.controller.rollout_book import PlanUpdate, RolloutBook
from claw_operator.k8s.rollouts import PAUSE_PER_DECIDING, SETTLE_SECONDS, RolloutCoordinator
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


async def test_deciding_a_large_fleet_keeps_to_a_small_share_of_the_loop() -> None:
    """A decision looks at every instance of the plan; the pause before the next round
    grows with what the last one took, so a 10,000-instance plan changing all the time
    cannot keep the event loop busy deciding."""
    now = [0.0]

    class SlowBook(RolloutBook):
        def decide(self, name: str, at: datetime) -> PlanUpdate | None:
            now[0] += 0.05  # as if it took 50 ms
            return super().decide(name, at)

    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        await asyncio.sleep(0)

    slow = SlowBook()
    slow.set_plan("pro", {"metadata": {"name": "pro"}, "spec": NEW_SPEC, "status": {}})
    slow.primed = True

    async def write(name: str, patch: Mapping[str, Any]) -> Mapping[str, Any]:
        return patch

    coordinator = RolloutCoordinator(
        slow, write, lambda *event: None, lambda key: None, timer=lambda: now[0], sleep=sleep
    )
    coordinator.start()
    try:
        for _ in range(3):
            coordinator.mark(["pro"])
            for _ in range(20):
                await asyncio.sleep(0)
    finally:
        await coordinator.aclose()
    assert pauses[0] == SETTLE_SECONDS, "the first round only waits for the burst to settle"
    assert len(pauses) >= 3 and all(p >= 0.05 * PAUSE_PER_DECIDING for p in pauses[1:])
