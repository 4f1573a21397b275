"""The reconciler's side of plan rollouts, against the in-memory Railway port: it applies
what the gate chooses, records the revision it runs and the one of its last good
deployment, says when it waits, and rolls back when told (Deployed reason RolledBack while
the rollback deploys, Running on the old revision after)."""

from __future__ import annotations

from collections.abc import Mapping

from claw_operator.api.conditions import Reason
from claw_operator.controller import PlanChoice
from claw_operator.rules.revision import plan_revision
from tests.controller.fakes import IMAGE, World, plan_spec

BAD = "ghcr.io/openclaw/openclaw:bad"


def gate(choice: PlanChoice) -> object:
    def plan_for(namespace: str, name: str, plan_name: str, plan_spec: Mapping[str, object]) -> PlanChoice:
        return choice

    return plan_for


async def test_the_instance_records_the_revision_it_runs_and_its_last_good_one() -> None:
    w = World()
    await w.running()
    old = plan_revision(w.plans["pro"])
    assert w.status["planRevision"] == old
    assert w.status["deployment"]["lastSuccessfulRevision"] == old
    assert w.status["deployment"]["lastSuccessfulId"] == w.railway.only_service().latest.id


async def test_a_waiting_instance_keeps_the_old_spec_and_says_so() -> None:
    w = World()
    await w.running()
    old_spec = dict(w.plans["pro"])
    old = plan_revision(old_spec)
    w.plans["pro"] = plan_spec(source={"image": BAD})
    note = f"waiting for rollout of plan revision {plan_revision(w.plans['pro'])}"
    w.plan_for = gate(PlanChoice(old_spec, old, note))  # type: ignore[assignment]
    await w.run()
    assert w.railway.writes == []
    assert w.railway.only_service().image == IMAGE
    assert w.status["planRevision"] == old and w.status["phase"] == "Running"
    assert note in w.status["message"]
    assert w.condition("Deployed")["status"] == "True" and note in w.condition("Deployed")["message"]


async def test_a_rollback_deploys_the_last_good_deployment_once_then_runs_the_old_revision() -> None:
    w = World()
    await w.running()
    old_spec = dict(w.plans["pro"])
    old = plan_revision(old_spec)
    good = w.railway.only_service().latest
    assert good is not None
    # The plan moves on; this instance takes the new revision and its deploy fails.
    w.plans["pro"] = plan_spec(source={"image": BAD})
    new = plan_revision(w.plans["pro"])
    await w.run()
    w.railway.set_status("FAILED")
    await w.run()
    assert w.status["planRevision"] == new and w.condition("Deployed")["reason"] == Reason.DEPLOY_FAILED
    assert w.status["deployment"]["lastSuccessfulRevision"] == old
    w.railway.calls.clear()

    note = f"rolled back: plan revision {new} failed on this instance and its rollout is halted"
    w.plan_for = gate(PlanChoice(old_spec, old, note, rollback_to=good.id))  # type: ignore[assignment]
    await w.run()
    assert w.railway.writes == ["rollback"]
    assert w.railway.only_service().image == IMAGE
    assert w.status["planRevision"] == old
    assert (w.condition("Deployed")["status"], w.condition("Deployed")["reason"]) == (
        "False",
        Reason.ROLLED_BACK,
    )
    assert w.status["phase"] == "Deploying"
    assert [e.reason for e in w.events if e.reason == Reason.ROLLED_BACK] == [Reason.ROLLED_BACK]

    # The gate may still say "roll back" until it sees the new status: nothing happens twice.
    # (The old revision's settings and limits are applied again: no deploy comes of that.)
    deployments = len(w.railway.only_service().deployments)
    w.railway.set_status("BUILDING")
    await w.run()
    assert w.railway.writes.count("rollback") == 1
    assert set(w.railway.writes) <= {"rollback", "configure_service"}
    assert len(w.railway.only_service().deployments) == deployments
    assert w.condition("Deployed")["reason"] == Reason.ROLLED_BACK
    w.railway.set_status("SUCCESS")
    w.plan_for = gate(PlanChoice(old_spec, old, "keeps plan revision"))  # type: ignore[assignment]
    await w.run()
    assert w.railway.writes.count("rollback") == 1
    assert len(w.railway.only_service().deployments) == deployments
    assert w.status["phase"] == "Running"
    assert w.condition("Deployed")["reason"] == Reason.DEPLOYMENT_SUCCEEDED
    assert w.status["deployment"]["lastSuccessfulRevision"] == old
