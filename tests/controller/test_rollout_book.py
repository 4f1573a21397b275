"""The rollout book driven through whole rollouts by a simulated fleet: each instance
applies what the gate answers, deploys for a while, and succeeds or fails. Time is a
number moved by the test; nothing sleeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from claw_operator.api.conditions import EventReason, Reason
from claw_operator.controller.rollout_book import RolloutBook
from claw_operator.rules.revision import plan_revision

START = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
GOOD: dict[str, Any] = {"source": {"image": "ghcr.io/openclaw/openclaw:1"}}
DEPLOY_SECONDS = 30


def rfc(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Sim:
    """A fleet on plan "pro", as the k8s layer and the reconciler would drive the book."""

    n: int
    policy: dict[str, Any]
    bad_image: str | None = None
    bad_instances: frozenset[str] = frozenset()
    now: datetime = START
    book: RolloutBook = field(default_factory=RolloutBook)
    spec: dict[str, Any] = field(default_factory=dict)
    plan_status: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)
    deploys: dict[str, list[str]] = field(default_factory=dict)  # key -> images deployed
    finishing: dict[str, tuple[datetime, bool, str]] = field(default_factory=dict)
    events: list[tuple[str, str]] = field(default_factory=list)
    peak: int = 0

    def __post_init__(self) -> None:
        self.spec = {**GOOD, "rollout": self.policy}
        rev = plan_revision(self.spec)
        for i in range(self.n):
            key = f"ns/i{i:04d}"
            self.instances[key] = self._status(
                key, f"2026-01-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z", rev, "ready", START
            )
            self.instances[key]["status"]["deployment"] = {
                "lastSuccessfulId": f"{key}-0",
                "lastSuccessfulRevision": rev,
            }
        self.restart()
        self.step()

    def _status(self, key: str, created: str, rev: str, state: str, since: datetime) -> dict[str, Any]:
        ns, name = key.split("/")
        ready = "True" if state == "ready" else "False"
        deployed = {
            "ready": ("True", Reason.DEPLOYMENT_SUCCEEDED),
            "deploying": ("False", Reason.DEPLOYING),
            "failed": ("False", Reason.DEPLOY_FAILED),
            "rolledback": ("False", Reason.ROLLED_BACK),
        }[state]
        return {
            "metadata": {"namespace": ns, "name": name, "creationTimestamp": created},
            "spec": {"planRef": "pro"},
            "status": {
                "planRevision": rev,
                "conditions": [
                    {
                        "type": "Ready",
                        "status": ready,
                        "reason": deployed[1],
                        "lastTransitionTime": rfc(since),
                    },
                    {
                        "type": "Deployed",
                        "status": deployed[0],
                        "reason": deployed[1],
                        "lastTransitionTime": rfc(since),
                    },
                ],
            },
        }

    def restart(self) -> None:
        """A new operator process: a fresh book, fed from what Kubernetes stores."""
        self.book = RolloutBook()
        self.book.set_plan("pro", self._plan_body())
        for body in self.instances.values():
            self.book.set_instance(body)
        self.book.primed = True

    def _plan_body(self) -> dict[str, Any]:
        return {
            "metadata": {"name": "pro", "annotations": dict(self.annotations)},
            "spec": self.spec,
            "status": self.plan_status,
        }

    def change_plan(self, **fields: Any) -> None:
        self.spec = {**self.spec, **fields}
        self.book.set_plan("pro", self._plan_body())

    def resume(self) -> None:
        self.annotations["claw.io/rolloutResumedAt"] = rfc(self.now)
        self.book.set_plan("pro", self._plan_body())

    def _set(self, key: str, rev: str, state: str, last_good: tuple[str, str] | None = None) -> None:
        body = self.instances[key]
        deployment = dict(body["status"].get("deployment") or {})
        if last_good:
            deployment = {"lastSuccessfulId": last_good[0], "lastSuccessfulRevision": last_good[1]}
        self.instances[key] = self._status(key, body["metadata"]["creationTimestamp"], rev, state, self.now)
        self.instances[key]["status"]["deployment"] = deployment
        self.book.set_instance(self.instances[key])

    def step(self) -> None:
        """One round: the coordinator decides and writes; every instance reconciles."""
        update = self.book.decide("pro", self.now)
        assert update is not None
        if update.status:
            self.plan_status = {**self.plan_status, **update.status}
            self.book.committed(update)
            self.events += [(e.reason, e.message) for e in update.events]
            self.book.set_plan("pro", self._plan_body())  # the watch echoes the write
        for key, (at, ok, rev) in list(self.finishing.items()):
            if at <= self.now:
                del self.finishing[key]
                if ok:
                    self._set(key, rev, "ready", (f"{key}-{len(self.deploys[key])}", rev))
                else:
                    self._set(key, rev, "failed")
        for key, body in self.instances.items():
            choice = self.book.plan_for("ns", key.split("/")[1], "pro", self.spec)
            running = body["status"]["planRevision"]
            if choice.rollback_to is not None and running != choice.revision:
                self.deploys.setdefault(key, []).append("rollback")
                self._set(key, choice.revision, "rolledback")
                self.finishing[key] = (self.now + timedelta(seconds=DEPLOY_SECONDS), True, choice.revision)
            elif choice.revision != running:
                image = choice.spec["source"]["image"]
                self.deploys.setdefault(key, []).append(image)
                self._set(key, choice.revision, "deploying")
                ok = image != self.bad_image and key not in self.bad_instances
                self.finishing[key] = (self.now + timedelta(seconds=DEPLOY_SECONDS), ok, choice.revision)
        new_rev = plan_revision(self.spec)
        moving = sum(1 for (_, _, rev) in self.finishing.values() if rev == new_rev)
        self.peak = max(self.peak, moving)

    def run(self, seconds: int, every: int = 5) -> None:
        for _ in range(seconds // every):
            self.now += timedelta(seconds=every)
            self.step()

    @property
    def rollout(self) -> dict[str, Any]:
        return dict(self.plan_status.get("rollout") or {})

    def touched(self) -> set[str]:
        return {k for k, images in self.deploys.items() if images}


POLICY = {"maxConcurrent": 5, "canary": 1, "healthyForSeconds": 20, "maxFailures": 1, "autoRollback": True}


def test_a_rollout_completes_in_waves_without_deploying_anyone_twice() -> None:
    sim = Sim(30, POLICY)
    assert sim.rollout["phase"] == "Complete" and sim.events == []
    sim.change_plan(source={"image": "ghcr.io/openclaw/openclaw:2"})
    sim.run(40)
    # The canary alone went first.
    assert sim.touched() == {"ns/i0000"}
    sim.run(1200)
    assert sim.rollout["phase"] == "Complete"
    assert sim.rollout["updated"] == 30
    assert all(images == ["ghcr.io/openclaw/openclaw:2"] for images in sim.deploys.values())
    assert len(sim.deploys) == 30
    assert sim.peak == 5
    assert [reason for reason, _ in sim.events] == [EventReason.ROLLOUT_STARTED, EventReason.ROLLOUT_COMPLETE]
    conditions = {c["type"]: c for c in sim.plan_status["conditions"]}
    assert conditions["RolloutComplete"]["status"] == "True"
    assert [e["revision"] for e in sim.plan_status["revisionHistory"]] == [plan_revision(sim.spec)]


def test_a_canary_failure_halts_with_nothing_else_touched_and_rolls_it_back() -> None:
    sim = Sim(20, POLICY, bad_image="ghcr.io/openclaw/openclaw:bad")
    old = plan_revision(sim.spec)
    sim.change_plan(source={"image": "ghcr.io/openclaw/openclaw:bad"})
    sim.run(600)
    assert sim.rollout["phase"] == "Halted"
    assert sim.rollout["failedInstances"] == ["ns/i0000"]
    assert sim.touched() == {"ns/i0000"}
    assert sim.deploys["ns/i0000"] == ["ghcr.io/openclaw/openclaw:bad", "rollback"]
    canary = sim.instances["ns/i0000"]["status"]
    assert canary["planRevision"] == old
    assert canary["conditions"][0]["status"] == "True"
    halted = [m for r, m in sim.events if r == EventReason.ROLLOUT_HALTED]
    assert len(halted) == 1 and "ns/i0000" in halted[0]
    # Both revisions are remembered while instances run the old one.
    assert {e["revision"] for e in sim.plan_status["revisionHistory"]} == {old, plan_revision(sim.spec)}

    # A fixed plan supersedes the halted rollout and completes.
    sim.change_plan(source={"image": "ghcr.io/openclaw/openclaw:3"})
    sim.run(1500)
    assert sim.rollout["phase"] == "Complete"
    assert all(images[-1] == "ghcr.io/openclaw/openclaw:3" for images in sim.deploys.values())


def test_a_mid_fleet_failure_halts_within_one_wave_and_resume_completes() -> None:
    sim = Sim(40, POLICY, bad_instances=frozenset({"ns/i0007"}))
    sim.change_plan(source={"image": "ghcr.io/openclaw/openclaw:2"})
    sim.run(900)
    assert sim.rollout["phase"] == "Halted"
    # Nothing beyond the failed instance's wave started: at most maxConcurrent after the canary.
    order = sorted(sim.instances)
    touched = sim.touched()
    assert touched <= set(order[: 1 + 2 * 5])
    assert "ns/i0007" in touched and sim.deploys["ns/i0007"][-1] == "rollback"
    before = len(touched)
    sim.run(300)
    assert len(sim.touched()) == before

    sim.bad_instances = frozenset()  # the cause is fixed
    sim.resume()
    sim.run(1500)
    assert sim.rollout["phase"] == "Complete"
    assert sim.deploys["ns/i0007"] == [
        "ghcr.io/openclaw/openclaw:2",
        "rollback",
        "ghcr.io/openclaw/openclaw:2",
    ]
    assert all(len(images) == 1 for key, images in sim.deploys.items() if key != "ns/i0007")


def test_an_operator_restart_mid_rollout_continues_without_deploying_anyone_twice() -> None:
    sim = Sim(30, POLICY)
    sim.change_plan(source={"image": "ghcr.io/openclaw/openclaw:2"})
    sim.run(100)
    for _ in range(100):  # on to the middle of a wave
        if len(sim.finishing) == 5:
            break
        sim.run(5)
    assert sim.rollout["phase"] == "Progressing"
    moving = set(sim.finishing)
    sim.restart()
    sim.step()
    assert set(sim.finishing) == moving  # nothing new started on top of those in flight
    sim.run(1500)
    assert sim.rollout["phase"] == "Complete"
    assert all(images == ["ghcr.io/openclaw/openclaw:2"] for images in sim.deploys.values())
    assert sim.peak <= 5
    assert [r for r, _ in sim.events].count(EventReason.ROLLOUT_STARTED) == 1


def test_nothing_moves_before_the_book_is_primed() -> None:
    sim = Sim(3, POLICY)
    sim.change_plan(source={"image": "ghcr.io/openclaw/openclaw:2"})
    sim.book = RolloutBook()
    sim.book.set_plan("pro", sim._plan_body())
    for body in sim.instances.values():
        sim.book.set_instance(body)
    assert sim.book.decide("pro", sim.now) is None
    choice = sim.book.plan_for("ns", "i0001", "pro", sim.spec)
    assert choice.spec["source"] == GOOD["source"] and choice.note
