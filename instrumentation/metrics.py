"""The Prometheus families of the instrumentation, created once per registry.

Names, units and labels are the OpenTelemetry semantic conventions rendered as Prometheus names
(``http.server.request.duration`` -> ``http_server_request_duration_seconds``), with the
semantic-convention histogram buckets, so community dashboards work unchanged.
Gauges declare their multiprocess mode: under ``PROMETHEUS_MULTIPROC_DIR`` the worker values are
summed over live processes (pools, active requests) or the most recent one wins (health).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Callable
from functools import partial
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    values,
)
from prometheus_client.samples import Exemplar
from prometheus_client.values import MutexValue

from .info import InfoSeries

__all__ = [
    "BODY_SIZE_BUCKETS",
    "DB_DURATION_BUCKETS",
    "EVENT_LOOP_LAG_BUCKETS",
    "HTTP_DURATION_BUCKETS",
    "QUERIES_PER_REQUEST_BUCKETS",
    "WEBSOCKET_DURATION_BUCKETS",
    "Metrics",
    "get_metrics",
    "multiprocess_active",
    "observe",
    "value_adder",
]

logger = logging.getLogger("stackwatch.instrumentation")

# http.server.request.duration advisory buckets (OpenTelemetry semconv, stable).
HTTP_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
# db.client.operation.duration advisory buckets (semconv); reused for pool wait time.
DB_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
QUERIES_PER_REQUEST_BUCKETS = (0, 1, 2, 3, 5, 10, 20, 50, 100)
HTTP_LABELS = ("http_request_method", "http_route", "http_response_status_code")
# http.server.request/response.body.size have no advisory buckets: decades from 100 B to 10 MB.
BODY_SIZE_BUCKETS = (100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000)
# Event-loop lag: a millisecond is scheduling noise, 100 ms a blocking call (asyncio's own
# slow-callback threshold), seconds a service that stopped answering.
EVENT_LOOP_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# WebSocket connections last from a moment to hours.
WEBSOCKET_DURATION_BUCKETS = (0.1, 1.0, 10.0, 60.0, 600.0, 3600.0)


def multiprocess_active() -> bool:
    """True when client_python writes values to ``PROMETHEUS_MULTIPROC_DIR`` files.

    client_python picks its value class when it is imported, so the variable only counts if it
    was set before that (which process managers do for their workers).
    """
    return values.ValueClass is not values.MutexValue and "PROMETHEUS_MULTIPROC_DIR" in os.environ


def observe(child: Any, amount: float, exemplar: dict[str, str] | None = None, *, held: bool = False) -> None:
    """``child.observe(amount, exemplar)`` for a labelled histogram child, at a fraction of the cost.

    The per-request hot path: client_python's ``observe`` re-checks on every call that the child
    has its labels and that the exemplar's labels are valid (ours always are: ``trace_id`` and
    ``span_id``, 48 characters in all) and walks the buckets one by one. Same values, same files
    in multiprocess mode; a test checks the result equals client_python's own ``observe``.
    ``held``: the caller holds :attr:`Metrics.request_lock`, which guards every value it writes.
    """
    add = _add_held if held else _add
    bucket = child._buckets[bisect_left(child._upper_bounds, amount)]
    if amount:  # a zero (no body, no statement) leaves the sum as it is
        add(child._sum, amount)
    add(bucket, 1)
    if exemplar is not None:
        bucket.set_exemplar(Exemplar(exemplar, amount, time.time()))


def _add(value: Any, amount: float) -> None:
    """``value.inc(amount)``; client_python's in-process value under its own lock, taken without a
    ``with`` block (which costs as much as the rest), any other value class (multiprocess files)
    through its ``inc``."""
    if type(value) is MutexValue:
        lock = value._lock
        lock.acquire()
        try:
            value._value += amount
        finally:
            lock.release()
    else:
        value.inc(amount)


def _add_held(value: Any, amount: float) -> None:
    """:func:`_add` for a value that only writers holding :attr:`Metrics.request_lock` change: the
    in-process value without its own lock (a reader needs none: the float is replaced whole)."""
    if type(value) is MutexValue:
        value._value += amount
    else:
        value.inc(amount)


def value_adder(child: Any, *, held: bool = False) -> Callable[[float], None]:
    """``amount -> None`` adding to a labelled gauge or counter child: ``inc``/``dec`` without their
    per-call checks (a counter's amounts must be positive, as for ``inc``); ``held`` as for
    :func:`observe`."""
    return partial(_add_held if held else _add, child._value)


class _PoolRefresher:
    """A collector that yields nothing but refreshes the pool gauges just before they are read.

    Registered before the families, so a scrape of the registry sees current pool figures.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = weakref.ref(metrics)

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        metrics = self._metrics()
        if metrics is not None:
            metrics.refresh_pools()
        return []


class Metrics:
    """Every family the instrumentation writes, registered in one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._pools: list[Any] = []
        self._pools_lock = threading.Lock()
        self._pools_refreshed = 0.0
        self._db_children: dict[tuple[str, str], Any] = {}
        #: Guards the children only the HTTP middleware writes (requests by method and route, their
        #: header counts): a request's dozen updates take it twice (start, end) instead of each
        #: value's own lock, 9% of the instructions metrics cost per request (docs/benchmarks.md).
        #: Jobs label the shared queries family by task, not route, and keep the values' own locks.
        self.request_lock = threading.Lock()
        registry.register(_PoolRefresher(self))
        self.http_duration = Histogram(
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests.",
            HTTP_LABELS,
            buckets=HTTP_DURATION_BUCKETS,
            unit="seconds",
            registry=registry,
        )
        self.http_active = Gauge(
            "http_server_active_requests",
            "Number of active HTTP server requests.",
            ["http_request_method"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.http_request_size = Histogram(
            "http_server_request_body_size_bytes",
            "Size of HTTP server request bodies (bytes received).",
            HTTP_LABELS,
            buckets=BODY_SIZE_BUCKETS,
            unit="bytes",
            registry=registry,
        )
        self.http_response_size = Histogram(
            "http_server_response_body_size_bytes",
            "Size of HTTP server response bodies (bytes sent).",
            HTTP_LABELS,
            buckets=BODY_SIZE_BUCKETS,
            unit="bytes",
            registry=registry,
        )
        self.websocket_duration = Histogram(
            "http_server_websocket_connection_duration_seconds",
            "Duration of WebSocket connections, by route (the count is connections handled).",
            ["http_route"],
            buckets=WEBSOCKET_DURATION_BUCKETS,
            unit="seconds",
            registry=registry,
        )
        self.websocket_active = Gauge(
            "http_server_active_websocket_connections",
            "Number of open WebSocket connections.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.db_duration = Histogram(
            "db_client_operation_duration_seconds",
            "Duration of database client operations.",
            ["db_system_name", "db_operation_name"],
            buckets=DB_DURATION_BUCKETS,
            unit="seconds",
            registry=registry,
        )
        self.queries_per_request = Histogram(
            "db_client_queries_per_request",
            "Database statements executed per HTTP request, by route.",
            ["http_route"],
            buckets=QUERIES_PER_REQUEST_BUCKETS,
            registry=registry,
        )
        self.n_plus_one = Counter(
            "db_client_n_plus_one",
            "Statement fingerprints that ran at least the N+1 threshold times within one request (per request).",
            ["http_route"],
            registry=registry,
        )
        self.pool_connections = Gauge(
            "db_client_connection_count",
            "Connections in the pool by state (idle|used).",
            ["pool_name", "state"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.pool_max = Gauge(
            "db_client_connection_max",
            "Maximum number of connections the pool allows.",
            ["pool_name"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.pool_pending = Gauge(
            "db_client_connection_pending_requests",
            "Requests waiting for a connection from the pool.",
            ["pool_name"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.pool_info = Gauge(
            "db_client_connection_pool_info",
            "Value 1; the pool's configured minimum and maximum size, idle timeout and connect timeout "
            "(seconds), empty when the pool has no such setting.",
            ["pool_name", "min", "max", "idle_timeout_seconds", "connect_timeout_seconds"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.pool_wait = Histogram(
            "db_client_connection_wait_time_seconds",
            "Time it took to obtain a connection from the pool.",
            ["pool_name"],
            buckets=DB_DURATION_BUCKETS,
            unit="seconds",
            registry=registry,
        )
        self.cache_requests = Counter(
            "cache_requests",
            "Cache lookups by result (hit|miss|error).",
            ["cache", "result"],
            registry=registry,
        )
        self.event_loop_lag = Histogram(
            "python_event_loop_lag_seconds",
            "How late the asyncio event loop ran a callback that was due (every request on the loop waits as long).",
            buckets=EVENT_LOOP_LAG_BUCKETS,
            unit="seconds",
            registry=registry,
        )
        self.event_loop_blocked = Counter(
            "http_server_event_loop_blocked_seconds",
            "Time the event loop was blocked (a callback held it past the blocking threshold) by a request "
            "of the route: synchronous work in an async endpoint.",
            ["http_route"],
            unit="seconds",
            registry=registry,
        )
        self.health_status = Gauge(
            "health_check_status",
            "1 when the health check passed on its last evaluation, 0 when it failed.",
            ["check"],
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.cache_control = Counter(
            "http_server_responses_cache_control",
            "HTTP server responses by route and Cache-Control class "
            "(public-immutable|public|private-no-cache|no-store|none).",
            ["http_route", "cache_control"],
            registry=registry,
        )
        self.content_encoding = Counter(
            "http_server_responses_content_encoding",
            "HTTP server responses worth compressing (compressible type, sent encoded or from 1 KiB) by route and "
            "Content-Encoding class (gzip|br|zstd|deflate|identity|other).",
            ["http_route", "content_encoding"],
            registry=registry,
        )
        self.cdn_requests = Counter(
            "http_server_requests_cdn",
            "HTTP server requests by route and the CDN their headers say they came through "
            "(cloudflare|cloudfront|fastly|akamai|azure|other|none).",
            ["http_route", "cdn"],
            registry=registry,
        )
        self.instrumentation_info = InfoSeries(registry)
        self.health_last_run = Gauge(
            "health_check_last_run_timestamp_seconds",
            "Unix time the health check last finished (on the timer or for a /health request).",
            ["check"],
            registry=registry,
            multiprocess_mode="livemax",
        )

    def db_duration_child(self, system: str, operation: str) -> Any:
        """The ``db_client_operation_duration_seconds`` child for a label pair, cached (hot path)."""
        child = self._db_children.get((system, operation))
        if child is None:
            child = self._db_children[(system, operation)] = self.db_duration.labels(system, operation)
        return child

    def watch_pool(self, watch: Any) -> None:
        """Add a :class:`~stackwatch.instrumentation.pools.PoolWatch` to refresh."""
        with self._pools_lock:
            self._pools.append(watch)
        _refreshed(watch)

    def unwatch_pool(self, watch: Any) -> None:
        """Stop refreshing ``watch`` and drop its gauges, unless another watched pool reports under its name."""
        with self._pools_lock:
            self._pools = [w for w in self._pools if w is not watch]
            if all(w.name != watch.name for w in self._pools):
                watch.forget()

    def refresh_pools(self) -> None:
        """Copy every watched pool's figures into the gauges; forget pools that are gone.

        A pool whose figures cannot be read keeps its previous values and logs; the scrape goes on.
        """
        with self._pools_lock:
            live = [w for w in self._pools if _refreshed(w)]
            if len(live) < len(self._pools):
                # A pool re-created under the same name shares the gauge children: keep them.
                names = {w.name for w in live}
                for gone in self._pools:
                    if gone not in live and gone.name not in names:
                        gone.forget()
            self._pools = live
            self._pools_refreshed = time.monotonic()

    def refresh_pools_if_due(self, interval: float = 1.0) -> None:
        """:meth:`refresh_pools` at most every ``interval`` seconds (multiprocess workers)."""
        if self._pools and time.monotonic() - self._pools_refreshed >= interval:
            self.refresh_pools()


def _refreshed(watch: Any) -> bool:
    """``watch.refresh()``, contained: False only once its pool is gone."""
    try:
        return bool(watch.refresh())
    except Exception:
        logger.warning("pool %r: reading its figures failed", watch.name, exc_info=True)
        return True


_lock = threading.Lock()
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, Metrics] = weakref.WeakKeyDictionary()


def get_metrics(registry: CollectorRegistry | None = None) -> Metrics:
    """The :class:`Metrics` of ``registry`` (default: client_python's global ``REGISTRY``).

    Created on first use and shared afterwards, so several apps, pools and caches in one process
    write into the same families instead of failing with duplicate registrations.
    """
    registry = REGISTRY if registry is None else registry
    with _lock:
        metrics = _by_registry.get(registry)
        if metrics is None:
            metrics = _by_registry[registry] = Metrics(registry)
        return metrics
