"""Bounded HTTP GETs with the standard library (``stackwatch check`` and the exporter's Alertmanager
reader need no HTTP client dependency).

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
from typing import Any

__all__ = ["Response", "get", "MAX_BODY"]

MAX_BODY = 8 * 1024 * 1024


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.hostname, parts.port


class _CredentialsStayHome(urllib.request.HTTPRedirectHandler):
    """Follows redirects, but sends the basic-auth header only to the origin it was meant for
    (urllib would copy it to any host a redirect names)."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) != _origin(req.full_url):
            new.remove_header("Authorization")
        return new


_OPENER = urllib.request.build_opener(_CredentialsStayHome)


def get(url: str, timeout: float, headers: Mapping[str, str] | None = None) -> Response:
    """GET ``url``; HTTP error statuses are responses, unreachable hosts raise ``OSError``.

    ``user:password@`` in the URL becomes HTTP basic authentication (urllib would treat it as
    part of the host name), sent to that URL's origin only, never to another host it redirects to.
    """
    parts = urllib.parse.urlsplit(url)
    sent = {"User-Agent": "stackwatch", **(headers or {})}
    if parts.username is not None:
        credentials = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        sent["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
        url = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    request = urllib.request.Request(url, headers=sent)  # noqa: S310 - URLs given by the user
    try:
        with _OPENER.open(request, timeout=timeout) as reply:  # noqa: S310 - URLs given by the user
            return Response(reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.read(MAX_BODY))
    except urllib.error.HTTPError as error:
        with error:
            return Response(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read(MAX_BODY))
