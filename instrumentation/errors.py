"""The exceptions of :mod:`stackwatch.instrumentation`, one small hierarchy to catch."""

from __future__ import annotations

__all__ = ["ConfigError", "InstrumentationError", "NPlusOneError"]


class InstrumentationError(Exception):
    """Base class of every error raised by stackwatch.instrumentation."""


class ConfigError(InstrumentationError, ValueError):
    """A setting (keyword argument or environment variable) has a bad value.

    The message names the key and the offending value, with secrets redacted.
    """


class NPlusOneError(InstrumentationError):
    """Strict mode: a request repeated one normalized statement at least the threshold times."""

    def __init__(self, fingerprint: str, count: int, route: str | None = None) -> None:
        self.fingerprint = fingerprint
        self.count = count
        self.route = route
        where = f" in {route}" if route else ""
        super().__init__(f"N+1 query pattern{where}: {count} executions of {fingerprint!r}")
