"""End to end, natively: the stack of docker-compose.yml with the repository's own provisioning.

Real PostgreSQL, Redis, exporter, demo under load, Prometheus and Alertmanager (see stack.py).
Checks that every target is up, that every dashboard query parses and returns data, that the
steady state fires nothing but the demo's documented faults, and that faults fire the matching
alert all the way to Alertmanager (and its webhook). The faults that break the stack for good
(Redis, PostgreSQL, the exporter stopped) come last, in that order. Runs in the normal test
command; it takes about two minutes (`-m "not slow"` leaves it out locally).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import psycopg
import pytest
import redis
from grafanalib.core import Table

from alerts.generate import DEMO_FIRES, DemoFault
from dashboards.generate import build_all
from dashboards.queries import panel_queries, substitute
from stackwatch.thresholds import HOST, HTTP
from tests.check.conftest import run_check
from tests.fixtures.procs import wait_until

from .stack import NOT_RUN_NATIVELY, Stack

pytestmark = pytest.mark.slow

#: how long the dashboards' queries get to fill up (slow-tier collectors poll every 2 s here)
DATA_TIMEOUT = 90.0
#: what this native stack fires besides the demo's faults (docs/alerts.md): stack.py's seeds
E2E_FIRES = (
    DemoFault("PostgresMissingIndexSuspect", {"severity": "warning", "relname": "e2e_orders"},
              "stack.py queries e2e_orders by an unindexed column"),
    DemoFault("PostgresUnusedIndex", {"severity": "info", "indexrelname": "e2e_orders_total_unused"},
              "stack.py creates an index no query uses"),
    DemoFault("ProcessResourceLimitMissing", {"severity": "info", "job": "stackwatch-exporter"},
              "natively the exporter watches its own cgroup (`--cgroup self`), a test host's, without limits; "
              "docker-compose.yml gives the exporter's container cpus and mem_limit"),
)


def test_every_target_is_up(stack: Stack) -> None:
    def all_up() -> bool:
        targets = stack.prometheus.targets()
        return len(targets) == 7 and all(t["health"] == "up" for t in targets)  # demo has two replicas

    try:
        wait_until(all_up, 60, "every scrape target up", interval=0.5)
    except TimeoutError:
        states = {t["labels"]["job"]: (t["health"], t["lastError"]) for t in stack.prometheus.targets()}
        raise AssertionError(f"targets: {states}\n{stack.logs()}") from None
    jobs = {t["labels"]["job"] for t in stack.prometheus.targets()}
    assert jobs | NOT_RUN_NATIVELY == {"stackwatch-exporter", "demo", "demo-worker", "prometheus", "alertmanager",
                                       "node", "otel-collector", "tempo", "grafana"}


def test_every_dashboard_query_parses_and_returns_data(stack: Stack) -> None:
    queries = list(panel_queries())
    # every query must parse: a bad one fails at once, whatever the data
    for query in queries:
        stack.prometheus.query(substitute(query.expr))
    # the stat of a job with no native counterpart (Grafana up) can only parse here
    not_run = [q for q in queries if any(f'job="{job}"' in q.expr for job in NOT_RUN_NATIVELY)]
    assert [q.title for q in not_run] == ["Grafana up"]
    required = [q for q in queries if not q.empty_reason and q not in not_run]
    deadline = time.monotonic() + DATA_TIMEOUT
    empty = required
    while empty and time.monotonic() < deadline:
        empty = [q for q in empty if not stack.prometheus.query(substitute(q.expr))]
        if empty:
            time.sleep(2)
    assert not empty, "queries without data:\n" + "\n".join(f"{q.uid} / {q.title}: {q.expr}" for q in empty) \
        + "\n" + stack.logs()


def test_the_demo_compresses_and_serves_its_assets_from_origin(stack: Stack) -> None:
    """The Checklist's stats read what the demo does: it gzips its large JSON (GZipMiddleware) and
    serves its fingerprinted stylesheet with no CDN in front (nginx adds no CDN header)."""
    exprs = {q.title: substitute(q.expr) for q in panel_queries() if q.uid == "stackwatch-checklist"}

    def value(title: str) -> float | None:
        result = stack.prometheus.query(exprs[title])
        return float(result[0]["value"][1]) if result else None

    wait_until(lambda: value("Compressed responses") is not None and value("Static assets via CDN") is not None,
               DATA_TIMEOUT, "the compression and CDN stats to have data", interval=1)
    assert value("Compressed responses") >= HTTP.compressed_ratio  # green: no HttpResponsesUncompressed
    assert value("Static assets via CDN") == 0.0


def test_the_disk_forecast_sees_the_primary_s_filesystem(stack: Stack) -> None:
    """--filesystem named as the primary (as docker-compose.yml names the demo database's volume):
    the PostgreSQL dashboard's forecast panel and PostgresDiskFullForecast join its free space."""
    (free,) = [q for q in panel_queries() if q.title == "Disk: growth forecast vs free" and "filesystem" in q.expr]
    wait_until(lambda: stack.prometheus.query(substitute(free.expr)), DATA_TIMEOUT, "the primary's free disk",
               interval=1)
    result = stack.prometheus.query(substitute(free.expr))
    assert [r["metric"]["filesystem"] for r in result] == [stack.primary_server]
    assert float(result[0]["value"][1]) > 0


def test_table_queries_join_into_rows(stack: Stack) -> None:
    """Grafana's merge transformation joins a table's queries on equal labels: no query may carry
    a metric name, and every row of B, C... must match a row of A on A's labels."""
    tables = [(board.uid, panel) for board in build_all() for panel in board.panels if isinstance(panel, Table)]
    assert tables
    for uid, panel in tables:
        results = [[r["metric"] for r in stack.prometheus.query(substitute(t.expr))] for t in panel.targets]
        assert all("__name__" not in metric for result in results for metric in result), (uid, panel.title)
        if len(results) > 1 and results[0]:
            keys = set(results[0][0])
            rows = {frozenset(metric.items()) for metric in results[0]}
            for result in results[1:]:
                for metric in result:
                    joined = frozenset((k, v) for k, v in metric.items() if k in keys)
                    assert joined in rows, (uid, panel.title, metric)


def test_service_latency_has_exemplars(stack: Stack) -> None:
    now = time.time()
    exemplars = stack.prometheus.api("query_exemplars", query="http_server_request_duration_seconds_bucket",
                                     start=str(now - 300), end=str(now))
    labels = [e["labels"] for series in exemplars for e in series["exemplars"]]
    assert labels and all(len(label["trace_id"]) == 32 for label in labels)


#: alerts a starved host raises on the demo whatever its design: its latency and pool waits. This
#: e2e shares its machine with other test suites (load averages of 20 on 2 cores were seen here);
#: they are tolerated only while the load average exceeds the CPU count.
HOST_LOAD_FIRES = frozenset(("HttpLatencyP99High", "HttpLatencyBudgetBurn", "HttpRouteShouldBeBackgroundJob",
                             "DbPoolRequestsWaiting", "DbPoolWaitTimeHigh"))


def _free_share(mountpoint: str) -> float:
    usage = shutil.disk_usage(mountpoint)
    return usage.free / usage.total


def _available_memory_share() -> float:
    memory = psutil.virtual_memory()
    return memory.available / memory.total


#: natively node_exporter watches the test host itself: its host alerts fire for their reason when
#: the host really is that short of room (a shared CI disk below 40% free while tests write to it)
HOST_STATE_FIRES: dict[str, Callable[[dict[str, str]], bool]] = {
    "NodeFilesystemSpaceFillingUp": lambda labels: _free_share(labels["mountpoint"]) < HOST.filesystem_filling_avail_ratio,
    "NodeFilesystemAlmostOutOfSpace": lambda labels: _free_share(labels["mountpoint"]) < HOST.filesystem_avail_ratio,
    "NodeMemoryHighUtilization": lambda labels: _available_memory_share() < 1 - HOST.memory_used_ratio,
}


def _by_design(labels: dict[str, str]) -> bool:
    if labels["alertname"] in HOST_LOAD_FIRES and labels.get("job") in ("demo", "demo-worker") \
            and os.getloadavg()[0] > (os.cpu_count() or 1):
        return True
    host_state = HOST_STATE_FIRES.get(labels["alertname"])
    if host_state is not None and labels.get("job") == "node" and host_state(labels):
        return True
    return any(labels["alertname"] == fault.alert and all(labels.get(k) == v for k, v in fault.labels.items())
               for fault in (*DEMO_FIRES, *E2E_FIRES))


def test_the_steady_state_fires_only_what_the_demo_fires_by_design(stack: Stack) -> None:
    """Before any fault is induced, once the demo's cache is warm: every firing alert is one
    docs/alerts.md lists for the demo (or stack.py seeds), matched on its labels, for five
    evaluations in a row (each alert's `for` is 3 s here)."""
    stack.wait_for_alert("Watchdog", "none")  # rules are evaluated and reach Alertmanager
    deadline, quiet, unexpected = time.monotonic() + 60, 0, ["(not evaluated)"]
    while quiet < 5 and time.monotonic() < deadline:
        firing = [a["labels"] for a in stack.prometheus.alerts() if a["state"] == "firing"]
        unexpected = sorted(str(labels) for labels in firing if not _by_design(labels))
        quiet = 0 if unexpected else quiet + 1
        time.sleep(1)
    if quiet < 5:
        pytest.fail("fired in the steady state:\n" + "\n".join(unexpected))


@contextlib.contextmanager
def exhausted_connections(dsn: str) -> Iterator[int]:
    """Open connections as an ordinary role until PostgreSQL refuses more; hold them."""
    held: list[psycopg.Connection] = []
    try:
        while len(held) < 100:
            try:
                held.append(psycopg.connect(dsn, connect_timeout=10))
            except psycopg.OperationalError as error:
                if "too many clients" in str(error) or "slots are reserved" in str(error):
                    break
                time.sleep(0.2)  # a slow connect under load is not exhaustion: try again
        yield len(held)
    finally:
        for conn in held:
            conn.close()


def test_exhausting_postgres_connections_fires_the_critical_alert(stack: Stack) -> None:
    with exhausted_connections(stack.postgres.monitor_dsn) as opened:
        assert opened > 0
        stack.wait_for_alert("PostgresConnectionsSaturated", "critical")
        # critical inhibits warning of the same alert and instance (alertmanager.yml)
        states = {a["labels"]["severity"]: a["status"]["state"] for a in stack.alertmanager.alerts()
                  if a["labels"]["alertname"] == "PostgresConnectionsSaturated"}
        assert states.get("critical") == "active"
        if "warning" in states:
            assert states["warning"] == "suppressed"


def test_redis_misses_fire_the_hit_ratio_alert(stack: Stack) -> None:
    client = redis.Redis(host=stack.redis.host, port=stack.redis.port, socket_timeout=5)
    deadline = time.monotonic() + 90
    n = 0
    while "warning" not in stack.firing_in_alertmanager().get("RedisHitRatioLow", set()):
        assert time.monotonic() < deadline, f"RedisHitRatioLow never fired\n{stack.logs()}"
        pipe = client.pipeline(transaction=False)
        for _ in range(200):
            pipe.get(f"e2e:missing:{n}")
            n += 1
        pipe.execute()
        time.sleep(0.1)


def test_the_n_plus_one_endpoint_fires_its_alert(stack: Stack) -> None:
    route = "/authors/{author_id}/books"
    for author in range(1, 4):
        assert httpx.get(f"{stack.demo_url}/authors/{author}/books", timeout=20).status_code == 200
    stack.wait_for_alert("NPlusOneQueriesDetected", "warning")
    routes = {a["labels"].get("http_route") for a in stack.alertmanager.alerts()
              if a["labels"]["alertname"] == "NPlusOneQueriesDetected"}
    assert route in routes


def test_a_table_without_its_index_is_suspected(stack: Stack) -> None:
    """stack.py seeds e2e_orders, filtered by an unindexed column on every query."""
    stack.wait_for_alert("PostgresMissingIndexSuspect", "warning")
    suspects = {a["labels"].get("relname") for a in stack.alertmanager.alerts()
                if a["labels"]["alertname"] == "PostgresMissingIndexSuspect"}
    assert "e2e_orders" in suspects


def test_load_balancing_passes_with_both_replicas_and_fails_when_one_stops(stack: Stack) -> None:
    """nginx (provisioning/nginx/nginx.conf, least_conn) in front of the two demo replicas, the load
    through it: ops.load_balancing passes; stopping a replica fires HttpInstanceOutOfRotation and fails it."""
    findings: list[dict[str, str]] = []

    def balancing(status: str) -> bool:
        findings.append(run_check("--format", "json", "--quiet", "yes", "--prometheus-url", stack.prometheus.url,
                                  "--app-url", stack.balancer.url).finding("ops.load_balancing"))
        return findings[-1]["status"] == status

    try:
        wait_until(lambda: balancing("pass"), 90, "ops.load_balancing to pass", interval=1)
    except TimeoutError as error:
        raise AssertionError(f"{error}: {findings[-1:]}\n{stack.logs()}") from None
    assert "2 of 2 instances up" in findings[-1]["evidence"]
    assert "HttpInstanceOutOfRotation" not in stack.firing_in_alertmanager()
    stack.replica.stop()
    stack.wait_for_alert("HttpInstanceOutOfRotation", "warning")
    instances = {a["labels"].get("instance") for a in stack.alertmanager.alerts()
                 if a["labels"]["alertname"] == "HttpInstanceOutOfRotation"}
    assert instances == {stack.replica_address}
    assert balancing("fail"), findings[-1]
    assert f"{stack.replica_address} of demo down" in findings[-1]["evidence"]


def test_requests_waiting_for_the_pool_fire_its_alert(stack: Stack) -> None:
    """40 concurrent 0.3 s reports on the demo's pool of 10: 30 wait, scrape after scrape."""
    with httpx.Client(base_url=stack.demo_url, timeout=30) as client, \
            ThreadPoolExecutor(max_workers=40) as pool:
        deadline = time.monotonic() + 90
        while "warning" not in stack.firing_in_alertmanager().get("DbPoolRequestsWaiting", set()):
            assert time.monotonic() < deadline, f"DbPoolRequestsWaiting never fired\n{stack.logs()}"
            list(pool.map(lambda _: client.get("/reports/slow"), range(40)))
    pools = {a["labels"].get("pool_name") for a in stack.alertmanager.alerts()
             if a["labels"]["alertname"] == "DbPoolRequestsWaiting"}
    assert "demo" in pools


def test_redis_memory_at_its_limit_under_noeviction_fires(stack: Stack) -> None:
    """The same memory that is fine for the demo's allkeys-lru cache is a problem once writes fail."""
    client = redis.Redis(host=stack.redis.host, port=stack.redis.port, socket_timeout=5)
    policy, limit = client.config_get("maxmemory-policy")["maxmemory-policy"], client.config_get("maxmemory")["maxmemory"]
    try:
        client.config_set("maxmemory", int(client.info("memory")["used_memory"] * 1.02) + 64 * 1024)
        client.config_set("maxmemory-policy", "noeviction")
        stack.wait_for_alert("RedisMemoryNearLimit", "warning")
    finally:
        client.config_set("maxmemory-policy", policy)
        client.config_set("maxmemory", limit)


def test_stopping_redis_fires_redis_down_and_the_failing_health_check(stack: Stack) -> None:
    """Nothing requests /health: the demo's health timer alone turns its redis check to 0."""
    stack.redis.stop()
    stack.wait_for_alert("RedisDown", "critical")
    stack.wait_for_alert("HealthCheckFailing", "critical")
    # critical alerts reach the webhook after the route's group_wait
    wait_until(lambda: "RedisDown" in stack.webhook.alertnames(), 60, "the RedisDown webhook notification")


def test_stopping_postgres_fires_postgres_down_and_the_replicas_receiver(stack: Stack) -> None:
    """The primary goes away: PostgresDown for it, and its replica, still up, stops streaming (its
    lag alone would read 0)."""
    primary = f"127.0.0.1:{stack.postgres.port}/demo"
    replica = f"127.0.0.1:{stack.pg_replica.port}/demo"
    stack.postgres.stop("immediate")
    stack.wait_for_alert("PostgresDown", "critical")
    stack.wait_for_alert("PostgresWalReceiverDown", "warning")
    servers = {(a["labels"]["alertname"], a["labels"].get("server")) for a in stack.alertmanager.alerts()}
    assert ("PostgresDown", primary) in servers and ("PostgresDown", replica) not in servers
    assert ("PostgresWalReceiverDown", replica) in servers


def test_stopping_the_exporter_fires_its_own_alert(stack: Stack) -> None:
    stack.exporter.stop()
    stack.wait_for_alert("StackwatchExporterDown", "critical")
