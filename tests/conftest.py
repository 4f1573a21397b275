"""Shared pytest setup. Fixtures live in tests/fixtures/, one module per concern."""

pytest_plugins = [
    "tests.fixtures.common",
    "tests.fixtures.railway",
    "tests.fixtures.kubernetes",
    "tests.fixtures.operator",
]
