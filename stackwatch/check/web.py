"""Bounded HTTP GETs with the standard library (the check needs no HTTP client dependency).

Responses are not decompressed, so the app's compression item sees ``Content-Encoding`` as sent.
Bodies are capped so a huge response cannot exhaust memory or the deadline.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.parse
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
    """GET ``url``; HTTP error statuses are responses, unreachable hosts raise ``OSError``.

    ``user:password@`` in the URL becomes HTTP basic authentication (urllib would treat it as
    part of the host name).
    """
    parts = urllib.parse.urlsplit(url)
    sent = {"User-Agent": "stackwatch-check", **(headers or {})}
    if parts.username is not None:
        credentials = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        sent["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
        url = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    request = urllib.request.Request(url, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310 - URLs given by the user
            return Response(reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.read(MAX_BODY))
    except urllib.error.HTTPError as error:
        with error:
            return Response(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read(MAX_BODY))
