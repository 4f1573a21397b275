"""`claw-operator run`'s logs: readable text or JSON lines, no per-request HTTP lines by
default, and bad settings named."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from claw_operator.support.logging_setup import CHATTY_LOGGERS, configure_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    chatty = {name: logging.getLogger(name).level for name in CHATTY_LOGGERS}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, old in chatty.items():
        logging.getLogger(name).setLevel(old)


def _emit_sample() -> None:
    logging.getLogger("claw_operator.test").info("reconciled %s", "tenant-a/bot")
    logging.getLogger("httpx").info('HTTP Request: POST http://railway/graphql/v2 "HTTP/1.1 200 OK"')
    logging.getLogger("kopf.objects").warning(
        "Handler 'reconcile' failed temporarily: retrying.",
        extra={
            "k8s_ref": {
                "apiVersion": "claw.io/v1alpha1",
                "kind": "ClawInstance",
                "name": "bot",
                "namespace": "tenant-a",
            }
        },
    )
    try:
        raise ValueError("bad")
    except ValueError:
        logging.getLogger("claw_operator.test").exception("failed")


def test_json_lines_parse_and_carry_the_object() -> None:
    stream = io.StringIO()
    configure_logging({"CLAW_LOG_FORMAT": "json"}, stream=stream)
    _emit_sample()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [entry["message"] for entry in lines] == [
        "reconciled tenant-a/bot",
        "Handler 'reconcile' failed temporarily: retrying.",
        "failed",
    ]
    for entry in lines:
        assert {"time", "level", "logger", "message"} <= entry.keys()
    assert lines[0]["level"] == "INFO" and lines[0]["logger"] == "claw_operator.test"
    assert lines[1]["object"] == {
        "apiVersion": "claw.io/v1alpha1",
        "kind": "ClawInstance",
        "name": "bot",
        "namespace": "tenant-a",
    }
    assert "ValueError: bad" in lines[2]["exception"]


def test_http_request_lines_are_absent_by_default() -> None:
    stream = io.StringIO()
    configure_logging({}, stream=stream)
    _emit_sample()
    text = stream.getvalue()
    assert "reconciled tenant-a/bot" in text
    assert "HTTP Request" not in text


@pytest.mark.parametrize("env,verbose", [({"CLAW_LOG_LEVEL": "DEBUG"}, False), ({}, True)])
def test_debug_brings_http_lines_back(env: dict[str, str], verbose: bool) -> None:
    stream = io.StringIO()
    configure_logging(env, verbose=verbose, stream=stream)
    _emit_sample()
    assert "HTTP Request" in stream.getvalue()


def test_warning_level_hides_info() -> None:
    stream = io.StringIO()
    configure_logging({"CLAW_LOG_LEVEL": "warning"}, stream=stream)
    _emit_sample()
    assert "reconciled" not in stream.getvalue() and "failed" in stream.getvalue()


@pytest.mark.parametrize(
    "env,field",
    [({"CLAW_LOG_LEVEL": "LOUD"}, "CLAW_LOG_LEVEL"), ({"CLAW_LOG_FORMAT": "xml"}, "CLAW_LOG_FORMAT")],
)
def test_bad_settings_are_named(env: dict[str, str], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        configure_logging(env, stream=io.StringIO())
