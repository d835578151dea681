"""Run a PostgreSQL collector against a real server, as the exporter does, and read its samples.

Shared by the collector tests: the source is the least-privilege ``pg_monitor`` role through the
exporter's own connection code (``application_name=stackwatch``, timeouts), so a test sees
exactly what a poll sees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from prometheus_client.core import Metric

from stackwatch.core.postgres import connection
from stackwatch.core.postgres.source import PostgresOptions, PostgresSource
from stackwatch.exporters.collector import Collector
from tests.fixtures.postgres import PostgresServer

__all__ = ["collect_once", "collector", "monitor_source", "server_with", "value", "values"]


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


def server_with(database: str, *statements: str) -> Any:
    """A module-scoped ``server`` fixture: ``postgres_any_version`` (every major in turn) with
    ``database`` created (pg_stat_statements in it) and ``statements`` run there."""
    @pytest.fixture(scope="module")
    def server(postgres_any_version: PostgresServer) -> PostgresServer:
        postgres_any_version.create_database(database)
        for statement in statements:
            postgres_any_version.query(statement, dbname=database)
        return postgres_any_version

    return server


def collector(make: Callable[[], Collector[PostgresSource]], **defaults: Any) -> Callable[..., list[Metric]]:
    """``collect(server, collector=None, **options)``: one poll of ``collector`` (a fresh ``make()``
    when not given, so state between polls is the test's choice) with ``PostgresOptions(**defaults,
    **options)`` on the monitor role's connection."""
    def collect(server: PostgresServer, collector: Collector[PostgresSource] | None = None,
                **options: Any) -> list[Metric]:
        return collect_once(collector or make(), server, PostgresOptions(**{**defaults, **options}))

    return collect


def values(families: Iterable[Metric], name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every sample called ``name``, keyed by its label set."""
    return {frozenset(s.labels.items()): s.value for f in families for s in f.samples if s.name == name}


def value(families: Iterable[Metric], name: str, **labels: str) -> float | None:
    """The value of the sample ``name{labels}``, or None when absent."""
    return values(families, name).get(frozenset(labels.items()))
