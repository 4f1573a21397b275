"""Secret scrubbing, variable assembly, naming and fingerprints."""

from __future__ import annotations

import json

from claw_operator.rules import variables as var
from claw_operator.rules.naming import MAX_PROJECT_NAME, project_marker, project_name
from claw_operator.support.fingerprint import fingerprint
from claw_operator.support.redact import REDACTED, redact, truncate_utf8
from tests.fixtures.common import canary


def test_redact_replaces_every_secret_longest_first() -> None:
    secret, inner = canary("outer-secret"), canary("outer")
    text = f"token={secret} and {inner}"
    assert redact(text, {inner, secret}) == f"token={REDACTED} and {REDACTED}"
    assert redact("x=ab", {"ab"}) == "x=ab", "very short values are not worth shredding text for"


def test_truncate_keeps_the_end_within_the_byte_budget() -> None:
    text = "line\n" * 1000 + "the end"
    cut = truncate_utf8(text, 2048)
    assert len(cut.encode()) <= 2048 and cut.endswith("the end")


def test_channel_variables_and_config_json() -> None:
    out = var.channel_variables("telegram", {"token": "t0k", "botId": "42"})
    assert out["TELEGRAM_BOT_TOKEN"] == "t0k" and out["TELEGRAM_BOT_ID"] == "42"
    assert json.loads(out["TELEGRAM_CONFIG"]) == {"token": "t0k", "botId": "42"}


def test_reserved_names() -> None:
    assert var.reserved_env_reason("OPENCLAW_X") and var.reserved_env_reason("PLAN_MAX")
    assert var.reserved_env_reason("WECOM_SECRET") and var.reserved_env_reason("DINGTALK_CONFIG")
    assert var.reserved_env_reason("MY_VAR") is None


def test_layers_later_win_and_railway_variables_are_never_written() -> None:
    merged = var.assemble(
        plan_variables={"A": "plan", "B": "plan"},
        template_variables={"B": "template", "RAILWAY_X": "no"},
        system={"NODE_ENV": "production"},
        channels={},
        env={"A": "env"},
    )
    assert merged == {"A": "env", "B": "template", "NODE_ENV": "production"}


def test_project_names_are_deterministic_and_bounded() -> None:
    assert project_name("claw", "tenant-a", "bot") == "claw-tenant-a-bot"
    long_a = project_name("claw", "n" * 40, "a" * 40)
    long_b = project_name("claw", "n" * 40, "a" * 39 + "b")
    assert len(long_a) <= MAX_PROJECT_NAME and long_a != long_b
    assert project_marker("prod", "ns", "x") == "claw-operator prod/ns/x"


def test_fingerprints_hide_values_and_detect_change() -> None:
    key = b"k"
    a = fingerprint(key, {"S": canary("fp")})
    assert canary("fp") not in a
    assert a == fingerprint(key, {"S": canary("fp")}) != fingerprint(key, {"S": canary("fp2")})
    assert a != fingerprint(b"other", {"S": canary("fp")})
