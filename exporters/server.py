"""The exporter's HTTP server: ``/metrics``, ``/probe``, ``/-/healthy``, ``/-/ready``.

With ``--web.config.file`` (see ``webconfig.py``) every endpoint is served over TLS and/or
behind basic auth (changes to that file apply without a restart). The TLS handshake runs in
the connection's own thread, not in the accept loop, so one slow or broken client cannot stall
the others; idle keep-alive connections are closed after ``_Handler.timeout`` seconds.

Scrapes never touch a database: they serve each target's snapshot (see ``target.py``) in the
format the scraper asked for (OpenMetrics or the text format), gzipped when accepted. The
encoded targets' part is kept until a poll changes a snapshot (``Target.generation``), so a
scrape between polls only encodes the exporter's own process metrics. Every target's series
carry ``server="<target name>"``, on ``/metrics`` (where several instances share one family)
and on ``/probe?target=NAME`` (the blackbox-style multi-target pattern) alike, so alert texts
and dashboards read the same labels either way.
"""

from __future__ import annotations

import gzip
import json
import logging
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder

from .families import info, relabel
from .target import Poller, Target
from .webconfig import ActiveWebConfig, WebConfigFile

__all__ = ["Exporter", "ExporterHTTPServer"]

log = logging.getLogger("stackwatch.exporters")


class _Families:
    """A registry-compatible collector over a fixed list of families."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def merge(families: Iterable[Metric]) -> list[Metric]:
    """One family per name, so several targets can contribute samples to it."""
    merged: dict[str, Metric] = {}
    for family in families:
        existing = merged.get(family.name)
        if existing is None:
            merged[family.name] = family
        else:
            existing.samples.extend(family.samples)
    return list(merged.values())


class Exporter:
    """The targets, their pollers, and what each endpoint renders."""

    def __init__(self, targets: Sequence[Target[Any]], probe_targets: Mapping[str, Target[Any]]) -> None:
        self.targets = list(targets)
        self.probe_targets = dict(probe_targets)
        self.stop_event = threading.Event()
        self._pollers: list[Poller] = []
        self._cache: dict[tuple[str, ...], tuple[tuple[int, ...], bytes]] = {}
        self._cache_lock = threading.Lock()
        self._own = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self._own)
        PlatformCollector(registry=self._own)

    def all_targets(self) -> list[Target[Any]]:
        seen = {id(t): t for t in [*self.targets, *self.probe_targets.values()]}
        return list(seen.values())

    def start(self) -> None:
        for target in self.all_targets():
            for tier in target.tiers():
                poller = Poller(target, tier, self.stop_event)
                poller.start()
                self._pollers.append(poller)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling and close every connection (waits for in-flight polls up to ``timeout``)."""
        self.stop_event.set()
        for poller in self._pollers:
            poller.join(timeout)

    def ready(self) -> bool:
        """True once every target has been polled at least once (successfully or not)."""
        return all(t.polled.is_set() for t in self.all_targets())

    def metrics_registry(self) -> CollectorRegistry:
        """Everything ``/metrics`` serves, as a registry (the exporter's own process metrics too)."""
        return _registry(list(self._own.collect()) + self._families(self.targets)
                         + self._freshness(self.targets))

    def render_metrics(self, accept: str) -> tuple[bytes, str]:
        """The ``/metrics`` body for an ``Accept`` header, and its content type."""
        encoder, content_type = choose_encoder(accept)
        targets = self._encoded(("metrics", content_type), self.targets, encoder)
        own = _unterminated(encoder(self._own), content_type)
        fresh = _unterminated(encoder(_registry(self._freshness(self.targets))), content_type)
        return own + fresh + targets, content_type

    def probe_registry(self, name: str) -> CollectorRegistry | None:
        """What ``/probe?target=NAME`` serves, as a registry (None for an unknown target)."""
        target = self.probe_targets.get(name)
        return None if target is None else _registry(self._families([target]) + self._freshness([target]))

    def render_probe(self, name: str, accept: str) -> tuple[bytes, str] | None:
        """The ``/probe?target=NAME`` body and content type, or None for an unknown target."""
        target = self.probe_targets.get(name)
        if target is None:
            return None
        encoder, content_type = choose_encoder(accept)
        fresh = _unterminated(encoder(_registry(self._freshness([target]))), content_type)
        return fresh + self._encoded(("probe", name, content_type), [target], encoder), content_type

    @staticmethod
    def _families(targets: Sequence[Target[Any]]) -> list[Metric]:
        families: list[Metric] = []
        for target in targets:
            families.extend(relabel([*target.families(), _target_info(target)], {"server": target.name}))
        return merge(families)

    @staticmethod
    def _freshness(targets: Sequence[Target[Any]]) -> list[Metric]:
        """The snapshot ages: computed for every scrape, outside the cached encoding."""
        return merge(m for t in targets for m in relabel(t.freshness(), {"server": t.name}))

    def _encoded(self, key: tuple[str, ...], targets: Sequence[Target[Any]],
                 encoder: Callable[[CollectorRegistry], bytes]) -> bytes:
        """The encoding of ``targets``, reused while none of their snapshots changed."""
        generations = tuple(t.generation for t in targets)
        with self._cache_lock:
            cached = self._cache.get(key)
        if cached is not None and cached[0] == generations:
            return cached[1]
        body = encoder(_registry(self._families(targets)))
        with self._cache_lock:
            self._cache[key] = (generations, body)
        return body


