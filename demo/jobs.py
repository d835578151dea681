"""The demo's background job: a report built by an RQ worker instead of inside the request.

``POST /reports`` enqueues :func:`build_report` on the ``reports`` queue and answers 202 at once
(the checklist's "async processing for long tasks"); ``python -m demo.worker`` runs it. The
exporter reads the queue with ``--redis-queue rq:rq:queue:*``.
"""

from __future__ import annotations

import os
import time

import psycopg

from stackwatch.instrumentation import instrument_psycopg

__all__ = ["QUEUE", "build_report"]

#: the RQ queue the demo's reports go to
QUEUE = "reports"


def build_report(author_id: int) -> dict[str, int]:
    """Count an author's books the slow way a real report would (a query and some work)."""
    dsn = os.environ.get("DATABASE_URL") or os.environ.get("DEMO_DATABASE_URL") or "postgresql://postgres@127.0.0.1/demo"
    with psycopg.connect(dsn, application_name="demo-worker") as conn:
        instrument_psycopg(conn)  # the statement joins the job's trace and its N+1 bookkeeping
        row = conn.execute("SELECT count(*) FROM books WHERE author_id = %s", (author_id,)).fetchone()
    time.sleep(0.2)
    return {"author_id": author_id, "books": int(row[0]) if row else 0}
