"""The plugin's pure parts: log following and redaction, the verbs' patches, --for and
--timeout parsing, and the progress bar."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from claw_kubectl import actions, render
from claw_kubectl.logs import LogSource, stream_logs
from claw_operator.railway.types import LogLine
from tests.fixtures.common import CANARY_PREFIX, canary

SECRET = canary("unit-log-secret")


class GrowingLog:
    """Deploy logs that grow by one line per read."""

    def __init__(self) -> None:
        self.lines = [
            LogLine(message="line 1", timestamp="t1"),
            LogLine(message=f"key={SECRET}", timestamp="t2"),
        ]
        self.reads = 0

    async def deployment_logs(
        self, deployment_id: str, limit: int = 50
    ) -> tuple[list[LogLine], list[LogLine]]:
        self.reads += 1
        if self.reads > 1:
            self.lines.append(LogLine(message=f"line {self.reads + 1}", timestamp=f"t{self.reads + 1}"))
        return [LogLine(message="build only")], self.lines[-limit:]


async def _no_sleep(_: float) -> None:
    return None


async def test_tail_then_follow_prints_each_line_once_redacted() -> None:
    reader, out = GrowingLog(), io.StringIO()
    source = LogSource(token="tok-unit", secrets=frozenset({SECRET, "tok-unit"}), deployment_id="d1")
    await stream_logs(
        reader, source, out, build=False, tail=1, follow=True, stop=lambda: reader.reads >= 3, sleep=_no_sleep
    )
    assert out.getvalue().splitlines() == ["t2 key=[REDACTED]", "t3 line 3", "t4 line 4"]
    assert CANARY_PREFIX not in out.getvalue()


async def test_build_logs_without_follow_read_once() -> None:
    reader, out = GrowingLog(), io.StringIO()
    source = LogSource(token="tok-unit", secrets=frozenset(), deployment_id="d1")
    await stream_logs(reader, source, out, build=True, tail=10, follow=False, sleep=_no_sleep)
    assert out.getvalue() == "build only\n" and reader.reads == 1


def test_verb_patches() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert actions.patch_for("restart", now) == {
        "metadata": {"annotations": {"claw.io/restartedAt": "2026-01-02T03:04:05Z"}}
    }
    assert actions.patch_for("redeploy", now) == {
        "metadata": {"annotations": {"claw.io/redeployRequestedAt": "2026-01-02T03:04:05Z"}}
    }
    assert actions.patch_for("suspend") == {"spec": {"suspend": True}}
    assert actions.patch_for("resume") == {"spec": {"suspend": False}}
    assert actions.patch_for("pause") == {"metadata": {"annotations": {"claw.io/paused": "true"}}}
    assert actions.patch_for("unpause") == {"metadata": {"annotations": {"claw.io/paused": None}}}


def test_for_and_timeout_parsing() -> None:
    assert actions.parse_for("condition=Ready") == ("Ready", "True")
    assert actions.parse_for("condition=Synced=False") == ("Synced", "False")
    with pytest.raises(ValueError, match="condition=TYPE"):
        actions.parse_for("delete")
    assert (
        actions.parse_duration("90s") == 90
        and actions.parse_duration("5m") == 300
        and actions.parse_duration("2") == 2
    )
    with pytest.raises(ValueError, match="--timeout"):
        actions.parse_duration("soon")


def test_a_condition_about_an_older_generation_does_not_count() -> None:
    obj = {
        "metadata": {"generation": 3},
        "status": {"conditions": [{"type": "Ready", "status": "True", "observedGeneration": 2}]},
    }
    assert not actions.condition_met(obj, "Ready", "True")
    obj["status"]["conditions"][0]["observedGeneration"] = 3
    assert actions.condition_met(obj, "Ready", "True")


def test_wait_for_gives_up_at_the_timeout() -> None:
    ticks = iter(range(100))
    assert (
        actions.wait_for(lambda: {}, "Ready", "True", 3, clock=lambda: next(ticks), sleep=lambda _: None)
        is None
    )


def test_progress_bar_and_age() -> None:
    assert render.progress_bar(30) == "[######--------------]  30%"
    assert render.progress_bar(150) == "[####################] 100%"
    now = datetime(2026, 1, 1, 1, 0, 0, tzinfo=UTC)
    assert render.age("2026-01-01T00:59:18Z", now) == "42s"
    assert render.age("2026-01-01T00:00:00Z", now) == "1h"
    assert render.age(None, now) == ""


def test_status_text_shows_every_part() -> None:
    obj = {
        "metadata": {"name": "bot", "namespace": "tenant-a", "annotations": {"claw.io/paused": "true"}},
        "spec": {"planRef": "pro", "suspend": True},
        "status": {
            "phase": "Deploying",
            "message": "Railway is building.",
            "url": "https://bot.up.railway.app",
            "railway": {"projectId": "prj_1", "projectName": "claw-tenant-a-bot", "serviceId": "svc_1"},
            "deployment": {
                "id": "dep_1",
                "status": "BUILDING",
                "progress": 30,
                "estimatedSecondsRemaining": 45,
            },
            "health": {"status": "Unhealthy", "consecutiveFailures": 2, "lastError": "HTTP 503"},
            "usage": {
                "cpu": 0.25,
                "memoryGB": 0.5,
                "networkEgressGB": 1.5,
                "estimatedCostUSD": 3.2,
                "sampledAt": "t",
            },
            "conditions": [
                {"type": "Deployed", "status": "False", "reason": "Deploying", "message": "building"}
            ],
        },
    }
    text = render.status_text(obj, [{"type": "Normal", "reason": "Deploying", "message": "Source applied."}])
    for part in (
        "Phase:       Deploying    [######--------------]  30%  (~45s remaining)",
        "Paused:      yes",
        "Suspended:   yes",
        "Health:      Unhealthy, 2 consecutive failures (last error: HTTP 503)",
        "URL:         https://bot.up.railway.app",
        "projectId:     prj_1",
        "Deployment:  dep_1 BUILDING",
        "Usage:       cpu 0.25 vCPU, memory 0.5 GB, egress 1.5 GB (30 days), estimated $3.2 (sampled t)",
        "Deployed   False    Deploying   building",
        "Normal   Deploying   Source applied.",
    ):
        assert part in text, part


def test_status_text_before_the_operator_reports() -> None:
    text = render.status_text({"metadata": {"name": "new", "namespace": "ns"}, "spec": {"planRef": "pro"}})
    assert "Phase:       Unknown" in text and "<none yet: the operator has not reported status>" in text
