"""Deterministic identity on Railway (API.md, "Identity on Railway")."""

from __future__ import annotations

import hashlib

MAX_PROJECT_NAME = 48
MAX_SERVICE_NAME = 32
MARKER_PREFIX = "claw-operator"


def _shorten(full: str, limit: int) -> str:
    if len(full) <= limit:
        return full
    # The hash keeps shortened names of different objects apart.
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full[: limit - len(digest) - 1].rstrip('-')}-{digest}"


def project_name(prefix: str, namespace: str, name: str) -> str:
    return _shorten(f"{prefix}-{namespace}-{name}", MAX_PROJECT_NAME)


def service_name(name: str) -> str:
    return _shorten(name, MAX_SERVICE_NAME)


def project_marker(cluster: str, namespace: str, name: str) -> str:
    """Written into the project description; proves a project is this object's."""
    return f"{MARKER_PREFIX} {cluster}/{namespace}/{name}"
