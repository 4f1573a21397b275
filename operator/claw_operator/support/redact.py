"""Scrubbing secret values out of text that came from elsewhere (logs, error messages).
The one redactor of the package: every scrubbed value reads the same marker."""

from __future__ import annotations

import json
from collections.abc import Iterable

REDACTED = "[REDACTED]"
# Short values ("1", "true") would shred ordinary text and are not worth hiding.
MIN_SECRET_LENGTH = 4


def redact(text: str, secrets: Iterable[str]) -> str:
    # Longest first, so a secret that contains another is replaced whole.
    for value in sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True):
        # Also as it reads inside a JSON string (a `*_CONFIG` variable echoed back, say).
        for form in {value, json.dumps(value)[1:-1]}:
            text = text.replace(form, REDACTED)
    return text


def truncate_utf8(text: str, limit: int) -> str:
    """At most `limit` bytes of UTF-8, keeping the end (the latest log lines matter most)."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return "…" + data[-(limit - 3) :].decode(errors="ignore")
