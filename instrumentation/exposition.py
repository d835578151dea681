"""Serving ``/metrics``: content negotiation, multiprocess aggregation, or a separate port.

Prometheus asks for OpenMetrics (``Accept: application/openmetrics-text``), the only format that
carries exemplars and units; everything else gets the classic text format, gzipped when the
scraper accepts it (Prometheus does), as the exporter serves it. In multiprocess mode the
scrape reads every worker's files through a fresh ``MultiProcessCollector`` registry, after
dropping the live gauges of workers that no longer exist. Either way the ``_created`` samples of
counters, histograms and summaries are left out: Prometheus stores each as one more series (the
series of every counter doubled) and no dashboard or rule reads them.
"""

from __future__ import annotations

import gzip
import logging
import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

from .asgi import Scope, Send

__all__ = ["LiveWorkersCollector", "MetricsServer", "WithoutCreated", "exposition_registry", "metrics_response"]

logger = logging.getLogger("stackwatch.instrumentation")


def exposition_registry(registry: CollectorRegistry, multiprocess: bool) -> CollectorRegistry:
    """The registry a scrape reads: ``registry``, or the aggregate of all live workers, without
    ``_created`` samples."""
    source = registry
    if multiprocess:
        source = CollectorRegistry()
        source.register(LiveWorkersCollector())
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(WithoutCreated(source))
    return scrape


class WithoutCreated:
    """The families of ``registry`` without the ``_created`` samples client_python adds to counters,
    histograms and summaries (a gauge that happens to end in ``_created`` is kept)."""

    _TYPES = frozenset(("counter", "histogram", "summary"))

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self._registry.collect():
            if family.type in self._TYPES:
                created = family.name + "_created"
                kept = [sample for sample in family.samples if sample.name != created]
                if len(kept) != len(family.samples):
                    family = _copy(family, kept)
            yield family


def _copy(family: Metric, samples: list[Any]) -> Metric:
    copy = Metric(family.name, family.documentation, family.type, family.unit)
    copy.samples = samples
    return copy


class LiveWorkersCollector:
    """client_python's ``MultiProcessCollector`` that first drops the live gauges of dead workers.

    gunicorn reports a dead worker through ``child_exit``; uvicorn's supervisor (and a worker
    killed by the OOM killer under any manager) reports it to nobody, so each scrape checks the
    pids of the live-gauge files itself: a process that no longer exists (or is a zombie) is marked
    dead (:func:`~stackwatch.instrumentation.mark_worker_dead`), and its in-flight requests and pool
    connections stop counting. Counters and histograms of dead workers are kept, as always.
    """

    def __init__(self, path: str | None = None) -> None:
        from prometheus_client import multiprocess as mp

        self._collector = mp.MultiProcessCollector(None, path)
        self._path: str = self._collector._path

    def collect(self) -> Any:
        from .multiprocess import mark_worker_dead

        for pid in _live_gauge_pids(self._path):
            if not _process_exists(pid):
                mark_worker_dead(pid, self._path)
        return self._collector.collect()


def _live_gauge_pids(path: str) -> set[int]:
    pids = set()
    for name in os.listdir(path):
        if name.startswith("gauge_live") and name.endswith(".db"):
            pid = name[:-3].rpartition("_")[2]
            if pid.isdigit():
                pids.add(int(pid))
    return pids


def _process_exists(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie, killed but not yet reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


async def metrics_response(registry: CollectorRegistry, scope: Scope, send: Send) -> None:
    """Answer a scrape: GET or HEAD only, the format the Accept header asks for, gzipped when accepted."""
    if scope["method"] not in ("GET", "HEAD"):
        body = b"method not allowed: /metrics answers GET and HEAD\n"
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                   (b"allow", b"GET, HEAD")]
        await send({"type": "http.response.start", "status": 405, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    accept = encoding = ""
    for name, value in scope.get("headers", ()):
        if name == b"accept":
            accept = value.decode("latin-1")
        elif name == b"accept-encoding":
            encoding = value.decode("latin-1")
    encoder, content_type = choose_encoder(accept)
    body = encoder(registry)
    headers = [(b"content-type", content_type.encode()), (b"vary", b"Accept, Accept-Encoding")]
    if "gzip" in encoding:
        body = gzip.compress(body, compresslevel=1)
        headers.append((b"content-encoding", b"gzip"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


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
