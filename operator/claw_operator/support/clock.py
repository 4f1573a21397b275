"""Time as Kubernetes writes it (RFC 3339, UTC, whole seconds) and as Railway sends it."""

from __future__ import annotations

from datetime import UTC, datetime


def now_rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 / RFC 3339 time (a trailing `Z` included) as an aware datetime; None
    for a missing or malformed value."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
