"""Whatever samples TTLs must not change any hit ratio stackwatch reports.

Redis counts every PTTL as a keyspace hit. A 2% cache, checked 20 times by ``stackwatch check``
(1,000 PTTLs each) while the exporter's TTL sampler walks every key each second, must still read
<= 3% everywhere: the exporter's window ratio, the recording rule and the alert, both dashboards'
queries, and the check with and without Prometheus. Real redis-server, exporter process,
Prometheus with the repository's rules.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from dashboards.queries import panel_queries, substitute
from tests.check.conftest import Outcome, run_check
from tests.fixtures.exporter import ExporterProcess
from tests.fixtures.procs import free_port, wait_until
from tests.fixtures.prometheus import RULES_DIR, PrometheusServer
from tests.fixtures.redis import RedisServer

LIMIT = 0.03


@dataclass
class Sampled:
    redis: RedisServer
    prometheus: PrometheusServer
    checks: list[Outcome]


def _cold_cache(server: RedisServer, stop: threading.Event) -> None:
    """250 GETs a second, 2% of them hits (one key of every 50 exists)."""
    client = server.client()
    while not stop.wait(0.2):
        pipe = client.pipeline(transaction=False)
        for i in range(50):
            pipe.get("item:1" if i == 0 else f"absent:{i}")
        pipe.execute()


def _value(prometheus: PrometheusServer, expr: str) -> float | None:
    result = prometheus.query(expr)
    return float(result[0]["value"][1]) if result else None


def _ratio(finding: dict[str, Any]) -> float:
    found = re.search(r"([\d.]+)%", finding["evidence"])
    assert found, finding
    return float(found[1]) / 100


@pytest.fixture(scope="module")
def sampled() -> Iterator[Sampled]:
    redis = RedisServer(maxmemory="64mb", maxmemory_policy="allkeys-lru")
    redis.client().mset({f"item:{i}": "x" for i in range(3000)})
    for i in range(3000):
        redis.client().expire(f"item:{i}", 3600)
    stop = threading.Event()
    traffic = threading.Thread(target=_cold_cache, args=(redis, stop), daemon=True)
    traffic.start()
    # the TTL sampler (slow tier) walks all 3,000 keys every second: 3,000 PTTL "hits" a second
    exporter = ExporterProcess("--redis-url", redis.url, "--interval-fast", "1", "--interval-slow", "1")
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "scrape_configs": [{"job_name": "stackwatch-exporter",
                                  "static_configs": [{"targets": [exporter.address]}]}]}
    try:
        with PrometheusServer(config, rules_dir=RULES_DIR) as prometheus:
            checks = [run_check("--format", "json", "--redis-url", redis.url, "--redis-window", "0.5")
                      for _ in range(20)]
            wait_until(lambda: (_value(prometheus, "count_over_time(redis_keyspace_hit_ratio[5m])") or 0) >= 5, 60,
                       "five window ratios from the exporter")
            yield Sampled(redis, prometheus, checks)
    finally:
        stop.set()
        exporter.stop()
        redis.destroy()


def test_check_without_prometheus_leaves_ttl_lookups_out(sampled: Sampled) -> None:
    for outcome in sampled.checks:
        finding = outcome.finding("redis.hit_rate")
        assert finding["status"] == "fail" and _ratio(finding) <= LIMIT, finding
        assert "TTL lookups left out" in finding["evidence"]


def test_exporter_ratio_recording_rule_and_alert_leave_ttl_lookups_out(sampled: Sampled) -> None:
    prom = sampled.prometheus
    assert (_value(prom, "max_over_time(redis_keyspace_hit_ratio[5m])") or 1) <= LIMIT
    # sampling went on, at well over the 5 real hits a second
    assert (_value(prom, "sum(rate(redis_commands_total{cmd='pttl'}[1m]))") or 0) > 100
    wait_until(lambda: _value(prom, "instance:redis_keyspace_hits:ratio_rate5m") is not None, 30, "the rule")
    assert (_value(prom, "instance:redis_keyspace_hits:ratio_rate5m") or 1) <= LIMIT
    wait_until(lambda: bool(prom.query('ALERTS{alertname="RedisHitRatioLow"}')), 30, "RedisHitRatioLow pending")


def test_dashboards_leave_ttl_lookups_out(sampled: Sampled) -> None:
    queries = {(p.uid, p.expr) for p in panel_queries() if "redis_keyspace_" in p.expr}
    ratios = [substitute(expr) for uid, expr in queries if "redis_keyspace_hits:ratio" in expr]
    assert {uid for uid, expr in queries if "redis_keyspace_hits:ratio" in expr} >= {"stackwatch-checklist",
                                                                                     "stackwatch-redis"}
    for expr in ratios:
        assert (_value(sampled.prometheus, expr) or 1) <= LIMIT, expr
    # the Redis dashboard's "hits and misses" panel
    hits, = [substitute(e) for _, e in queries if "redis_keyspace_hits_total" in e]
    misses, = [substitute(e) for _, e in queries if "redis_keyspace_misses_total" in e and "hits" not in e]
    wait_until(lambda: _value(sampled.prometheus, hits) is not None, 30, "the hits panel")
    h, m = _value(sampled.prometheus, hits) or 0, _value(sampled.prometheus, misses) or 0
    assert m > 10 and h / (h + m) <= LIMIT, (h, m)


def test_check_with_prometheus_reads_the_rate_and_the_exporters_ttl_sample(sampled: Sampled) -> None:
    outcome = run_check("--format", "json", "--redis-url", sampled.redis.url,
                        "--prometheus-url", sampled.prometheus.url)
    finding = outcome.finding("redis.hit_rate")
    assert finding["status"] == "fail" and "from Prometheus" in finding["evidence"], finding
    assert _ratio(finding) <= LIMIT, finding
    ttl = outcome.finding("redis.keys_without_ttl")
    assert ttl["status"] == "pass" and "sampled by the stackwatch exporter" in ttl["evidence"], ttl


class _App:
    """A service's /metrics with ``cache_requests_total{cache,result}`` at a given hit share."""

    def __init__(self, hit_share: float) -> None:
        self.registry = CollectorRegistry()
        requests = Counter("cache_requests", "Lookups.", ["cache", "result"], registry=self.registry)
        self.hit, self.miss = requests.labels("users", "hit"), requests.labels("users", "miss")
        self.share = hit_share
        self.port = free_port()
        self.server, _ = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        self.stop = threading.Event()
        threading.Thread(target=self._traffic, daemon=True).start()

    def _traffic(self) -> None:
        while not self.stop.wait(0.1):
            self.hit.inc(100 * self.share)
            self.miss.inc(100 * (1 - self.share))

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("app_share, status", [(0.02, "fail"), (0.95, "pass")])
def test_the_applications_cache_requests_are_preferred_when_instrumented(
        sampled: Sampled, app_share: float, status: str) -> None:
    """Redis reads 2% either way; the service's own counter decides, both ways."""
    app = _App(app_share)
    config = {"global": {"scrape_interval": "1s"}, "scrape_configs": [
        {"job_name": "demo", "static_configs": [{"targets": [f"127.0.0.1:{app.port}"]}]}]}
    try:
        with PrometheusServer(config) as prometheus:
            wait_until(lambda: (_value(prometheus, "count_over_time(cache_requests_total[1m])") or 0) >= 3, 60,
                       "three scrapes of the service")
            outcome = run_check("--format", "json", "--redis-url", sampled.redis.url,
                                "--prometheus-url", prometheus.url)
    finally:
        app.close()
    finding = outcome.finding("redis.hit_rate")
    assert finding["status"] == status, finding
    assert "cache_requests_total" in finding["evidence"] and "users in demo" in finding["evidence"], finding
    assert abs(_ratio(finding) - app_share) < 0.01, finding
