"""Captured HTTP headers on the server span, by allowlist, as OpenTelemetry names them.

The lists come from OpenTelemetry's own variables (``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST``,
``..._SERVER_RESPONSE``, ``..._SANITIZE_FIELDS``) or the matching keywords, with the same meaning
as in the OpenTelemetry instrumentations: header names or regular expressions, matched
case-insensitively against the whole name. A captured header becomes the attribute
``http.request.header.<name>`` / ``http.response.header.<name>`` (lower-case name, a list of
values); a sanitized one has the value ``[REDACTED]``. Nothing is captured by default.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["HeaderCapture"]

REDACTED = "[REDACTED]"


def _matcher(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


class HeaderCapture:
    """Turns raw ASGI headers into span attributes for the allowed names."""

    def __init__(self, request: tuple[str, ...], response: tuple[str, ...], sanitize: tuple[str, ...]) -> None:
        self._request = _matcher(request)
        self._response = _matcher(response)
        self._sanitize = _matcher(sanitize)

    @property
    def enabled(self) -> bool:
        return self._request is not None or self._response is not None

    def request(self, raw_headers: Iterable[tuple[bytes, bytes]]) -> dict[str, Any]:
        return self._collect("http.request.header.", self._request, raw_headers)

    def response(self, raw_headers: Iterable[tuple[bytes, bytes]]) -> dict[str, Any]:
        return self._collect("http.response.header.", self._response, raw_headers)

    def _collect(self, prefix: str, allowed: re.Pattern[str] | None,
                 raw_headers: Iterable[tuple[bytes, bytes]]) -> dict[str, Any]:
        if allowed is None:
            return {}
        values: dict[str, list[str]] = {}
        for raw_name, raw_value in raw_headers:
            name = raw_name.decode("latin-1").lower()
            if not allowed.fullmatch(name):
                continue
            sanitized = self._sanitize is not None and self._sanitize.fullmatch(name)
            values.setdefault(prefix + name, []).append(REDACTED if sanitized else raw_value.decode("latin-1"))
        return {key: tuple(found) for key, found in values.items()}
