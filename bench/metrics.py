"""What the metrics cost, printed (never asserted: machines are noisy).

For a fleet of N instances: the time `metrics.instance_status` adds to a reconcile (the
first status of each instance, then a steady one), and the size and render time of the
/metrics page.

Usage: .venv/bin/python bench/metrics.py [--fleet 10000]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from claw_operator.support import metrics

PLANS = ("starter", "pro", "team")


def instance(i: int) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": f"tenant-{i % 50}",
            "name": f"bot-{i}",
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"planRef": PLANS[i % len(PLANS)]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "reason": "Available"}],
            "usage": {"cpu": 0.05, "memoryGB": 0.3, "networkEgressGB": 0.2, "estimatedCostUSD": 1.5},
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fleet", type=int, default=10_000)
    fleet = parser.parse_args().fleet
    bodies = [instance(i) for i in range(fleet)]
    started = time.perf_counter()
    for body in bodies:
        metrics.instance_status(body, body["status"])
    first = time.perf_counter()
    for body in bodies:
        metrics.instance_status(body, body["status"])
    steady = time.perf_counter()
    page = metrics.exposition()
    rendered = time.perf_counter()
    print(f"fleet: {fleet} instances")
    print(f"instance_status, first per instance:  {(first - started) / fleet * 1e6:8.1f} us")
    print(f"instance_status, steady per instance: {(steady - first) / fleet * 1e6:8.1f} us")
    print(f"/metrics page: {len(page) / 1024:.0f} KiB, rendered in {(rendered - steady) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
