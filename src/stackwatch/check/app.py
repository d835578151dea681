"""Application items (``--app-url``): a green health endpoint, gzip on large responses, /metrics.

The app is asked exactly what a load balancer, a browser and Prometheus would ask, with GETs
only. For compression the check needs a response large enough to be worth compressing: it
tries ``--app-large-path`` when given, else ``/openapi.json`` (an ordinary app response, where
FastAPI serves one), else ``/metrics``; with ``--prometheus-url`` every route's responses are
judged too (:mod:`.compression`), so one compressed path cannot hide the others.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from stackwatch.core.redact import redact
from stackwatch.core.web import Response, get

from ..thresholds import HTTP, HttpThresholds
from .compression import FIX, combined
from .items import APP_ITEMS as ITEMS
from .items import COMPRESSION, HEALTH, METRICS
from .model import Finding, Status
from .promapi import Prometheus
from .runner import Budget

__all__ = ["ITEMS", "AppCheck"]


_GREEN = {"ok", "pass", "passing", "healthy", "up", "green"}


@dataclass
class AppCheck:
    """The application items for one base URL."""

    url: str
    health_path: str = "/health"
    large_path: str | None = None
    thresholds: HttpThresholds = HTTP
    #: the services' series, judged with the probe for compression (``--prometheus-url``)
    prometheus: Prometheus | None = None

    def run(self, budget: Budget) -> Iterator[Finding]:
        self.budget = budget
        yield self._health()
        probe = self._compression()
        yield probe if self.prometheus is None else combined(probe, self.prometheus)
        yield self._metrics()

    def _get(self, path: str, **headers: str) -> Response | str:
        """The response, or why there is none."""
        url = self.url.rstrip("/") + path
        try:
            return get(url, self.budget.seconds(), headers)
        except OSError as error:
            return f"GET {redact(url)} failed: {getattr(error, 'reason', error)}"

    def _health(self) -> Finding:
        response = self._get(self.health_path, Accept="application/json")
        fix = f"serve {self.health_path} with 200 when the service and its dependencies work, 503 otherwise"
        if isinstance(response, str):
            return HEALTH.finding(Status.FAIL, response, fix)
        status = _body_status(response)
        evidence = f"GET {self.health_path}: HTTP {response.status}" + (f", status {status!r}" if status else "")
        if response.status == 404:
            return HEALTH.finding(Status.FAIL, evidence, fix)
        if response.status != 200 or (status is not None and status.lower() not in _GREEN):
            failing = _failing_checks(response)
            return HEALTH.finding(Status.FAIL, evidence + (f"; failing: {', '.join(failing)}" if failing else ""),
                                  "fix the failing dependency the health body names")
        return HEALTH.finding(Status.PASS, evidence)

    def _compression(self) -> Finding:
        paths = [self.large_path] if self.large_path else ["/openapi.json", "/metrics"]
        smallest = self.thresholds.compression_min_bytes
        tried = []
        for path in paths:
            response = self._get(path, **{"Accept-Encoding": "gzip"})
            if isinstance(response, str) or response.status != 200:
                tried.append(f"{path}: {response if isinstance(response, str) else 'HTTP ' + str(response.status)}")
                continue
            encoding = response.headers.get("content-encoding", "identity").lower()
            size = _decoded_size(response.body, encoding)
            if size < smallest:
                tried.append(f"{path}: {size} bytes")
                continue
            evidence = f"GET {path} ({size} bytes) with Accept-Encoding: gzip: Content-Encoding {encoding}"
            if encoding in ("gzip", "br", "deflate", "zstd"):
                return COMPRESSION.finding(Status.PASS, evidence + f", {len(response.body)} bytes sent")
            return COMPRESSION.finding(Status.FAIL, evidence, FIX)
        return COMPRESSION.finding(Status.UNKNOWN, f"no response of >= {smallest} bytes to test ({'; '.join(tried)})",
                                   "pass --app-large-path with a path that returns a large response")

    def _metrics(self) -> Finding:
        response = self._get("/metrics")
        fix = "expose /metrics (stackwatch.instrumentation does) and add it to Prometheus's scrape_configs"
        if isinstance(response, str):
            return METRICS.finding(Status.FAIL, response, fix)
        if response.status != 200:
            return METRICS.finding(Status.FAIL, f"GET /metrics: HTTP {response.status}", fix)
        try:
            text = _decode(response.body, response.headers.get("content-encoding", "identity")).decode("utf-8")
            families = [f.name for f in text_string_to_metric_families(text)]
        except (ValueError, UnicodeDecodeError, OSError, zlib.error) as error:
            return METRICS.finding(Status.FAIL, f"GET /metrics: not Prometheus text format ({error})", fix)
        red = [n for n in families if n.startswith("http_server_request_duration_seconds")]
        evidence = f"GET /metrics: {len(families)} metric families" + (
            "" if red else "; no http_server_request_duration_seconds (RED metrics)")
        if not families:
            return METRICS.finding(Status.FAIL, evidence, fix)
        if not red:
            return METRICS.finding(Status.WARN, evidence, "add RED metrics: stackwatch.instrumentation.instrument(app)")
        return METRICS.finding(Status.PASS, evidence)


def _decode(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


def _decoded_size(body: bytes, encoding: str) -> int:
    try:
        return len(_decode(body, encoding))
    except (OSError, zlib.error):
        return len(body)


def _json(response: Response) -> object:
    try:
        return json.loads(response.body)
    except ValueError:
        return None


def _body_status(response: Response) -> str | None:
    body = _json(response)
    return str(body["status"]) if isinstance(body, dict) and "status" in body else None


def _failing_checks(response: Response) -> list[str]:
    body = _json(response)
    checks = body.get("checks") if isinstance(body, dict) else None
    if not isinstance(checks, dict):
        return []
    return [name for name, result in checks.items()
            if isinstance(result, dict) and str(result.get("status", "ok")).lower() not in _GREEN]
