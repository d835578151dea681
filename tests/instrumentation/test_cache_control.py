"""Responses counted by Cache-Control class and route, through a real uvicorn server."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, Response

from stackwatch.instrumentation import instrument
from stackwatch.instrumentation.cache_control import CLASSES, cache_control_class
from tests.fixtures.uvicorn import serve_app
from tests.instrumentation.counts import route_counts


@pytest.mark.parametrize(("header", "expected"), [
    ("public, max-age=31536000, immutable", "public-immutable"),
    ("public, max-age=3600", "public"),
    ("max-age=60", "public"),
    ("s-maxage=600", "public"),
    ("private, no-cache", "private-no-cache"),
    ("Private, Max-Age=60", "private-no-cache"),
    ("no-cache", "private-no-cache"),
    ("public, max-age=0", "private-no-cache"),
    ("no-store", "no-store"),
    ("public, max-age=31536000, immutable, no-store", "no-store"),
    (None, "none"),
    (" , ", "none"),
])
def test_header_values_fall_into_the_bounded_classes(header: str | None, expected: str) -> None:
    assert cache_control_class(header) == expected
    assert expected in CLASSES


def _samples(text: str) -> dict[tuple[str, str], float]:
    return route_counts(text, "http_server_responses_cache_control", "cache_control")


def test_responses_are_counted_by_route_and_class_on_metrics(registry, clean_env) -> None:
    app = FastAPI()

    @app.get("/assets/{name}")
    async def asset(name: str, response: Response) -> str:
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return name

    @app.get("/me")
    async def me(response: Response) -> dict[str, str]:
        response.headers["Cache-Control"] = "private, no-cache"
        return {"user": "x"}

    @app.get("/plain")
    async def plain() -> str:
        return "no header"

    instrument(app, registry=registry, traces=False, environ=clean_env)
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        assert not _samples(client.get("/metrics").text)  # nothing served yet: no series
        for name in ("a.1.js", "b.2.css"):
            client.get(f"/assets/{name}").raise_for_status()
        client.get("/me").raise_for_status()
        client.get("/plain").raise_for_status()
        client.get("/health/live").raise_for_status()  # answered by the instrumentation: not counted
        text = client.get("/metrics").text
    assert _samples(text) == {
        ("/assets/{name}", "public-immutable"): 2.0,
        ("/me", "private-no-cache"): 1.0,
        ("/plain", "none"): 1.0,
    }
