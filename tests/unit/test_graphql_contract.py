"""Every GraphQL document the client can send is valid against Railway's real schema."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from graphql import GraphQLSchema, build_client_schema, parse, validate

from claw_operator.railway.documents import contract_documents

# The schema lives beside the repository (../shared/railway/schema.json), never inside it.
SCHEMA_PATH = Path(__file__).resolve().parents[2].parent / "shared" / "railway" / "schema.json"


@cache
def railway_schema() -> GraphQLSchema:
    data: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    # Railway marks some Node ids deprecated, which graphql-core refuses unless told the
    # schema is valid (shared/railway/README.md).
    return build_client_schema(data["data"], assume_valid=True)


DOCUMENTS = list(contract_documents())


@pytest.mark.skipif(not SCHEMA_PATH.exists(), reason=f"Railway schema not found at {SCHEMA_PATH}")
@pytest.mark.parametrize(("name", "document"), DOCUMENTS, ids=[name for name, _ in DOCUMENTS])
def test_document_is_valid_against_railway_schema(name: str, document: str) -> None:
    errors = validate(railway_schema(), parse(document))
    assert not errors, f"{name}: " + "; ".join(e.message for e in errors)


def test_contract_covers_every_document_kind() -> None:
    names = {name.split("[")[0] for name, _ in DOCUMENTS}
    assert {"FleetObserve", "ServiceConfigure", "Projects", "ProjectCreate", "Metrics"} <= names
    # Each document's operation name is the one the client sends as operationName.
    for name, document in DOCUMENTS:
        operation = parse(document).definitions[0]
        assert operation.name.value == name.split("[")[0]  # type: ignore[attr-defined]
