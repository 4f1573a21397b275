"""status.usage through the controller: the sampler answers the UsagePort from one request
per workspace, and status changes only when a figure moved by 5% or more."""

from __future__ import annotations

from typing import Any

from claw_operator.fleet.usage import UsageSampler
from tests.fixtures.operator import Harness, instance
from tests.fixtures.railway import TEST_WORKSPACE

NAMES = ("bot-a", "bot-b", "bot-c")


def running(status: dict[str, Any]) -> bool:
    return status.get("phase") == "Running"


async def test_status_usage_from_one_request_per_workspace(harness: Harness) -> None:
    h = harness
    sampler = UsageSampler(period_seconds=600)
    h.runtime.usage = sampler
    for name in NAMES:
        h.apply(instance(name))
        await h.until(name, running)
    client = h.runtime.handle_for(None, "hobby").client
    for name in NAMES:
        ids = h.status(name)["railway"]
        # What the wiring does once an instance has ids (see fleet/usage.py).
        sampler.follow(
            client,  # type: ignore[arg-type]
            service_id=ids["serviceId"],
            project_id=ids["projectId"],
            workspace_id=TEST_WORKSPACE,
            instance=("tenant-a", name),
        )
        h.emu.state.usage.set_service(ids["serviceId"], {"CPU_USAGE": 0.5, "MEMORY_USAGE_GB": 1.0})
        h.emu.state.usage.set_estimate(ids["projectId"], {"CPU_USAGE": 10_000, "MEMORY_USAGE_GB": 10_000})

    before = len(h.emu.requests)
    await sampler.sample_once()
    assert [r.operation_name for r in h.emu.requests[before:]] == ["WorkspaceUsage"]
    for name in NAMES:
        await h.reconcile(name)
        usage = h.status(name)["usage"]
        assert (usage["cpu"], usage["memoryGB"], usage["estimatedCostUSD"]) == (0.5, 1.0, 6.94)
        assert usage["sampledAt"]

    # A 4% move is not worth a write; a 10% move is.
    first = {name: dict(h.status(name)["usage"]) for name in NAMES}
    for name in NAMES:
        h.emu.state.usage.set_service(h.status(name)["railway"]["serviceId"], {"CPU_USAGE": 0.52})
    await sampler.sample_once()
    for name in NAMES:
        await h.reconcile(name)
        assert h.status(name)["usage"] == first[name]
    for name in NAMES:
        h.emu.state.usage.set_service(h.status(name)["railway"]["serviceId"], {"CPU_USAGE": 0.55})
    await sampler.sample_once()
    for name in NAMES:
        await h.reconcile(name)
        assert h.status(name)["usage"]["cpu"] == 0.55
    assert sum(r.operation_name == "WorkspaceUsage" for r in h.emu.requests) == 3
