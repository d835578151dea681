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


def test_no_created_series_double_the_counters(serve, registry):
    """client_python adds a `_created` sample to every counter and histogram child; Prometheus would
    store each as one more series. Neither format carries them, on the app's port or its own."""
    from prometheus_client import Counter

    Counter("orders", "The service's own counter, on the same registry.", registry=registry).inc()
    app = make_app()
    instrumentation = instrument(app, registry=registry, traces=False, environ={})
    separate = make_app()
    own_port = instrument(separate, registry=registry, traces=False, environ={}, metrics_port=0,
                          metrics_addr="127.0.0.1")
    try:
        with serve(app) as base, httpx.Client(base_url=base, timeout=10) as client:
            for i in range(5):
                client.get(f"/items/{i}")
            assert registry.get_sample_value("orders_created") is not None  # the registry has them
            pages = [client.get("/metrics", headers={"accept": OPENMETRICS}).text, client.get("/metrics").text,
                     httpx.get(f"http://127.0.0.1:{own_port.metrics_server.port}/metrics", timeout=10).text]
        for page in pages:
            assert "http_server_request_duration_seconds_count{" in page and "orders_total 1.0" in page
            assert "_created" not in page, [line for line in page.splitlines() if "_created" in line][:3]
    finally:
        instrumentation.close()
        own_port.close()
