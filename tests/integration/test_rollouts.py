"""Plan rollouts through the whole operator (Kopf, the fleet engine, the rollout
coordinator) against the Kubernetes and Railway emulators (issue #10, "Done when")."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf

from claw_emulators.kubernetes import KubernetesServer
from claw_emulators.railway.server import RailwayEmulator
from claw_operator.api.conditions import EventReason, Reason
from claw_operator.k8s.engine import Engine
from claw_operator.k8s.handlers import build_registry
from claw_operator.rules.revision import plan_revision
from tests.fixtures.kubernetes import eventually, run_kopf
from tests.fixtures.operator import PLAN_IMAGE, operator_settings, plan

GOOD, NEXT, BAD = PLAN_IMAGE, "ghcr.io/openclaw/openclaw:2026.3.0", "ghcr.io/openclaw/openclaw:bad"
NS = "tenant-a"


@contextlib.asynccontextmanager
async def operator(k8s: KubernetesServer, emu: RailwayEmulator) -> AsyncIterator[Engine]:
    memo = kopf.Memo()
    registry = build_registry(lambda: Engine(settings=operator_settings(emu)), plan_status_interval=0.5)
    async with run_kopf(k8s, registry, memo=memo):
        yield memo.claw


def rollout_plan(**policy: Any) -> dict[str, Any]:
    rollout = {
        "maxConcurrent": 2,
        "canary": 1,
        "healthyForSeconds": 1,
        "maxFailures": 1,
        "autoRollback": True,
    }
    return {
        "apiVersion": "claw.io/v1alpha1",
        "kind": "ClawPlan",
        "metadata": {"name": "pro"},
        "spec": plan(
            rollout={**rollout, **policy}, limits={"maxInstances": 50, "maxChannels": 4, "bandwidthGB": 5}
        ),
    }


def claw(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "claw.io/v1alpha1",
        "kind": "ClawInstance",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"planRef": "pro", **spec},
    }


class Fleet:
    def __init__(self, k8s: KubernetesServer, emu: RailwayEmulator, names: list[str]) -> None:
        self.k8s, self.emu, self.names = k8s, emu, names

    def obj(self, name: str) -> dict[str, Any]:
        return self.k8s.get("clawinstances", NS, name) or {}

    def status(self, name: str) -> dict[str, Any]:
        return self.obj(name).get("status") or {}

    def plan_status(self) -> dict[str, Any]:
        return (self.k8s.get("clawplans", None, "pro") or {}).get("status") or {}

    def rollout(self) -> dict[str, Any]:
        return self.plan_status().get("rollout") or {}

    def running_on(self, name: str, revision: str) -> bool:
        status = self.status(name)
        return status.get("phase") == "Running" and status.get("planRevision") == revision

    def all_running_on(self, revision: str) -> bool:
        return all(self.running_on(n, revision) for n in self.names)

    def service(self, name: str) -> Any:
        service_id = (self.status(name).get("railway") or {}).get("serviceId")
        return next(i for (sid, _), i in self.emu.state.instances.items() if sid == service_id)

    def images(self, name: str) -> list[str | None]:
        """Every deployment the instance's service had, oldest first, by image."""
        return [d.image for d in self.service(name).deployments]

    def touched(self, image: str) -> set[str]:
        return {n for n in self.names if image in self.images(n)}

    def set_image(self, image: str) -> None:
        self.k8s.patch("clawplans", None, "pro", {"spec": {"source": {"image": image}}})

    def plan_events(self) -> list[dict[str, Any]]:
        return [
            e
            for e in self.k8s.events(None, involved_name="pro")
            if e["involvedObject"].get("kind") == "ClawPlan"
        ]

    def revision(self) -> str:
        return plan_revision((self.k8s.get("clawplans", None, "pro") or {})["spec"])

    async def start(self, **policy: Any) -> str:
        self.k8s.apply(rollout_plan(**policy))
        for name in self.names:
            self.k8s.apply(claw(name))
        revision = self.revision()
        await eventually(lambda: self.all_running_on(revision), within=60, message="fleet never ran")
        await eventually(lambda: self.rollout().get("phase") == "Complete", within=20)
        return revision


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


async def test_a_canary_failure_halts_with_nothing_else_touched_and_rolls_back(
    k8s: KubernetesServer, railway_emulator: RailwayEmulator
) -> None:
    fleet = Fleet(k8s, railway_emulator, [f"i{n}" for n in range(4)])
    async with operator(k8s, railway_emulator):
        old = await fleet.start()
        railway_emulator.add_fault(kind="fail_build", image=":bad")
        fleet.set_image(BAD)
        await eventually(lambda: fleet.rollout().get("phase") == "Halted", within=30)
        assert fleet.rollout()["failedInstances"] == [f"{NS}/i0"]
        # Auto rollback: the canary runs its last good deployment again, on the old revision.
        await eventually(lambda: fleet.running_on("i0", old), within=30, message="canary never rolled back")
        assert fleet.service("i0").image == GOOD
        assert fleet.images("i0") == [GOOD, BAD, GOOD]
        rollbacks = [r for r in railway_emulator.requests if r.operation_name == "DeploymentRollback"]
        assert len(rollbacks) == 1
        reasons = [e["reason"] for e in k8s.events(NS, involved_name="i0")]
        assert Reason.ROLLED_BACK in reasons
        # Nothing else was touched, and the others say why they keep the old revision.
        assert fleet.touched(BAD) == {"i0"}
        for name in fleet.names[1:]:
            assert fleet.images(name) == [GOOD]
            status = fleet.status(name)
            assert status["planRevision"] == old and condition(status, "Deployed")["status"] == "True"
        halted = condition(fleet.plan_status(), "RolloutComplete")
        assert (halted["status"], halted["reason"]) == ("False", "Halted")
        events = fleet.plan_events()
        assert [e["reason"] for e in events if e["reason"].startswith("Rollout")] == [
            EventReason.ROLLOUT_STARTED,
            EventReason.ROLLOUT_HALTED,
        ]
        assert f"{NS}/i0" in next(e["message"] for e in events if e["reason"] == EventReason.ROLLOUT_HALTED)


