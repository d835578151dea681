"""Shared fixtures are plugins in tests/fixtures/, one file per server kind."""

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.redis",
]
