"""Bounded HTTP GETs with the standard library (the check needs no HTTP client dependency).

Responses are not decompressed, so the app's compression item sees ``Content-Encoding`` as sent.
Bodies are capped so a huge response cannot exhaust memory or the deadline.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Response", "get", "MAX_BODY"]

MAX_BODY = 8 * 1024 * 1024


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


def get(url: str, timeout: float, headers: Mapping[str, str] | None = None) -> Response:
    """GET ``url``; HTTP error statuses are responses, unreachable hosts raise ``OSError``."""
    request = urllib.request.Request(url, headers={"User-Agent": "stackwatch-check", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310 - URLs given by the user
            return Response(reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.read(MAX_BODY))
    except urllib.error.HTTPError as error:
        with error:
            return Response(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read(MAX_BODY))
