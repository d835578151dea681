"""``pg.connection_churn``: sessions opened per transaction in the checked database.

The checklist's pitfall "No connection pooling - Creating new connections per request" shows
as as many sessions as transactions; a pool opens a handful per process start. PostgreSQL 14+
counts sessions in ``pg_stat_database``; the ratio is read since its statistics were reset, so
it judges the database's history, and the evidence says since when. Under one new session a
second on average nothing is judged: a quiet database polled by monitoring (the exporter reads
tables and indexes on a short-lived connection per database) shows a high ratio of few sessions.
The alert ``PostgresConnectionChurn`` watches the same ratio as a rate, with the same guard.
"""

from __future__ import annotations

from stackwatch.core.postgres.source import PostgresSource
from stackwatch.thresholds import PostgresThresholds

from .items import CHURN
from .model import Finding, Status

__all__ = ["churn_finding"]

_SQL = """
SELECT sessions, xact_commit + xact_rollback AS transactions,
       extract(epoch FROM now() - coalesce(stats_reset, pg_postmaster_start_time()))::float8 AS seconds
FROM pg_stat_database WHERE datname = current_database()
"""

_FIX = ("share one pool per process (psycopg_pool, SQLAlchemy's engine, asyncpg's pool; wrap it with "
        "stackwatch.instrumentation.instrument_pool) or put PgBouncer in front of clients that cannot pool")


def churn_finding(source: PostgresSource, thresholds: PostgresThresholds) -> Finding:
    if source.version < 140000:
        return CHURN.finding(Status.UNKNOWN, "PostgreSQL 13 and older do not count sessions "
                             "(pg_stat_database.sessions)", "upgrade to PostgreSQL 14+ to have churn measured")
    row = source.rows(_SQL)[0]
    sessions, transactions = float(row["sessions"] or 0), float(row["transactions"] or 0)
    seconds = max(float(row["seconds"] or 0), 1.0)
    evidence = f"{sessions:.0f} sessions for {transactions:.0f} transactions in {seconds / 3600:.1f}h since the " \
               "statistics reset"
    if sessions < thresholds.churn_min_sessions:
        return CHURN.finding(Status.PASS, evidence + f" (fewer than {thresholds.churn_min_sessions} sessions)")
    if sessions / seconds < thresholds.min_new_sessions_per_second:
        return CHURN.finding(Status.PASS, evidence + f" ({sessions / seconds:.2g} new sessions/s: under "
                             f"{thresholds.min_new_sessions_per_second:g}/s)")
    ratio = sessions / max(transactions, 1.0)
    evidence += f": {ratio:.2f} sessions per transaction"
    if ratio > thresholds.new_sessions_per_transaction:
        return CHURN.finding(Status.FAIL, evidence + f" > {thresholds.new_sessions_per_transaction:g}", _FIX)
    return CHURN.finding(Status.PASS, evidence)