async def test_a_mid_fleet_failure_halts_within_one_wave_and_resume_after_a_fix_completes(
    k8s: KubernetesServer, railway_emulator: RailwayEmulator
) -> None:
    fleet = Fleet(k8s, railway_emulator, [f"i{n}" for n in range(7)])
    async with operator(k8s, railway_emulator):
        await fleet.start()
        railway_emulator.add_fault(kind="fail_build", image=":2026.3", project=f"{NS}-i3")
        fleet.set_image(NEXT)
        new = fleet.revision()
        await eventually(lambda: fleet.rollout().get("phase") == "Halted", within=60)
        assert fleet.rollout()["failedInstances"] == [f"{NS}/i3"]
        # The canary, then waves of maxConcurrent 2: nothing beyond the failed one's wave.
        assert fleet.touched(NEXT) <= {"i0", "i1", "i2", "i3", "i4"}
        await eventually(
            lambda: fleet.images("i3")[-1] == GOOD and fleet.status("i3").get("phase") == "Running"
        )

        railway_emulator.clear_faults()
        halted_at = datetime.fromisoformat(fleet.rollout()["haltedAt"].replace("Z", "+00:00"))
        resume = max(datetime.now(UTC), halted_at + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        k8s.patch(
            "clawplans", None, "pro", {"metadata": {"annotations": {"claw.io/rolloutResumedAt": resume}}}
        )
        await eventually(lambda: fleet.rollout().get("phase") == "Complete", within=60)
        assert fleet.all_running_on(new)
        assert fleet.images("i3") == [GOOD, NEXT, GOOD, NEXT]
        assert all(fleet.images(n) == [GOOD, NEXT] for n in fleet.names if n != "i3")
        done = condition(fleet.plan_status(), "RolloutComplete")
        assert (done["status"], done["reason"]) == ("True", "Complete")
        assert fleet.rollout()["updated"] == 7


async def test_an_operator_restart_mid_rollout_continues_without_deploying_anyone_twice(
    k8s: KubernetesServer, railway_emulator: RailwayEmulator
) -> None:
    fleet = Fleet(k8s, railway_emulator, [f"i{n}" for n in range(6)])
    async with operator(k8s, railway_emulator):
        await fleet.start()
        fleet.set_image(NEXT)
        new = fleet.revision()
        await eventually(lambda: len(fleet.touched(NEXT)) >= 3, within=60)
        assert fleet.rollout().get("phase") == "Progressing"
    async with operator(k8s, railway_emulator):
        await eventually(lambda: fleet.rollout().get("phase") == "Complete", within=60)
        assert fleet.all_running_on(new)
    assert all(fleet.images(n) == [GOOD, NEXT] for n in fleet.names)
    started = [e for e in fleet.plan_events() if e["reason"] == EventReason.ROLLOUT_STARTED]
    assert len(started) == 1


async def test_an_instance_spec_change_during_a_rollout_applies_at_once_and_is_not_a_step(
    k8s: KubernetesServer, railway_emulator: RailwayEmulator
) -> None:
    fleet = Fleet(k8s, railway_emulator, ["i0", "i1", "i2"])
    async with operator(k8s, railway_emulator):
        old = await fleet.start(healthyForSeconds=3600)  # the canary never counts as done here
        fleet.set_image(NEXT)
        new = fleet.revision()
        await eventually(lambda: fleet.running_on("i0", new), within=30)
        waiting = fleet.status("i2")
        assert waiting["planRevision"] == old
        assert f"waiting for rollout of plan revision {new}" in waiting["message"]
        assert condition(waiting, "Deployed")["status"] == "True"
        before = dict(fleet.rollout())

        k8s.patch("clawinstances", NS, "i2", {"spec": {"env": [{"name": "CUSTOM", "value": "x"}]}})
        await eventually(lambda: fleet.service("i2").variables.get("CUSTOM") == "x", within=30)
        await eventually(lambda: fleet.running_on("i2", old) and len(fleet.images("i2")) == 2, within=30)
        assert fleet.images("i2") == [GOOD, GOOD]  # deployed again with its own change, old image
        assert fleet.images("i1") == [GOOD]
        after = fleet.rollout()
        assert (after["phase"], after["pending"], after["failed"]) == (
            "Progressing",
            before["pending"],
            before["failed"],
        )
