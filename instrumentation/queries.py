"""Per-request statement bookkeeping: query counts and N+1 detection, independent of sampling.

The middleware opens a :class:`RequestQueries` for every request (a context variable, so it
follows the request through ``await`` and into threads started with ``contextvars``). Database
hooks call :func:`record_query`; the request's route is only known when it ends, so the
middleware turns the totals into ``db_client_queries_per_request`` and
``db_client_n_plus_one_total`` then.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

from opentelemetry import trace

from .errors import NPlusOneError
from .metrics import Metrics
from .sql import describe

__all__ = ["DeferredSources", "RequestQueries", "current_queries", "record_query", "request_queries"]

logger = logging.getLogger("stackwatch.instrumentation.n_plus_one")

request_queries: ContextVar[RequestQueries | None] = ContextVar("stackwatch_request_queries", default=None)


class DeferredSources:
    """Whether some instrumented driver reports statements a loop iteration late (asyncpg).

    Then the middleware lets the loop run once before it reads the request's totals, so the
    last statements of a request still count toward it.
    """

    present = False


class RequestQueries:
    """Statements seen by one request: a total and a count per fingerprint."""

    __slots__ = ("by_fingerprint", "count", "flagged", "strict", "threshold")

    def __init__(self, threshold: int, strict: bool) -> None:
        self.count = 0
        self.by_fingerprint: dict[str, int] | None = None
        self.flagged: list[str] = []
        self.threshold = threshold
        self.strict = strict

    def note(self, fingerprint: str) -> None:
        """Count one statement; flag its fingerprint the moment it reaches the threshold."""
        self.count += 1
        seen = self.by_fingerprint
        if seen is None:
            seen = self.by_fingerprint = {}
        repeats = seen.get(fingerprint, 0) + 1
        seen[fingerprint] = repeats
        if repeats == self.threshold:
            self.flagged.append(fingerprint)
            trace.get_current_span().add_event(
                "db.n_plus_one", {"db.query.summary": fingerprint, "db.n_plus_one.repeats": repeats}
            )
            logger.warning("N+1 query pattern: %d executions of %s", repeats, fingerprint)
            if self.strict:
                raise NPlusOneError(fingerprint, repeats)


def current_queries() -> RequestQueries | None:
    """The bookkeeping of the request being served, or None outside a request."""
    return request_queries.get()


def record_query(metrics: Metrics, system: str, statement: str, seconds: float) -> None:
    """Record one executed statement: duration histogram, then the request's N+1 bookkeeping."""
    operation, fingerprint = describe(statement)
    metrics.db_duration_child(system, operation).observe(seconds)
    queries = request_queries.get()
    if queries is not None:
        queries.note(fingerprint)
