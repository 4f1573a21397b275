"""Logs a person can read, or JSON lines for log shippers (`CLAW_LOG_FORMAT=json`).

By default the HTTP libraries' per-request INFO lines are silenced (one per Railway or
health request would drown everything else); `--verbose` or `CLAW_LOG_LEVEL=DEBUG` brings
them back."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

# Loggers that log one line per HTTP request at INFO.
# Per-request lines, and Kopf's line per handled watch event (noise at fleet scale): shown
# only at DEBUG; their warnings and failures always.
CHATTY_LOGGERS = ("httpx", "httpcore", "aiohttp.access", "urllib3", "kopf.objects")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Kopf puts the object it is handling on its log records as `k8s_ref`.
_CONTEXT_ATTRIBUTES = ("k8s_ref",)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the object Kopf was
    handling (when any) and the exception text (when any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for attribute in _CONTEXT_ATTRIBUTES:
            value = getattr(record, attribute, None)
            if isinstance(value, Mapping):
                entry["object"] = {k: v for k, v in value.items() if isinstance(v, (str, int, float))}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def parse_level(value: str | None, verbose: bool = False) -> int:
    if verbose:
        return logging.DEBUG
    if not value:
        return logging.INFO
    level = logging.getLevelName(value.strip().upper())
    if not isinstance(level, int):
        raise ValueError(f"CLAW_LOG_LEVEL={value!r} is not a log level; use DEBUG, INFO, WARNING or ERROR")
    return level


def configure_logging(env: Mapping[str, str], *, verbose: bool = False, stream: TextIO | None = None) -> None:
    """Set up the root logger from `CLAW_LOG_LEVEL` and `CLAW_LOG_FORMAT` (text | json)."""
    level = parse_level(env.get("CLAW_LOG_LEVEL"), verbose)
    log_format = (env.get("CLAW_LOG_FORMAT") or "text").strip().lower()
    if log_format not in {"text", "json"}:
        raise ValueError(f"CLAW_LOG_FORMAT={log_format!r} is not supported; use text or json")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    chatty_level = logging.NOTSET if level <= logging.DEBUG else logging.WARNING
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(chatty_level)
