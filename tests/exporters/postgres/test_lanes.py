"""Tiers against a real server: a slow tier never starves the fast one, schedules survive
reconnects, and a server-wide idle_session_timeout does not make the exporter flap."""

from __future__ import annotations

import threading
import time

from prometheus_client.core import Metric

from stackwatch.core.postgres.source import PostgresSource
from stackwatch.exporters.collector import Collector, Intervals, Tier
from stackwatch.exporters.families import gauge
from stackwatch.exporters.postgres import PostgresOptions
from stackwatch.exporters.postgres.activity import ActivityCollector
from stackwatch.exporters.postgres.target import PostgresTarget
from stackwatch.exporters.server import Exporter
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.procs import wait_until


class SleepingSlowCollector(Collector[PostgresSource]):
    """A slow-tier collector whose query takes ``seconds`` on the server (as a big catalog does)."""

    name = "sleeping"
    tier = Tier.SLOW

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.polls = 0
        self.running = threading.Event()

    def collect(self, source: PostgresSource) -> list[Metric]:
        self.polls += 1
        self.running.set()
        source.rows("SELECT pg_sleep(%s)", (self.seconds,))
        family = gauge("test_sleeping_polls", "polls so far")
        family.add_metric([], self.polls)
        return [family]


def sample(exporter: Exporter, name: str, **labels: str) -> float | None:
    return exporter.metrics_registry().get_sample_value(name, {"server": "t", **labels})


def test_slow_tier_does_not_starve_the_fast_tier(postgres: PostgresServer) -> None:
    """While a slow-tier query sleeps 3 s on the server, the fast tier keeps polling on its own
    thread and connection: its snapshot stays fresh and its age says so."""
    slow = SleepingSlowCollector(3.0)
    target = PostgresTarget("t", postgres.monitor_dsn, [ActivityCollector(), slow],
                            Intervals(fast=0.2, slow=3600), PostgresOptions())
    exporter = Exporter([target], {})
    exporter.start()
    try:
        assert slow.running.wait(20)
        time.sleep(1.5)  # well inside the slow poll
        assert slow.polls == 1 and sample(exporter, "test_sleeping_polls") is None  # still sleeping
        age = sample(exporter, "pg_scrape_collector_snapshot_age_seconds", collector="activity")
        assert age is not None and age < 1.0
        assert sample(exporter, "pg_up") == 1
        assert sample(exporter, "pg_scrape_collector_interval_seconds", collector="activity") == 0.2
        # the documented bound: the fast tier's connection and the slow tier's, nothing more
        backends = postgres.query("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'stackwatch'")
        assert backends[0][0] == 2
        wait_until(lambda: sample(exporter, "test_sleeping_polls") == 1, 20, "the slow poll to finish")
        # each lane keeps its connection between polls: two, as documented
        backends = postgres.query("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'stackwatch'")
        assert backends[0][0] == 2
    finally:
        exporter.stop()


def test_reconnect_keeps_the_tier_schedules(postgres: PostgresServer) -> None:
    """The fast tier's session is terminated: it reconnects without re-running the slow tier."""
    slow = SleepingSlowCollector(0.0)
    target = PostgresTarget("t", postgres.monitor_dsn, [ActivityCollector(), slow],
                            Intervals(fast=0.05, slow=3600), PostgresOptions())
    target.refresh()
    assert slow.polls == 1
    for _ in range(3):
        postgres.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'stackwatch'")
        time.sleep(0.1)
        target.refresh()  # meets the lost connection
        time.sleep(0.6)  # past the reconnect backoff
        target.refresh()
        assert target.up
    assert slow.polls == 1
    target.close()


def test_idle_session_timeout_below_the_interval_does_not_flap(postgres_factory) -> None:
    """idle_session_timeout (PostgreSQL 14+) shorter than the fast interval: the exporter's
    session stays, pg_up never drops, and the slow tier runs once."""
    server: PostgresServer = postgres_factory(idle_session_timeout="'300ms'")
    slow = SleepingSlowCollector(0.0)
    target = PostgresTarget("t", server.monitor_dsn, [ActivityCollector(), slow],
                            Intervals(fast=0.6, slow=3600), PostgresOptions())
    exporter = Exporter([target], {})
    exporter.start()
    try:
        wait_until(exporter.ready, 20, "the first poll")
        pids = server.query("SELECT pid FROM pg_stat_activity WHERE application_name = 'stackwatch' ORDER BY pid")
        ups = []
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            ups.append(sample(exporter, "pg_up"))
            time.sleep(0.05)
        assert set(ups) == {1.0}
        assert len(pids) == 2  # the fast and the slow tier's sessions, both kept
        assert server.query("SELECT pid FROM pg_stat_activity WHERE application_name = 'stackwatch' "
                            "ORDER BY pid") == pids
        assert slow.polls == 1
    finally:
        exporter.stop()


def test_a_session_closed_by_idle_session_timeout_is_named(postgres_factory) -> None:
    """Should the server still close the session for idling, the reason says which setting did."""
    server: PostgresServer = postgres_factory(idle_session_timeout="'300ms'")
    target = PostgresTarget("t", server.monitor_dsn, [ActivityCollector()], Intervals(fast=0.05),
                            PostgresOptions())
    target.refresh()
    source = target._lanes[Tier.FAST].source
    assert source is not None
    source.conn.execute("SET idle_session_timeout = '200ms'")  # as an older exporter's session had it
    time.sleep(0.6)
    target.refresh()
    families = target.families()
    reasons = {s.labels.get("reason") for f in families for s in f.samples if s.name == "pg_connection_error"}
    assert reasons == {"idle_session_timeout"}
    target.close()
