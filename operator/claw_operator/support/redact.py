"""Scrubbing secret values out of text that came from elsewhere (logs, error messages)."""

from __future__ import annotations

from collections.abc import Iterable

REDACTED = "[REDACTED]"
# Short values ("1", "true") would shred ordinary text and are not worth hiding.
MIN_SECRET_LENGTH = 4


def redact(text: str, secrets: Iterable[str]) -> str:
    # Longest first, so a secret that contains another is replaced whole.
    for value in sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text


def truncate_utf8(text: str, limit: int) -> str:
    """At most `limit` bytes of UTF-8, keeping the end (the latest log lines matter most)."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return "…" + data[-(limit - 3) :].decode(errors="ignore")
