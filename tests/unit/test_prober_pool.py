"""The health prober pool: background probes at the plan's interval, results handed out
once, and a pass asked for only when a result would change status."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from claw_operator.api.models import HealthCheck
from claw_operator.fleet.health import ProberPool


class App:
    """Instances' health endpoints; `down` ones answer 503."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.hits: dict[str, int] = {}

    async def get(self, url: str, within: float) -> int:
        host = urlsplit(url).hostname or ""
        self.hits[host] = self.hits.get(host, 0) + 1
        return 503 if host in self.down else 200


def quick_check(threshold: int = 2) -> HealthCheck:
    # Intervals below the API's 5 s minimum keep the test short; validation is not the subject.
    return HealthCheck.model_construct(
        path="/health", intervalSeconds=0.02, timeoutSeconds=1, failureThreshold=threshold
    )


async def until(condition: object, *, rounds: int = 2000) -> None:
    for _ in range(rounds):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never met")


async def test_results_reach_the_engine_only_when_status_would_change() -> None:
    app = App()
    asked: list[str] = []
    pool = ProberPool(
        "http://{domain}{path}",
        on_result=asked.append,
        concurrency=4,
        get=app.get,
        tick=0.005,  # the checks here are due every 20 ms
    )
    check = quick_check(threshold=2)
    try:
        first = await pool.probe_if_due("ns/a", "https://a.example", check)
        assert first is not None and first.ok, "a new target is probed on the spot"
        assert await pool.probe_if_due("ns/a", "https://a.example", check) is None, "handed out once"

        # Healthy and staying so: probes go on in the background, nobody is asked for a pass.
        await until(lambda: app.hits.get("a.example", 0) >= 6)
        assert asked == []

        # Failing: every failure up to failureThreshold matters, later ones do not.
        app.down.add("a.example")
        await until(lambda: len(asked) >= 2)
        failing = await pool.probe_if_due("ns/a", "https://a.example", check)
        assert failing is not None and not failing.ok and failing.error == "HTTP 503"
        hits = app.hits["a.example"]
        await until(lambda: app.hits["a.example"] >= hits + 5)
        assert len(asked) <= 3, "a fleet failing steadily does not keep asking for passes"

        # Back: one more pass for the recovery.
        before = len(asked)
        app.down.clear()
        await until(lambda: len(asked) == before + 1)
        back = await pool.probe_if_due("ns/a", "https://a.example", check)
        assert back is not None and back.ok
    finally:
        await pool.aclose()


async def test_forget_stops_probing_and_tasks_do_not_grow_with_targets() -> None:
    app = App()
    pool = ProberPool(
        "http://{domain}{path}",
        on_result=lambda key: None,
        concurrency=3,
        get=app.get,
        tick=0.005,  # the checks here are due every 20 ms
    )
    check = quick_check()
    try:
        await pool.probe_if_due("ns/x", "https://x.example", check)
        tasks = len(asyncio.all_tasks())
        for n in range(300):
            await pool.probe_if_due(f"ns/{n}", f"https://i{n}.example", check)
        assert len(asyncio.all_tasks()) == tasks
        await until(lambda: all(app.hits.get(f"i{n}.example") for n in range(300)))
        assert len(asyncio.all_tasks()) == tasks
        pool.forget("ns/x")
        seen = app.hits.get("x.example", 0)
        await until(lambda: app.hits.get("i0.example", 0) >= 5)
        assert app.hits.get("x.example", 0) <= seen + 1
    finally:
        await pool.aclose()
