"""Serving ``/metrics``: content negotiation, multiprocess aggregation, or a separate port.

Prometheus asks for OpenMetrics (``Accept: application/openmetrics-text``), the only format that
carries exemplars; everything else gets the classic text format. In multiprocess mode the
scrape reads every worker's files through a fresh ``MultiProcessCollector`` registry.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.exposition import choose_encoder

__all__ = ["MetricsServer", "exposition_registry", "metrics_response"]

logger = logging.getLogger("stackwatch.instrumentation")


def exposition_registry(registry: CollectorRegistry, multiprocess: bool) -> CollectorRegistry:
    """The registry a scrape reads: ``registry`` itself, or the aggregate of all workers."""
    if not multiprocess:
        return registry
    from prometheus_client import multiprocess as mp

    aggregate = CollectorRegistry()
    mp.MultiProcessCollector(aggregate)
    return aggregate


async def metrics_response(registry: CollectorRegistry, scope: Any, send: Any) -> None:
    """Send the exposition of ``registry`` in the format the scraper's Accept header asks for."""
    accept = ""
    for name, value in scope.get("headers", ()):
        if name == b"accept":
            accept = value.decode("latin-1")
            break
    encoder, content_type = choose_encoder(accept)
    body = encoder(registry)
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class MetricsServer:
    """client_python's HTTP exposition server on its own port (``metrics_port``)."""

    def __init__(self, registry: CollectorRegistry, addr: str, port: int) -> None:
        self._server, self._thread = start_http_server(port, addr=addr, registry=registry)
        self.port: int = self._server.server_address[1]
        logger.info("metrics served on %s:%d", addr, self.port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
