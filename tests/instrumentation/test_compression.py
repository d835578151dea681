"""Responses worth compressing counted by Content-Encoding class and route, through a real uvicorn
server with Starlette's GZipMiddleware."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, Response
from fastapi.middleware.gzip import GZipMiddleware

from stackwatch.instrumentation import instrument
from stackwatch.instrumentation.compression import (
    CLASSES,
    accepts_compression,
    compressible,
    compression_class,
    content_encoding_class,
)
from stackwatch.thresholds import HTTP
from tests.fixtures.uvicorn import serve_app
from tests.instrumentation.counts import route_counts

FAMILY = "http_server_responses_content_encoding"


@pytest.mark.parametrize(("header", "expected"), [
    ("gzip", "gzip"), ("x-gzip", "gzip"), ("BR", "br"), ("zstd", "zstd"), ("deflate", "deflate"),
    ("gzip, br", "br"), ("identity", "identity"), (None, "identity"), (" , ", "identity"), ("compress", "other"),
])
def test_encodings_fall_into_the_bounded_classes(header: str | None, expected: str) -> None:
    assert content_encoding_class(header) == expected
    assert expected in CLASSES


@pytest.mark.parametrize(("content_type", "expected"), [
    ("application/json", True), ("text/html; charset=utf-8", True), ("application/problem+json", True),
    ("image/svg+xml", True), ("Application/JavaScript", True), ("text/css", True),
    ("text/event-stream", False), ("image/png", False), ("font/woff2", False), ("application/zip", False),
    ("application/octet-stream", False), (None, False),
])
def test_only_text_like_types_are_compressible(content_type: str | None, expected: bool) -> None:
    assert compressible(content_type) is expected


def test_small_identity_bodies_are_not_counted_but_small_encoded_ones_are() -> None:
    small, large = HTTP.compression_min_bytes - 1, HTTP.compression_min_bytes
    assert compression_class(None, b"application/json", small, large) is None
    assert compression_class(None, b"application/json", large, large) == "identity"
    assert compression_class(b"gzip", b"application/json", 300, large) == "gzip"
    assert compression_class(b"gzip", b"application/json", 0, large) is None  # HEAD: no body went out


@pytest.mark.parametrize(("header", "expected"), [
    (b"gzip, deflate, br", True), (b"br;q=0.5", True), (b"*", True), (b"GZip", True), (b"gzip;q=0.001", True),
    (b"identity, gzip;q=0.5", True), (b"gzip;q=junk", True),
    (None, False), (b"", False), (b"identity", False), (b"gzip;q=0", False), (b"gzip; Q=0.0, identity", False),
    (b"*;q=0", False), (b"identity;q=1, br;q=0.000", False),
])
def test_a_client_accepts_compression_when_it_names_a_coding_it_does_not_refuse(header: bytes | None,
                                                                                 expected: bool) -> None:
    assert accepts_compression(header) is expected


def _samples(text: str) -> dict[tuple[str, str], float]:
    return route_counts(text, FAMILY, "content_encoding")


def test_gzip_and_large_identity_responses_are_counted_small_and_binary_ones_not(registry, clean_env) -> None:
    app = FastAPI()
    app.add_middleware(GZipMiddleware, minimum_size=HTTP.compression_min_bytes)
    rows = [{"id": n, "title": f"Book number {n}"} for n in range(100)]  # ~3 KiB of JSON

    @app.get("/books")
    async def books() -> list[dict[str, object]]:
        return rows

    @app.get("/tiny")
    async def tiny() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/logo.png")
    async def logo() -> Response:
        return Response(b"\x89PNG" + bytes(4096), media_type="image/png")

    instrument(app, registry=registry, traces=False, environ=clean_env)
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        assert not _samples(client.get("/metrics").text)
        gzipped = client.get("/books", headers={"Accept-Encoding": "gzip"})
        assert gzipped.headers["content-encoding"] == "gzip"
        client.get("/tiny", headers={"Accept-Encoding": "identity"}).raise_for_status()
        client.get("/tiny", headers={"Accept-Encoding": "gzip"}).raise_for_status()
        client.get("/logo.png", headers={"Accept-Encoding": "gzip"}).raise_for_status()
        text = client.get("/metrics").text
    assert _samples(text) == {("/books", "gzip"): 1.0}


def test_large_identity_responses_count_only_for_clients_that_accept_compression(registry, clean_env) -> None:
    """The planted problem (no compression middleware) is counted for every client that asked for
    gzip; a client that asked for none (curl, probes) gets identity from any service and is not."""
    app = FastAPI()
    rows = [{"id": n, "title": f"Book number {n}"} for n in range(100)]  # ~3 KiB of JSON

    @app.get("/books")
    async def books() -> list[dict[str, object]]:
        return rows

    instrument(app, registry=registry, traces=False, environ=clean_env)
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        for accept in ("gzip, deflate", "br;q=1, gzip;q=0.8", "identity", "gzip;q=0", ""):
            plain = client.get("/books", headers={"Accept-Encoding": accept})
            assert "content-encoding" not in plain.headers and len(plain.content) >= HTTP.compression_min_bytes
        raw = httpx.Headers({"Host": "x"})  # no Accept-Encoding at all, as curl sends
        client.send(httpx.Request("GET", f"{url}/books", headers=raw)).raise_for_status()
        text = client.get("/metrics").text
    assert _samples(text) == {("/books", "identity"): 2.0}
