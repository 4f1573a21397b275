"""HMAC-SHA256 fingerprints of secret material: detect change without storing values."""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives import hashes, hmac


def fingerprint(key: bytes, material: Any) -> str:
    """Stable fingerprint of any JSON-serialisable value (dict keys sorted)."""
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(json.dumps(material, sort_keys=True, separators=(",", ":")).encode())
    return "hmac-sha256:" + mac.finalize().hex()[:32]
