"""/metrics as a scraper sees it through a real uvicorn: formats, units, gzip, methods."""

from __future__ import annotations

import httpx

from stackwatch.instrumentation import instrument

from .apps import make_app

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def test_metrics_endpoint_negotiates_format_and_compression(serve, registry):
    app = make_app()
    instrument(app, registry=registry, traces=False, environ={})
    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        for i in range(50):
            client.get(f"/items/{i}")
        raw = client.get("/metrics", headers={"accept": OPENMETRICS, "accept-encoding": "gzip"})
        assert raw.status_code == 200
        assert raw.headers["content-encoding"] == "gzip"
        assert raw.headers["content-type"].startswith("application/openmetrics-text")
        assert int(raw.headers["content-length"]) < len(raw.content) / 3  # httpx decoded it
        assert "# UNIT http_server_request_duration_seconds seconds" in raw.text
        assert "# UNIT db_client_operation_duration_seconds seconds" in raw.text
        assert raw.text.endswith("# EOF\n")

        plain = client.get("/metrics", headers={"accept-encoding": "identity"})
        assert "content-encoding" not in plain.headers
        assert plain.headers["content-type"].startswith("text/plain")
        assert "http_server_request_duration_seconds_count" in plain.text and "# UNIT" not in plain.text

        head = client.head("/metrics")
        assert head.status_code == 200 and head.content == b""
        assert int(head.headers["content-length"]) > 0
        for method in ("POST", "PUT", "DELETE"):
            refused = client.request(method, "/metrics")
            assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"
