"""The emulator serves only what Railway really has, and all that the operator sends."""

from __future__ import annotations

import json
from functools import cache

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    build_client_schema,
    is_required_argument,
    is_required_input_field,
    parse,
    validate,
)

from claw_emulators.railway.schema import executable_schema
from claw_operator.railway.documents import contract_documents
from tests.fixtures.railway import REAL_SCHEMA_PATH


@cache
def real_schema() -> GraphQLSchema:
    with REAL_SCHEMA_PATH.open() as handle:
        # Railway marks some Node ids deprecated, which graphql-core refuses unless trusted.
        return build_client_schema(json.load(handle)["data"], assume_valid=True)


needs_real_schema = pytest.mark.skipif(
    not REAL_SCHEMA_PATH.exists(), reason=f"Railway's schema is not at {REAL_SCHEMA_PATH}"
)


def _own_types(schema: GraphQLSchema) -> list[str]:
    return [name for name in schema.type_map if not name.startswith("__") and name not in _BUILTIN_SCALARS]


_BUILTIN_SCALARS = {"String", "Int", "Float", "Boolean", "ID"}


@needs_real_schema
def test_every_emulated_type_field_argument_and_enum_value_exists_in_railway() -> None:
    real = real_schema()
    ours = executable_schema()
    problems: list[str] = []
    for name in _own_types(ours):
        mine, theirs = ours.type_map[name], real.type_map.get(name)
        if theirs is None:
            problems.append(f"type {name} is not in Railway's schema")
            continue
        if type(mine) is not type(theirs):
            problems.append(f"{name} is a {type(mine).__name__} here, a {type(theirs).__name__} on Railway")
            continue
        if isinstance(mine, GraphQLEnumType):
            assert isinstance(theirs, GraphQLEnumType)
            problems += [f"{name}.{v} is not a Railway value" for v in set(mine.values) - set(theirs.values)]
        elif isinstance(mine, GraphQLObjectType | GraphQLInterfaceType):
            assert isinstance(theirs, GraphQLObjectType | GraphQLInterfaceType)
            for field_name, field in mine.fields.items():
                real_field = theirs.fields.get(field_name)
                if real_field is None:
                    problems.append(f"{name}.{field_name} is not on Railway")
                    continue
                if str(field.type) != str(real_field.type):
                    problems.append(f"{name}.{field_name}: {field.type} here, {real_field.type} on Railway")
                for arg_name, arg in field.args.items():
                    real_arg = real_field.args.get(arg_name)
                    if real_arg is None:
                        problems.append(f"{name}.{field_name}({arg_name}) is not on Railway")
                    elif str(arg.type) != str(real_arg.type):
                        problems.append(f"{name}.{field_name}({arg_name}): {arg.type} vs {real_arg.type}")
                # A required argument we left out would make our validation too lenient.
                problems += [
                    f"{name}.{field_name} lacks Railway's required argument {arg_name}"
                    for arg_name, arg in real_field.args.items()
                    if is_required_argument(arg) and arg_name not in field.args
                ]
        elif isinstance(mine, GraphQLInputObjectType):
            assert isinstance(theirs, GraphQLInputObjectType)
            for field_name, field in mine.fields.items():
                real_input = theirs.fields.get(field_name)
                if real_input is None:
                    problems.append(f"{name}.{field_name} is not on Railway")
                elif str(field.type) != str(real_input.type):
                    problems.append(f"{name}.{field_name}: {field.type} here, {real_input.type} on Railway")
            problems += [
                f"{name} lacks Railway's required field {field_name}"
                for field_name, field in theirs.fields.items()
                if is_required_input_field(field) and field_name not in mine.fields
            ]
        else:
            assert isinstance(mine, GraphQLScalarType)
    assert not problems, "\n".join(problems)


@needs_real_schema
def test_root_types_match_railway() -> None:
    ours = executable_schema()
    real = real_schema()
    assert ours.query_type is not None and real.query_type is not None
    assert ours.query_type.name == real.query_type.name
    assert ours.mutation_type is not None and real.mutation_type is not None
    assert ours.mutation_type.name == real.mutation_type.name
    assert ours.subscription_type is None


CONTRACT = dict(contract_documents())


@pytest.mark.parametrize("name", list(CONTRACT))
def test_every_operator_document_validates_against_the_emulator(name: str) -> None:
    errors = validate(executable_schema(), parse(CONTRACT[name]))
    assert not errors, f"{name}: {[e.message for e in errors]}"


def test_every_root_field_has_a_resolver() -> None:
    schema = executable_schema()
    for root in (schema.query_type, schema.mutation_type):
        assert root is not None
        assert all(field.resolve is not None for field in root.fields.values())
