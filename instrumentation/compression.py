"""Responses worth compressing by ``Content-Encoding`` class, per route: is compression on?

The checklist wants responses compressed (gzip). ``http_server_responses_content_encoding_total
{http_route,content_encoding}`` counts only the responses where that matters, so small JSON never
reads as a problem:

* the ``Content-Type`` is compressible (``text/*`` but event streams, JSON, JavaScript, XML and
  SVG, ``+json``/``+xml`` types, uncompressed fonts, WebAssembly), and
* the response was sent encoded (the service judged it worth compressing), or it went out
  ``identity`` with a body of at least ``HTTP.compression_min_bytes`` (1 KiB) -- where gzip saves
  more than it costs -- to a client that accepts a compressed one (its ``Accept-Encoding`` names
  a coding other than ``identity``, or ``*``, with a non-zero ``q``). A client that asks for none
  (curl by default, health probes, some service-to-service clients) gets identity from a
  well-configured service too, so its responses say nothing about compression being on.

The share of counted responses that are not ``identity`` is what the Checklist's "Compressed
responses" stat and the ``HttpResponsesUncompressed`` alert watch. The header value is reduced
to one of six classes (``gzip``, ``br``, ``zstd``, ``deflate``, ``identity``: no header or
``identity``; ``other``), the last coding applied naming it (``gzip, br`` is ``br``).
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["CLASSES", "accepts_compression", "compressible", "compression_class", "content_encoding_class"]

#: every label value
CLASSES = ("gzip", "br", "zstd", "deflate", "identity", "other")
_ALIASES = {"x-gzip": "gzip"}
_TEXT_TYPES = frozenset(("application/json", "application/javascript", "application/x-javascript",
                         "application/ecmascript", "application/xml", "application/x-ndjson", "application/wasm",
                         "application/vnd.ms-fontobject", "font/ttf", "font/otf", "image/svg+xml"))
#: text that is streamed as it happens: compressing it would hold events back
_STREAMS = frozenset(("text/event-stream",))
#: distinct raw header values whose class is memoized (an app sends a handful)
_MEMO_LIMIT = 256


def content_encoding_class(value: str | None) -> str:
    """The class of a ``Content-Encoding`` header value (``None``: no header)."""
    if value is None:
        return "identity"
    codings = [c.strip().lower() for c in value.split(",") if c.strip()]
    if not codings:
        return "identity"
    last = _ALIASES.get(codings[-1], codings[-1])
    return last if last in CLASSES else "other"


def compressible(content_type: str | None) -> bool:
    """True when a body of this ``Content-Type`` shrinks under gzip (text, not already compressed media)."""
    if content_type is None:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    if media in _STREAMS:
        return False
    return media.startswith("text/") or media in _TEXT_TYPES or media.endswith(("+json", "+xml"))


@lru_cache(maxsize=_MEMO_LIMIT)
def accepts_compression(raw: bytes | None) -> bool:
    """True when a request's ``Accept-Encoding`` value (None: no header) lets the service compress:
    a coding other than ``identity`` (or ``*``) whose ``q`` is not 0. No header counts as no:
    compression middleware (Starlette's, nginx ``gzip``) only compresses for clients that ask."""
    if raw is None:
        return False
    for item in raw.decode("latin-1").split(","):
        coding, *params = item.split(";")
        if coding.strip().lower() not in ("", "identity") and not _refused(params):
            return True
    return False


def _refused(params: list[str]) -> bool:
    """True for the parameters of a refused coding: ``q=0`` (an unreadable weight counts as 1)."""
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value) == 0
            except ValueError:
                return False
    return False


@lru_cache(maxsize=_MEMO_LIMIT)
def _encoding(raw: bytes | None) -> str:
    return content_encoding_class(None if raw is None else raw.decode("latin-1"))


@lru_cache(maxsize=_MEMO_LIMIT)
def _compressible(raw: bytes) -> bool:
    return compressible(raw.decode("latin-1"))


def compression_class(encoding: bytes | None, content_type: bytes | None, sent: int, min_bytes: int) -> str | None:
    """The class to count a response under, from its raw headers and the body bytes it sent;
    None when compression does not matter for it (empty, not compressible, or small and identity)."""
    if not sent or content_type is None:
        return None
    kind = _encoding(encoding)
    if kind == "identity" and sent < min_bytes:
        return None
    return kind if _compressible(content_type) else None
