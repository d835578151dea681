"""Requests counted by the CDN their headers name, per route, through a real uvicorn server."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from stackwatch.instrumentation import instrument
from stackwatch.instrumentation.cdn import CLASSES, cdn_class
from tests.fixtures.uvicorn import serve_app
from tests.instrumentation.counts import route_counts

FAMILY = "http_server_requests_cdn"


@pytest.mark.parametrize(("headers", "expected"), [
    ({"CF-Ray": "8a1b2c3d4e5f-AMS", "CDN-Loop": "cloudflare"}, "cloudflare"),
    ({"X-Amz-Cf-Id": "abc==", "Via": "1.1 0123.cloudfront.net (CloudFront)"}, "cloudfront"),
    ({"Fastly-Client-IP": "203.0.113.7"}, "fastly"),
    ({"Akamai-Origin-Hop": "2"}, "akamai"),
    ({"X-Azure-FDID": "a-b-c"}, "azure"),
    ({"CDN-Loop": "examplecdn; v=1"}, "other"),
    ({"Via": "1.1 varnish (Varnish/7.5)"}, "other"),
    ({"Via": "1.1 varnish", "CF-Ray": "x"}, "cloudflare"),  # a vendor's own header wins over Via
    ({"X-Forwarded-For": "203.0.113.7", "X-Real-IP": "203.0.113.7"}, "none"),  # a plain load balancer
    ({}, "none"),
])
def test_request_headers_name_the_cdn(headers: dict[str, str], expected: str) -> None:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    assert cdn_class(raw) == expected
    assert expected in CLASSES


def _samples(text: str) -> dict[tuple[str, str], float]:
    return route_counts(text, FAMILY, "cdn")


def test_requests_are_counted_by_route_and_cdn_on_metrics(registry, clean_env) -> None:
    app = FastAPI()

    @app.get("/static/{name}")
    async def asset(name: str) -> str:
        return name

    instrument(app, registry=registry, traces=False, environ=clean_env)
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        assert not _samples(client.get("/metrics").text)
        client.get("/static/a.1.css", headers={"CDN-Loop": "cloudflare", "CF-Ray": "8a1b-AMS"}).raise_for_status()
        client.get("/static/b.2.js", headers={"Via": "1.1 varnish"}).raise_for_status()
        client.get("/static/c.3.js").raise_for_status()
        client.get("/static/d.4.js", headers={"X-Forwarded-For": "203.0.113.7"}).raise_for_status()
        text = client.get("/metrics").text
    assert _samples(text) == {("/static/{name}", "cloudflare"): 1.0, ("/static/{name}", "other"): 1.0,
                              ("/static/{name}", "none"): 2.0}
