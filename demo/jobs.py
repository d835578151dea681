"""The demo's background job: a report built by an RQ worker instead of inside the request.

``POST /reports`` enqueues :func:`build_report` on the ``reports`` queue and answers 202 at once
(the checklist's "async processing for long tasks"); ``python -m demo.worker`` runs it. The
exporter reads the queue with ``--redis-queue rq:rq:queue:*``. The worker keeps a small pool
rather than connecting per job (the checklist's connection pooling holds for workers too).
"""

from __future__ import annotations

import functools
import os
import time

from psycopg_pool import ConnectionPool

from stackwatch.instrumentation import instrument_pool, instrument_psycopg

__all__ = ["QUEUE", "build_report"]

#: the RQ queue the demo's reports go to
QUEUE = "reports"


@functools.cache
def _pool() -> ConnectionPool:
    """The worker's pool, opened on the first job (nothing connects at import)."""
    dsn = os.environ.get("DATABASE_URL") or os.environ.get("DEMO_DATABASE_URL") or "postgresql://postgres@127.0.0.1/demo"
    pool = ConnectionPool(dsn, min_size=1, max_size=2, name="demo-worker", open=True,
                          kwargs={"application_name": "demo-worker"})
    instrument_psycopg(pool)  # the statements join the job's trace and its N+1 bookkeeping
    instrument_pool(pool, name="demo-worker")
    return pool


def build_report(author_id: int) -> dict[str, int]:
    """Count an author's books the slow way a real report would (a query and some work)."""
    with _pool().connection() as conn:
        row = conn.execute("SELECT count(*) FROM books WHERE author_id = %s", (author_id,)).fetchone()
    time.sleep(0.2)
    return {"author_id": author_id, "books": int(row[0]) if row else 0}
