"""`claw-operator run`'s own settings: the metrics port and the log setup, and clear
errors naming the setting when they are wrong."""

from __future__ import annotations

import pytest

from claw_operator.k8s.runner import DEFAULT_METRICS_PORT, cli_main, metrics_port_setting
from tests.unit.test_logging_setup import restore_logging

__all__ = ["restore_logging"]  # autouse: cli_main configures the root logger


def test_metrics_port_flag_env_and_default() -> None:
    assert metrics_port_setting(None, {}) == DEFAULT_METRICS_PORT == 9090
    assert metrics_port_setting(None, {"CLAW_METRICS_PORT": "9191"}) == 9191
    assert metrics_port_setting(18200, {"CLAW_METRICS_PORT": "9191"}) == 18200


@pytest.mark.parametrize("value", ["http", "70000", "-1"])
def test_bad_metrics_port_is_named(value: str) -> None:
    with pytest.raises(ValueError, match="port"):
        metrics_port_setting(None, {"CLAW_METRICS_PORT": value})


@pytest.mark.parametrize(
    ("env", "message"),
    [({"CLAW_LOG_FORMAT": "xml"}, "CLAW_LOG_FORMAT"), ({"CLAW_METRICS_PORT": "nope"}, "CLAW_METRICS_PORT")],
)
def test_run_refuses_bad_settings_before_starting(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exit_info:
        cli_main([])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
