"""The few Prometheus HTTP API calls the check makes: instant queries and the status endpoints."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from stackwatch.core.redact import redact
from stackwatch.core.web import get

from .model import SourceUnavailable
from .runner import Budget

__all__ = ["Prometheus", "PrometheusError"]


class PrometheusError(RuntimeError):
    """Prometheus answered, but with an error (bad query, API disabled)."""


class Prometheus:
    """A Prometheus server at ``url``; every call is bounded by the check's budget."""

    def __init__(self, url: str, budget: Budget) -> None:
        self.url = url.rstrip("/")
        self.budget = budget

    def api(self, path: str, **params: str) -> Any:
        """The ``data`` of ``GET /api/v1/<path>``."""
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        try:
            response = get(f"{self.url}/api/v1/{path}{query}", self.budget.seconds())
        except OSError as error:
            raise SourceUnavailable(f"cannot reach Prometheus at {redact(self.url)}: "
                                    f"{getattr(error, 'reason', error)}") from None
        try:
            payload = json.loads(response.body)
        except ValueError:
            raise PrometheusError(f"/api/v1/{path}: HTTP {response.status}, not JSON "
                                  "(is --prometheus-url a Prometheus?)") from None
        if payload.get("status") != "success":
            raise PrometheusError(f"/api/v1/{path}: {payload.get('error', 'HTTP ' + str(response.status))}")
        return payload["data"]

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        """An instant vector as ``(labels, value)`` pairs."""
        data = self.api("query", query=promql)
        return [(dict(r["metric"]), float(r["value"][1])) for r in data.get("result", [])]
