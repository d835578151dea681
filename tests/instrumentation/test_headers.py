"""Captured request/response headers on the server span, configured as in OpenTelemetry."""

from __future__ import annotations

import httpx
import pytest

from stackwatch.instrumentation import ConfigError, instrument, uninstrument

from .apps import make_app

HEADERS = {"x-tenant": "acme", "x-request-id": "r-1", "x-request-secret": "hunter2", "cookie": "session=1"}


async def get(app, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(path, headers=HEADERS)


async def test_allowlisted_headers_from_the_opentelemetry_variables(registry, provider, spans):
    environ = {
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "X-Tenant, x-request-.*",
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE": "content-type",
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS": ".*secret.*",
    }
    app = make_app()
    instrument(app, registry=registry, tracer_provider=provider, environ=environ)
    assert (await get(app, "/items/1")).status_code == 200
    uninstrument(app)
    attributes = spans.get_finished_spans()[0].attributes
    captured = {k: v for k, v in attributes.items() if ".header." in k}
    assert captured == {
        "http.request.header.x-tenant": ("acme",),
        "http.request.header.x-request-id": ("r-1",),
        "http.request.header.x-request-secret": ("[REDACTED]",),
        "http.response.header.content-type": ("application/json",),
    }


async def test_allowlisted_headers_by_keyword(registry, provider, spans):
    app = make_app()
    instrument(app, registry=registry, tracer_provider=provider, capture_request_headers=["x-tenant"],
               environ={"OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "cookie"})
    await get(app, "/items/1")
    uninstrument(app)
    attributes = spans.get_finished_spans()[0].attributes
    assert [k for k in attributes if ".header." in k] == ["http.request.header.x-tenant"]  # the keyword wins


async def test_nothing_is_captured_by_default(registry, provider, spans):
    app = make_app()
    instrument(app, registry=registry, tracer_provider=provider, environ={})
    await get(app, "/items/1")
    uninstrument(app)
    assert not [k for k in spans.get_finished_spans()[0].attributes if ".header." in k]


def test_a_bad_pattern_is_a_clear_error(registry):
    with pytest.raises(ConfigError, match="OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST: 'x-\\(' is not"):
        instrument(make_app(), registry=registry,
                   environ={"OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "x-("})
