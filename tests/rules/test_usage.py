"""The usage figures and the >= 5% rule for writing them."""

from __future__ import annotations

import pytest

from claw_operator.rules.usage import UsageFigures, average, cost_usd, moved, total, usage_to_write

WRITTEN = {"cpu": 0.5, "memoryGB": 1.0, "networkEgressGB": 2.0, "estimatedCostUSD": 10.0}


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("cpu", 0.52, False),  # 4%
        ("cpu", 0.525, True),  # 5%
        ("memoryGB", 0.95, True),  # -5%
        ("memoryGB", 0.96, False),
        ("networkEgressGB", 2.099, False),
        ("estimatedCostUSD", 10.5, True),
    ],
)
def test_a_figure_must_move_by_five_percent(field: str, value: float, expected: bool) -> None:
    assert moved(WRITTEN, {**WRITTEN, field: value}) is expected


def test_first_figures_missing_figures_and_zero() -> None:
    assert moved(None, WRITTEN)
    assert moved({"cpu": 0.5}, {"cpu": 0.5, "memoryGB": 1.0})  # a figure appears
    assert not moved(WRITTEN, {"cpu": None, "memoryGB": 1.0})  # nothing new to say
    assert not moved({"cpu": 0.0}, {"cpu": 0.0})
    assert moved({"cpu": 0.0}, {"cpu": 0.001})
    assert not moved(WRITTEN, dict(WRITTEN))


def test_a_figure_that_disappears_keeps_its_written_value() -> None:
    # Alone, a gap is nothing to write.
    assert usage_to_write(WRITTEN, {**WRITTEN, "estimatedCostUSD": None}) is None
    # Written with another figure that moved, the gap keeps the old value instead of erasing it.
    sample = {
        "cpu": 0.9,
        "memoryGB": 1.0,
        "networkEgressGB": None,
        "estimatedCostUSD": None,
        "sampledAt": "t2",
    }
    assert usage_to_write(WRITTEN, sample) == {**WRITTEN, "cpu": 0.9, "sampledAt": "t2"}
    assert usage_to_write(None, {"cpu": 0.1, "memoryGB": None}) == {"cpu": 0.1, "memoryGB": None}


def test_figures_from_samples_and_estimates() -> None:
    assert average([0.25, 0.75]) == 0.5 and average([]) is None
    assert total([0.1, 0.2, 0.3]) == 0.6 and total([]) is None
    # 10,000 vCPU-minutes, 10,000 GB-minutes, 2 GB out at Railway's rates.
    assert cost_usd({"CPU_USAGE": 10_000, "MEMORY_USAGE_GB": 10_000, "NETWORK_TX_GB": 2}) == 7.04
    assert cost_usd({"DISK_USAGE_GB": 5}) is None
    assert UsageFigures(cpu=1.0).as_status() == {
        "cpu": 1.0,
        "memoryGB": None,
        "networkEgressGB": None,
        "estimatedCostUSD": None,
    }
