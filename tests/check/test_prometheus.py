"""Prometheus-backed items against a real Prometheus scraping a real prometheus_client endpoint.

Two setups share nothing: a healthy one (alert rules loaded, a running Alertmanager, every
target up, pools never waiting, no N+1, cgroup limits set, Redis mostly hitting) and a broken
one (no rules, no Alertmanager, an exporter target down, a pool waiting all along, N+1
detections, unlimited cgroups, Redis mostly missing).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from tests.check.conftest import Outcome, run_check
from tests.fixtures.procs import free_port, wait_until
from tests.fixtures.prometheus import AlertmanagerServer, PrometheusServer


@dataclass
class Setup:
    prometheus: PrometheusServer
    n_plus_one: Any
    outcome: Outcome | None = None


class Endpoint:
    """A real /metrics endpoint serving a registry with the families the check reads."""

    def __init__(self, healthy: bool) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        Gauge("db_client_connection_pending_requests", "Waiting.", ["pool_name"], registry=r) \
            .labels("main").set(0 if healthy else 3)
        # configured as the checklist suggests, or without a connect timeout and oversized
        Gauge("db_client_connection_pool_info", "Settings.", ["pool_name", "min", "max", "idle_timeout_seconds",
              "connect_timeout_seconds"], registry=r).labels("main", "5", "20" if healthy else "100", "30",
                                                             "2" if healthy else "").set(1)
        self.wait = Histogram("db_client_connection_wait_time_seconds", "Wait.", ["pool_name"],
                              registry=r).labels("main")
        self.wait_seconds = 0.001 if healthy else 0.4
        self.n_plus_one = Counter("db_client_n_plus_one", "N+1.", ["http_route"], registry=r)
        self.n_plus_one.labels("/orders").inc(0)
        Histogram("db_client_queries_per_request", "Queries.", ["http_route"], registry=r) \
            .labels("/orders").observe(2)
        for name in ("process_cgroup_memory_limited", "process_cgroup_cpu_limited"):
            Gauge(name, "Limited.", ["cgroup"], registry=r).labels("/system.slice/app.service").set(int(healthy))
        self.hits = Counter("redis_keyspace_hits", "Hits.", ["server"], registry=r).labels("cache")
        self.misses = Counter("redis_keyspace_misses", "Misses.", ["server"], registry=r).labels("cache")
        self.hit_share = 0.95 if healthy else 0.3
        # a route whose requests take 3 s (synchronous work a job should do) or 50 ms, at 100 req/s (a
        # short history reads as a far lower rate over the 5m window)
        self.request = Histogram("http_server_request_duration_seconds", "Requests.", ["http_route"],
                                 buckets=(0.1, 0.5, 1.0, 2.5, 5.0), registry=r).labels("/reports")
        self.request_seconds = 0.05 if healthy else 3.0
        # the exporter's queue series: drained and worked, or piling up with nobody working it
        queued = Gauge("job_queue_depth", "Jobs.", ["system", "queue", "state"], registry=r)
        queued.labels("rq", "emails", "queued").set(2 if healthy else 40)
        Gauge("job_queue_workers", "Workers.", ["system", "queue"], registry=r).labels("rq", "emails").set(
            2 if healthy else 0)
        Gauge("job_queue_oldest_age_seconds", "Age.", ["system", "queue"], registry=r).labels("rq", "emails").set(
            3 if healthy else 900)
        # the exporter's statement and replication series: a read-heavy primary with a replica that
        # keeps up and one not read-heavy (healthy), or a read-heavy one with no replica and one whose
        # replica is a minute behind (broken)
        self.calls = Counter("pg_stat_statements_calls", "Calls.", ["server", "command"], registry=r)
        self.statements = {("main", "select"): 95, ("main", "insert"): 5, ("main", "utility"): 50,
                           ("orders" if healthy else "reporting", "select"): 50,
                           ("orders" if healthy else "reporting", "update"): 50}
        lag = Gauge("pg_stat_replication_replay_lag_seconds", "Lag.", ["server", "application_name"], registry=r)
        if healthy:
            lag.labels("main", "replica1").set(0.5)
        else:
            lag.labels("reporting", "replica1").set(60)
        standby = Gauge("pg_replication_is_replica", "Standby.", ["server"], registry=r)
        for server in ("main", "orders" if healthy else "reporting"):
            standby.labels(server).set(0)
        self.port = free_port()
        self.server, _ = start_http_server(self.port, addr="127.0.0.1", registry=r)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._traffic, daemon=True)
        self.thread.start()

    def _traffic(self) -> None:
        while not self.stop.wait(0.1):
            self.wait.observe(self.wait_seconds)
            for _ in range(10):
                self.request.observe(self.request_seconds)
            for (server, command), calls in self.statements.items():
                self.calls.labels(server, command).inc(calls)
            self.hits.inc(100 * self.hit_share)
            self.misses.inc(100 * (1 - self.hit_share))

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def _config(endpoint: Endpoint, extra_jobs: list[dict[str, Any]], alertmanager: str | None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "demo", "static_configs": [{"targets": [f"127.0.0.1:{endpoint.port}"]}]},
                           *extra_jobs],
    }
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return config


def _samples(prometheus: PrometheusServer, expr: str) -> float:
    result = prometheus.query(expr)
    return float(result[0]["value"][1]) if result else 0.0


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    rules = tmp_path_factory.mktemp("rules")
    (rules / "check.yml").write_text(yaml.safe_dump({"groups": [{"name": "check", "rules": [{
        "alert": "NeverFires", "expr": "vector(1) == 0", "for": "1m",
        "labels": {"severity": "warning"}, "annotations": {"summary": "quiet"}}]}]}))
    endpoint = Endpoint(healthy=True)
    with AlertmanagerServer({"route": {"receiver": "null"}, "receivers": [{"name": "null"}]}) as am, \
            PrometheusServer(_config(endpoint, [], f"127.0.0.1:{am.port}"), rules_dir=rules) as prom:
        wait_until(lambda: _samples(prom, "count_over_time(redis_keyspace_hits_total[1m])") >= 3, 60,
                   "three scrapes")
        wait_until(lambda: bool(prom.api("alertmanagers")["activeAlertmanagers"]), 60, "Alertmanager discovery")
        yield Setup(prom, endpoint.n_plus_one)
    endpoint.close()


@pytest.fixture(scope="module")
def broken() -> Iterator[Setup]:
    endpoint = Endpoint(healthy=False)
    down = {"job_name": "stackwatch-exporter", "static_configs": [{"targets": [f"127.0.0.1:{free_port()}"]}]}
    with PrometheusServer(_config(endpoint, [down], None)) as prom:
        wait_until(lambda: _samples(prom, "count_over_time(db_client_n_plus_one_total[1m])") >= 2, 60,
                   "two scrapes")
        endpoint.n_plus_one.labels("/orders").inc(3)  # detections after Prometheus saw the counter at 0
        # as the instrumentation does: a route's counter is born with its first detection
        endpoint.n_plus_one.labels("/authors").inc(2)
        wait_until(lambda: _samples(prom, "sum(increase(db_client_n_plus_one_total[10m]))") > 0, 60,
                   "the N+1 increase")
        wait_until(lambda: _samples(prom, 'count_over_time(db_client_n_plus_one_total{http_route="/authors"}[1m])')
                   >= 2, 60, "two scrapes of the newborn N+1 counter")
        wait_until(lambda: all(t["health"] != "unknown" for t in prom.targets()), 60, "every target scraped")
        yield Setup(prom, endpoint.n_plus_one)
    endpoint.close()


def _outcome(setup: Setup) -> Outcome:
    if setup.outcome is None:
        setup.outcome = run_check("--format", "json", "--prometheus-url", setup.prometheus.url)
    return setup.outcome


@pytest.mark.parametrize("item", ["app.pool_waiting", "app.pool_settings", "app.n_plus_one", "ops.resource_limits",
                                  "ops.alert_rules", "ops.alertmanager", "ops.targets", "app.async_processing",
                                  "redis.queues", "pg.read_share"])
def test_item_passes_when_healthy_and_fails_when_broken(healthy: Setup, broken: Setup, item: str) -> None:
    assert _outcome(healthy).status(item) == "pass", _outcome(healthy).finding(item)
    assert _outcome(broken).status(item) == "fail", _outcome(broken).finding(item)


def test_evidence_names_what_is_wrong(broken: Setup) -> None:
    outcome = _outcome(broken)
    # routes and pools are named with their service (job)
    assert "/orders in demo (3)" in outcome.finding("app.n_plus_one")["evidence"]
    # a counter born inside the window counts too (increase() alone sees nothing of it)
    assert "/authors in demo (2)" in outcome.finding("app.n_plus_one")["evidence"]
    assert "main in demo: max 3" in outcome.finding("app.pool_waiting")["evidence"]
    assert "mean wait 400ms" in outcome.finding("app.pool_waiting")["evidence"]
    assert "no connect timeout up to 10s: main in demo" in outcome.finding("app.pool_settings")["evidence"]
    assert "stackwatch-exporter" in outcome.finding("ops.targets")["evidence"]
    assert "/system.slice/app.service" in outcome.finding("ops.resource_limits")["evidence"]
    assert "/reports in demo" in outcome.finding("app.async_processing")["evidence"]
    assert "no worker for rq emails (40 waiting)" in outcome.finding("redis.queues")["evidence"]
    assert "rq emails (900s)" in outcome.finding("redis.queues")["evidence"]
    read_share = outcome.finding("pg.read_share")["evidence"]
    assert re.search(r"main: 95% of [\d.]+ statement calls/s are SELECTs, and no replica streams from it", read_share)
    assert re.search(r"reporting: 50% of [\d.]+ statement calls/s are SELECTs; 1 replica\(s\), replay lag up to 60.0s",
                     read_share), read_share
    assert outcome.code == 1


def test_redis_hit_rate_comes_from_prometheus_when_given(healthy: Setup, broken: Setup, redis_factory: Any) -> None:
    server = redis_factory(maxmemory="16mb", maxmemory_policy="allkeys-lru")
    server.client().set("user:1", "x", ex=60)
    good = run_check("--format", "json", "--redis-url", server.url, "--prometheus-url", healthy.prometheus.url)
    bad = run_check("--format", "json", "--redis-url", server.url, "--prometheus-url", broken.prometheus.url)
    assert good.status("redis.hit_rate") == "pass", good.finding("redis.hit_rate")
    assert bad.status("redis.hit_rate") == "fail", bad.finding("redis.hit_rate")
    for outcome, share in ((good, 95.0), (bad, 30.0)):
        measured = re.search(r"from Prometheus \(TTL lookups left out\): cache ([\d.]+)%", outcome.finding("redis.hit_rate")["evidence"])
        assert measured and abs(float(measured[1]) - share) < 1, outcome.finding("redis.hit_rate")


def test_absent_families_are_unknown_with_what_would_produce_them() -> None:
    with PrometheusServer({"global": {"scrape_interval": "1s"}, "scrape_configs": []}) as prom:
        outcome = run_check("--format", "json", "--prometheus-url", prom.url)
    for item in ("app.pool_waiting", "app.n_plus_one", "ops.resource_limits", "app.latency", "app.error_ratio",
                 "app.throughput", "app.tracing", "app.error_tracking", "app.apm", "pg.read_share"):
        finding = outcome.finding(item)
        assert finding["status"] == "unknown" and finding["fix"], finding
    assert outcome.status("ops.targets") == "fail"


def test_unreachable_prometheus_exits_2() -> None:
    began = time.monotonic()
    outcome = run_check("--format", "json", "--prometheus-url", f"http://127.0.0.1:{free_port()}")
    assert outcome.code == 2 and "cannot reach Prometheus" in outcome.report["errors"][0]
    assert outcome.status("ops.targets") == "unknown"
    assert time.monotonic() - began < 30


def test_a_prometheus_url_that_is_not_prometheus_exits_2() -> None:
    """A wrong --prometheus-url (here a bare /metrics server) is a usage error, not a clean run."""
    port = free_port()
    server, _ = start_http_server(port, addr="127.0.0.1", registry=CollectorRegistry())
    try:
        outcome = run_check("--format", "json", "--prometheus-url", f"http://127.0.0.1:{port}")
    finally:
        server.shutdown()
    assert outcome.code == 2, outcome.out
    assert "is --prometheus-url a Prometheus?" in outcome.report["errors"][0]
    assert outcome.status("ops.targets") == "unknown"


def test_prometheus_url_credentials_are_redacted(healthy: Setup) -> None:
    url = healthy.prometheus.url.replace("http://", "http://admin:prom-pass-789@")
    outcome = run_check("--format", "markdown", "--prometheus-url", url)
    assert "prom-pass-789" not in outcome.out + outcome.err
    assert "| ✅ pass |" in outcome.out


def test_slow_connection_acquisition_warns_even_without_a_queue(healthy: Setup) -> None:
    import dataclasses

    from stackwatch.check.prometheus import POOL_WAITING, PrometheusCheck
    from stackwatch.check.runner import Budget
    from stackwatch.thresholds import POOL

    strict = dataclasses.replace(POOL, wait_mean_seconds=0.0005)  # the healthy pool waits 1 ms
    findings = PrometheusCheck(healthy.prometheus.url, pool=strict).run(Budget(30, 5))
    finding = next(f for f in findings if f.item == POOL_WAITING)
    assert finding.status.value == "warn" and "mean wait 1ms" in finding.evidence, finding
