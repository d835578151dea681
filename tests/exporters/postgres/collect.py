"""Run a PostgreSQL collector against a real server, as the exporter does, and read its samples.

Shared by the collector tests: the source is the least-privilege ``pg_monitor`` role through the
exporter's own connection code (``application_name=stackwatch``, timeouts), so a test sees
exactly what a poll sees.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prometheus_client.core import Metric

from stackwatch.exporters.collector import Collector
from stackwatch.exporters.postgres import connection
from stackwatch.exporters.postgres.source import PostgresOptions, PostgresSource
from tests.fixtures.postgres import PostgresServer

__all__ = ["collect_once", "monitor_source", "value", "values"]


@contextmanager
def monitor_source(server: PostgresServer, options: PostgresOptions | None = None,
                   dsn: str | None = None) -> Iterator[PostgresSource]:
    """A :class:`PostgresSource` on the monitor role's connection, closed afterwards."""
    options = options or PostgresOptions()
    dsn = dsn or server.monitor_dsn
    conn = connection.connect(dsn, options.connection)
    try:
        yield PostgresSource(conn=conn, dsn=dsn, version=conn.info.server_version, options=options)
    finally:
        conn.close()



def collect_once(collector: Collector[PostgresSource], server: PostgresServer,
                 options: PostgresOptions | None = None) -> list[Metric]:
    """One poll of ``collector`` on the monitor role's connection."""
    with monitor_source(server, options) as source:
        return collector.collect(source)

def values(families: Iterable[Metric], name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every sample called ``name``, keyed by its label set."""
    return {frozenset(s.labels.items()): s.value for f in families for s in f.samples if s.name == name}


def value(families: Iterable[Metric], name: str, **labels: str) -> float | None:
    """The value of the sample ``name{labels}``, or None when absent."""
    return values(families, name).get(frozenset(labels.items()))
