"""A ClawPlan's revision: a stable hash of the fields that reach its instances.

Display fields (displayName), limits that only gate admission, and the rollout policy
itself do not change what runs on Railway, so changing them starts no rollout."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

# API.md, ClawPlan status.revision.
REVISION_FIELDS = ("source", "variables", "resources", "replicas", "region", "healthCheck")


def plan_revision(spec: Mapping[str, Any]) -> str:
    """8 hex characters; equal for specs that differ only outside REVISION_FIELDS or in key
    order. Absent and null fields hash alike, so defaulting by the API server does not
    start a rollout. Plan variables are not secret, so a plain hash is fine."""
    material = {name: spec.get(name) for name in REVISION_FIELDS if spec.get(name) is not None}
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]