def _target_info(target: Target[Any]) -> Metric:
    """Which kind of target this is: lets absent-style alerts watch, per instance, only the
    kinds an exporter was configured with (a Redis-only exporter serves no ``pg_up``)."""
    family = info("stackwatch_exporter_target", "A target this exporter was configured with, by kind "
                  "(the prefix of its families: pg, redis, process).", ["kind"])
    family.add_metric([target.prefix], {})
    return family


def _unterminated(body: bytes, content_type: str) -> bytes:
    """``body`` without its OpenMetrics ``# EOF``: one terminator, at the very end of a response."""
    if content_type.startswith("application/openmetrics-text"):
        return body.removesuffix(b"# EOF\n")
    return body


def _registry(families: list[Metric]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return registry


class _Handler(BaseHTTPRequestHandler):
    server: ExporterHTTPServer
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: without TCP_NODELAY, Nagle holds the body until the
    # client's delayed ACK of the headers (~40 ms per keep-alive scrape)
    disable_nagle_algorithm = True
    # the Server header names the software, not the Python version behind it
    server_version = "stackwatch-exporter"
    sys_version = ""
    #: seconds a connection may sit idle (or a request trickle in) before it is closed
    timeout = 300

    def do_GET(self) -> None:
        with self.server.in_flight():
            if self.server.draining:
                self.close_connection = True  # no keep-alive while shutting down
            self._route()

    def _route(self) -> None:
        if not self.server.authorize(self):
            return
        url = urlsplit(self.path)
        exporter = self.server.exporter
        accept = self.headers.get("Accept", "")
        if url.path == "/metrics":
            self._serve_metrics(*exporter.render_metrics(accept))
        elif url.path == "/probe":
            name = parse_qs(url.query).get("target", [""])[0]
            rendered = exporter.render_probe(name, accept) if name else None
            if rendered is None:
                known = ", ".join(sorted(exporter.probe_targets)) or "none configured (see --targets-file)"
                self._send(HTTPStatus.BAD_REQUEST, "text/plain; charset=utf-8",
                           f"unknown or missing target parameter; known targets: {known}\n".encode())
            else:
                self._serve_metrics(*rendered)
        elif url.path == "/-/healthy":
            self._send(HTTPStatus.OK, "text/plain; charset=utf-8", b"OK\n")
        elif url.path == "/-/ready":
            ready = exporter.ready()
            body = json.dumps({"ready": ready, "targets": [
                {"name": t.name, "polled": t.polled.is_set()} for t in exporter.all_targets()]})
            self._send(HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE, "application/json",
                       body.encode() + b"\n")
        elif url.path == "/":
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", _LANDING)
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n")

    def _serve_metrics(self, body: bytes, content_type: str) -> None:
        headers = {}
        if "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        self._send(HTTPStatus.OK, content_type, body, headers)

    def _send(self, status: HTTPStatus, content_type: str, body: bytes,
              headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in {**self.server.active().headers, **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET  # noqa: N815 - http.server's naming

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)


_LANDING = b"""<!doctype html><html><head><title>stackwatch exporter</title></head><body>
<h1>stackwatch exporter</h1><ul><li><a href="/metrics">/metrics</a></li>
<li>/probe?target=NAME</li><li><a href="/-/healthy">/-/healthy</a></li>
<li><a href="/-/ready">/-/ready</a></li></ul></body></html>
"""


_PLAIN = ActiveWebConfig()
_REFUSAL_BODY = b"too many connections to the exporter; retry later\n"
_REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Connection: close\r\nRetry-After: 1\r\nContent-Length: %d\r\n\r\n%s"
            % (len(_REFUSAL_BODY), _REFUSAL_BODY))


class ExporterHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server bound to one exporter, with optional TLS and basic auth.

    Each connection is served by a thread of its own, up to :attr:`max_connections` at once:
    beyond that a new connection is answered ``503`` and closed at once (no thread), so a flood
    of idle or half-open connections cannot grow the exporter without bound.
    """

    daemon_threads = True
    #: seconds a client gets to complete the TLS handshake
    handshake_timeout = 10.0
    #: most connections served at once (one thread each)
    max_connections = 100
    #: seconds between two warnings about refused connections
    refusal_log_interval = 60.0

    def __init__(self, address: tuple[str, int], exporter: Exporter, web: WebConfigFile | None = None) -> None:
        self._web = web
        #: fixed for the server's life (a reload that would change it is refused)
        self.scheme = "https" if web is not None and web.config.tls is not None else "http"
        self._busy = 0
        self._idle = threading.Condition()
        self._connections = 0
        self._connections_lock = threading.Lock()
        self._refused = 0
        self._refusal_logged = -self.refusal_log_interval
        self.draining = False
        # an IPv6 host (--listen [::1]:9188 or [::]:9188) needs an IPv6 socket
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)
        self.exporter = exporter

    @contextmanager
    def in_flight(self) -> Iterator[None]:
        """Count a request while it is being answered (see ``drain``)."""
        with self._idle:
            self._busy += 1
        try:
            yield
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for requests in flight to be answered; False if some were not.

        Handler threads are daemons (an idle keep-alive connection must not hold up shutdown),
        so this is what lets a scrape that is being answered at SIGTERM complete.
        """
        self.draining = True
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection in a thread of its own, or refuse it when at the cap."""
        with self._connections_lock:
            full = self._connections >= self.max_connections
            if not full:
                self._connections += 1
        if full:
            self._refuse(request, client_address)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # the thread did not start: it will not count itself out
            with self._connections_lock:
                self._connections -= 1
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections -= 1

    def _refuse(self, request: socket.socket, client_address: Any) -> None:
        """Answer 503 without reading the request (plain HTTP only) and close, never blocking."""
        self._refused += 1
        now = time.monotonic()
        if now - self._refusal_logged >= self.refusal_log_interval:
            self._refusal_logged = now
            log.warning("refusing connections: %d are open (the most served at once); %d refused so far",
                        self.max_connections, self._refused)
        if self.active().tls is None:
            try:
                request.setblocking(False)
                request.send(_REFUSAL)
            except OSError:
                pass
        self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-request is routine (a debug line); anything else is logged
        with its traceback through logging, never printed to stderr."""
        error = sys.exc_info()[1]
        peer = client_address[0] if isinstance(client_address, tuple) and client_address else client_address
        if isinstance(error, OSError):  # reset, broken pipe, timeout, TLS errors
            log.debug("%s: connection closed: %s", peer, error)
        else:
            log.error("%s: error while serving a request", peer, exc_info=error)

    def active(self) -> ActiveWebConfig:
        """The web config in force now (re-read when its files change)."""
        return _PLAIN if self._web is None else self._web.current()

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Handle one connection, after a TLS handshake when TLS is configured."""
        tls = self.active().tls
        if tls is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(self.handshake_timeout)
        try:
            conn = tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:
            log.debug("%s: TLS handshake failed: %s", client_address[0], error)
            return
        conn.settimeout(None)
        try:
            super().finish_request(conn, client_address)
        finally:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def authorize(self, handler: BaseHTTPRequestHandler) -> bool:
        """Whether the request may proceed (it has answered the request when not)."""
        active = self.active()
        if active.auth is None or active.auth.check(handler.headers.get("Authorization")):
            return True
        body = b"Unauthorized\n"
        handler.send_response(HTTPStatus.UNAUTHORIZED)
        handler.send_header("WWW-Authenticate", "Basic")
        handler.send_header("Content-Type", "text/plain; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        for key, value in active.headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)
        return False
