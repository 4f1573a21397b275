from claw_operator.rules.revision import plan_revision

BASE = {"source": {"image": "ghcr.io/openclaw/openclaw:1"}, "variables": {"A": "1"}, "replicas": 1}


def test_revision_is_stable_across_key_order_and_display_fields() -> None:
    reordered = {"replicas": 1, "variables": {"A": "1"}, "source": {"image": "ghcr.io/openclaw/openclaw:1"}}
    assert plan_revision(BASE) == plan_revision(reordered)
    assert plan_revision(BASE) == plan_revision({**BASE, "displayName": "Pro", "limits": {"maxInstances": 9}})
    assert plan_revision(BASE) == plan_revision({**BASE, "rollout": {"maxConcurrent": 3}, "region": None})
    assert len(plan_revision(BASE)) == 8


def test_every_field_that_reaches_instances_changes_the_revision() -> None:
    changes = {
        "source": {"image": "ghcr.io/openclaw/openclaw:2"},
        "variables": {"A": "2"},
        "resources": {"vCPUs": 2},
        "replicas": 2,
        "region": "us-west2",
        "healthCheck": {"path": "/ready"},
    }
    seen = {plan_revision(BASE)}
    for field, value in changes.items():
        seen.add(plan_revision({**BASE, field: value}))
    assert len(seen) == len(changes) + 1
