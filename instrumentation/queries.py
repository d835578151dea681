"""Per-request statement bookkeeping: query counts and N+1 detection, independent of sampling.

The middleware opens a :class:`RequestQueries` for every request (a context variable, so it
follows the request through ``await`` and into threads started with ``contextvars``). Database
hooks call :func:`record_query`; the request's route is only known when it ends, so the
middleware turns the totals into ``db_client_queries_per_request`` and
``db_client_n_plus_one_total`` then.

Some repeats are meant (keyset pagination: one statement, a new cursor each turn). They are not
N+1 when their fingerprint is allowed (:class:`NPlusOnePolicy`), when they run inside
:func:`allow_n_plus_one`, or while their total duration stays below the policy's floor (as in
Sentry's detector: repeats that are fast in total are not worth batching).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from opentelemetry import trace

from .errors import NPlusOneError
from .metrics import Metrics
from .sql import describe, fingerprint

__all__ = [
    "DeferredSources",
    "NPlusOnePolicy",
    "RequestQueries",
    "allow_n_plus_one",
    "current_queries",
    "record_query",
    "request_queries",
]

logger = logging.getLogger("stackwatch.instrumentation.n_plus_one")

request_queries: ContextVar[RequestQueries | None] = ContextVar("stackwatch_request_queries", default=None)
_allowed: ContextVar[bool] = ContextVar("stackwatch_n_plus_one_allowed", default=False)


@contextmanager
def allow_n_plus_one() -> Iterator[None]:
    """Statements run inside the block are counted but never reported as N+1 (meant repeats).

    ``with allow_n_plus_one(): async for page in keyset_pages(conn): ...``
    """
    token = _allowed.set(True)
    try:
        yield
    finally:
        _allowed.reset(token)


class NPlusOnePolicy:
    """What counts as N+1: ``threshold`` repeats of one fingerprint in one request, unless allowed.

    ``allow`` holds statements or fingerprints that are never N+1 (normalized here);
    ``min_seconds`` is the total duration the repeats must reach as well (0: any).
    """

    __slots__ = ("allow", "min_seconds", "strict", "threshold")

    def __init__(self, threshold: int, strict: bool = False, allow: Iterable[str] = (),
                 min_seconds: float = 0.0) -> None:
        self.threshold = threshold
        self.strict = strict
        self.allow = frozenset(fingerprint(statement) for statement in allow)
        self.min_seconds = min_seconds


class DeferredSources:
    """Whether some instrumented driver reports statements a loop iteration late (asyncpg).

    Then the middleware lets the loop run once before it reads the request's totals, so the
    last statements of a request still count toward it.
    """

    present = False


class RequestQueries:
    """Statements seen by one request: a total and a count (and duration) per fingerprint."""

    __slots__ = ("by_fingerprint", "count", "flagged", "policy", "seconds")

    def __init__(self, policy: NPlusOnePolicy) -> None:
        self.count = 0
        self.by_fingerprint: dict[str, int] | None = None
        self.seconds: dict[str, float] | None = None
        self.flagged: list[str] = []
        self.policy = policy

    def note(self, fingerprint: str, seconds: float = 0.0) -> None:
        """Count one statement; flag its fingerprint the moment it becomes an N+1."""
        self.count += 1
        seen = self.by_fingerprint
        if seen is None:
            seen = self.by_fingerprint = {}
        repeats = seen.get(fingerprint, 0) + 1
        seen[fingerprint] = repeats
        policy = self.policy
        if policy.min_seconds:
            durations = self.seconds
            if durations is None:
                durations = self.seconds = {}
            total = durations[fingerprint] = durations.get(fingerprint, 0.0) + seconds
            if repeats < policy.threshold or total < policy.min_seconds or fingerprint in self.flagged:
                return
        elif repeats != policy.threshold:
            return
        if fingerprint in policy.allow or _allowed.get():
            return
        self.flagged.append(fingerprint)
        trace.get_current_span().add_event(
            "db.n_plus_one", {"db.query.summary": fingerprint, "db.n_plus_one.repeats": repeats}
        )
        logger.warning("N+1 query pattern: %d executions of %s", repeats, fingerprint)
        if policy.strict:
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
        queries.note(fingerprint, seconds)
