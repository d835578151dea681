"""Fixtures of the demo tests (the uvicorn runner is owned by the instrumentation work)."""

from tests.fixtures.uvicorn import serve  # noqa: F401
