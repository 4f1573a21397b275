"""The quota answer is the same from a QuotaBook (places computed once) as from a list."""

from __future__ import annotations

import random

from claw_operator.rules.quota import InstanceEntry, QuotaBook, quota_problem


def test_book_and_list_agree_on_every_instance() -> None:
    rng = random.Random(3)
    entries = [
        InstanceEntry(
            namespace=rng.choice(["a", "b"]),
            name=f"i{n}",
            created=f"2026-11-{rng.randint(1, 3):02d}T00:00:00Z",
            plan=rng.choice(["pro", "free"]),
            subscription_id=rng.choice([None, None, "sub-1", "sub-2"]),
            managed=rng.random() < 0.7,
            deleting=rng.random() < 0.1,
        )
        for n in range(300)
    ]
    book = QuotaBook(entries)
    problems = 0
    for entry in entries:
        for plan in (entry.plan, "other"):
            arguments = {
                "namespace": entry.namespace,
                "name": entry.name,
                "plan_name": plan,
                "max_instances": 20,
                "max_managed": 120,
            }
            answer = quota_problem(entries, **arguments)  # type: ignore[arg-type]
            assert quota_problem(book, **arguments) == answer  # type: ignore[arg-type]
            problems += answer is not None
    assert problems > 0, "the sample must exercise both quotas"
