"""Checklist: the backend performance checklist as one colored stat per watchable item.

Each stat shows the measure the matching alert watches, colored by the same threshold from
``stackwatch.thresholds`` (green passes, orange warns, red fails), and links to the dashboard
that explains it, keeping the time range and the selected variables. Stats are instant queries, so
a series that vanished (exporter down, collector disabled) is not shown at its last value: a
required item that measures nothing reads a red "no data", never a stale green. ``stackwatch
check`` evaluates the same items from the command line.
"""

from __future__ import annotations

from grafanalib.core import Dashboard

from alerts.catalog import ERRORS_BY_INSTANCE, LATENCY_BY_INSTANCE, REQUESTS_BY_INSTANCE, alerts
from stackwatch.coverage import CHECKLIST
from stackwatch.promql import (
    EXPORTER_KINDS,
    compressed_share,
    job_queue_oldest_age,
    n_plus_one_detections,
    pg_sessions_per_transaction,
    pool_wait_mean,
    select_rows_per_call,
)
from stackwatch.thresholds import (
    CACHE,
    EVENT_WINDOW,
    HTTP,
    JOBS,
    POOL,
    POSTGRES,
    PROCESS,
    RATE_WINDOW,
    REDIS,
    SELECTORS,
    SLOW_TIER_WINDOW,
)

from ..common import (
    AlertGroups,
    Grid,
    dashboard,
    label_variable,
    levels,
    q,
    selector,
    stat,
    state_mapping,
    too_high,
    too_low,
)

__all__ = ["build"]

S = selector("job", "instance")
#: series recorded per service (not per instance) carry job only
J = selector("job")
#: the rate window of the alert rules, so each stat shows what its alert evaluates
W = RATE_WINDOW
#: the size of every stat
SIZE = {"w": 6, "h": 4}
NO_REPLICA = "the watched servers are primaries; replication lag exists on replicas only"


def _ok(title: str, description: str, expr: str, ok_text: str, bad_text: str, link: str) -> object:
    """A 0/1 item: 1 passes."""
    return stat(title, description, expr, "none", too_low(1), links=[link],
                mappings=state_mapping(1, ok_text, bad_text))


def _alerts(g: Grid) -> None:
    g.row("Alerts")
    g.add(AlertGroups(title="Critical alerts in Alertmanager", description="What pages right now, as "
                      "Alertmanager holds it: a silenced or inhibited alert shows as suppressed, not active.",
                      labels="severity=critical"), w=12, h=8)
    g.add(AlertGroups(title="Warnings in Alertmanager", description="What needs attention within the day; "
                      "suppressed ones are silenced or inhibited (a critical twin, a failing dependency).",
                      labels="severity=warning"), w=12, h=8)


def _coverage_row(g: Grid) -> None:
    """One stat per checklist line that alerts watch (``stackwatch.coverage``): how many of its
    alerts fire now. Heartbeats (severity ``none``, always firing: the "Alerting pipeline" stat
    shows them) do not count. Lines that only ``stackwatch check`` can judge are listed in
    docs/checklist.md."""
    heartbeats = {a.alert for a in alerts() if a.severity == "none"}
    g.row("Checklist lines: alerts firing")
    for entry in CHECKLIST:
        watching = [name for name in entry.alerts if name not in heartbeats]
        if watching:
            names = "|".join(watching)
            g.add(stat(entry.line, f"Alerts watching \"{entry.line}\" that fire now: {', '.join(watching)}.",
                       f'count(ALERTS{{{selector(alertstate="firing")}, alertname=~"{names}"}}) or vector(0)', "short",
                       too_high(0), links=["checklist"]), w=4, h=4)


def _database(g: Grid) -> None:
    g.row("Database")
    g.add(_ok("PostgreSQL reachable", "pg_up of every watched server.", f"min(pg_up{{{S}}})", "yes", "DOWN",
              "postgres"), **SIZE)
    g.add(stat("Connection saturation", "Connection pooling configured: non-reserved slots in use on the "
               "busiest server (warning and critical alert levels).",
               f"max(instance:pg_connections:saturation_ratio{{{S}}})", "percentunit",
               levels(POSTGRES.connection_saturation_warning, POSTGRES.connection_saturation_critical),
               links=["postgres"]), **SIZE)
    g.add(stat("Pool requests waiting", "Client-side pool: requests queued for a connection right now.",
               f"sum(db_client_connection_pending_requests{{{S}}}) or vector(0)", "short",
               too_high(POOL.pending_requests), links=["service"]), **SIZE)
    g.add(stat("Missing-index suspects", "Indexes on frequently queried columns: tables whose suspect "
               "score is 1 or more.", f"count(pg_table_missing_index_suspect_score{{{S}}} >= "
               f"{POSTGRES.missing_index_suspect_score}) or vector(0)", "short", too_high(0), links=["postgres"]),
          **SIZE)
    g.add(stat("N+1 queries", f"N+1 queries eliminated: requests with a repeated statement in the last "
               f"{EVENT_WINDOW}.", f"{n_plus_one_detections(EVENT_WINDOW, selector=f'{{{S}}}')} or vector(0)",
               "short", too_high(HTTP.n_plus_one_detections), links=["service"]), **SIZE)
    g.add(stat("Slow statements", "Slow query log monitored: statements whose mean time is over the slow "
               "threshold.", f"sum(pg_stat_statements_slow_statements{{{S}}})", "short", too_high(0),
               links=["postgres"]), **SIZE)
    g.add(_ok("Statement statistics", "Query execution plans analyzed: pg_stat_statements is loaded, so the "
              "costly statements are known.", f"min(pg_settings_pg_stat_statements_loaded{{{S}}})", "loaded",
              "NOT LOADED", "postgres"), **SIZE)
    g.add(stat("Buffer cache hit ratio", "Lowest per-database share of block reads served from memory.",
               f"min(pg_stat_database_cache_hit_ratio{{{S}}})", "percentunit", too_low(POSTGRES.buffer_cache_hit_ratio),
               links=["postgres"]), **SIZE)
    g.add(stat("Longest transaction", "Transactions open longer than this hold back vacuum everywhere.",
               f"max(pg_stat_activity_max_tx_duration{{{S}}})", "s", too_high(POSTGRES.long_transaction_seconds),
               links=["postgres"]), **SIZE)
    g.add(stat("Unbounded queries", "Most rows returned per call by one SELECT statement called at least "
               f"{POSTGRES.slow_statement_min_calls} times (rows changed by UPDATE or DELETE are not unbounded "
               "reads): a LIMIT is probably missing above the threshold "
               f"({SLOW_TIER_WINDOW}: statements are read on the exporter's slow tier).",
               f"max({select_rows_per_call(SLOW_TIER_WINDOW, f'{{{S}}}')})",
               "short", too_high(POSTGRES.rows_per_call), links=["postgres"], no_value="idle"), **SIZE)
    g.add(stat(f"Deadlocks ({EVENT_WINDOW})", "Deadlocks in the event window: lock-ordering bugs.",
               f"sum(increase(pg_stat_database_deadlocks{{{S}}}[{EVENT_WINDOW}]))", "short",
               too_high(POSTGRES.deadlocks), links=["postgres"]), **SIZE)
    g.add(stat("Replication lag", "Worst replica lag (replicas only).",
               q(f"max(pg_replication_lag_seconds{{{S}}})", empty_reason=NO_REPLICA), "s",
               too_high(POSTGRES.replication_lag_seconds), links=["postgres"], no_value="no replica"), **SIZE)
    g.add(stat("Connection churn", "No connection pooling pitfall: new sessions per transaction on the worst "
               f"server ({W}; PostgreSQL 14+). Near 1: clients connect per request.",
               f"max({pg_sessions_per_transaction(W, f'{{{S}}}')})", "short",
               too_high(POSTGRES.new_sessions_per_transaction), links=["postgres"], no_value="idle"), **SIZE)


def _static_via_cdn() -> str:
    """Requests that came through a CDN over all requests, on the routes whose responses are
    ``public-immutable`` (fingerprinted assets), per instance and route as both families count them."""
    by = "job, instance, http_route"
    assets = (f'(rate(http_server_responses_cache_control_total{{{S}, cache_control="public-immutable"}}[{W}]) > 0)')
    every = f"sum(rate(http_server_requests_cdn_total{{{S}}}[{W}]) and on ({by}) {assets})"
    via_cdn = f'sum(rate(http_server_requests_cdn_total{{{S}, cdn!="none"}}[{W}]) and on ({by}) {assets})'
    return f"({via_cdn} or {every} * 0) / {every}"


def _caching(g: Grid) -> None:
    g.row("Caching")
    g.add(_ok("Redis reachable", "redis_up of every watched server.", f"min(redis_up{{{S}}})", "yes", "DOWN",
              "redis"), **SIZE)
    g.add(stat("Redis hit ratio", f">80% cache hit rate achieved: lowest keyspace hit ratio ({W}).",
               f"min(instance:redis_keyspace_hits:ratio_rate5m{{{S}}})", "percentunit", too_low(REDIS.hit_ratio),
               links=["redis"]), **SIZE)
    g.add(stat("Application cache hit ratio", "The same target seen from the application's cache lookups "
               "(recorded per service and cache: $instance does not narrow it).",
               f"min(job_cache:cache_requests_hits:ratio_rate5m{{{J}}})", "percentunit", too_low(CACHE.hit_ratio),
               links=["service"]), **SIZE)
    g.add(stat("Keys without TTL", "Cache TTL configured appropriately: worst share of sampled keys that "
               "never expire.", f"max(redis_ttl_keys_without_ttl_ratio{{{S}}})", "percentunit",
               too_high(REDIS.keys_without_ttl_ratio), links=["redis"]), **SIZE)
    g.add(_ok("maxmemory set", "A cache needs a memory bound and an eviction policy.",
              f"1 - max(redis_memory_max_unlimited{{{S}}})", "set", "UNLIMITED", "redis"), **SIZE)
    g.add(stat("Redis memory of maxmemory", "Memory used over maxmemory on the fullest server.",
               f"max(redis_memory_saturation_ratio{{{S}}})", "percentunit", too_high(REDIS.memory_saturation),
               links=["redis"], no_value="no maxmemory"), **SIZE)
    g.add(stat("Evictions per second", "Keys evicted for lack of memory (5m rate).",
               f"sum(rate(redis_evicted_keys_total{{{S}}}[{W}]))", "ops", too_high(REDIS.evictions_per_second),
               links=["redis"]), **SIZE)
    g.add(stat(f"Rejected connections ({EVENT_WINDOW})", "Clients refused at maxclients.",
               f"sum(increase(redis_rejected_connections_total{{{S}}}[{EVENT_WINDOW}]))", "short",
               too_high(REDIS.rejected_connections), links=["redis"]), **SIZE)
    g.add(stat(f"Dangerous commands ({EVENT_WINDOW})", "Cache invalidation on writes: calls of "
               f"{'/'.join(c.upper() for c in REDIS.dangerous_commands)} in the event window; pattern "
               "invalidation belongs to SCAN.",
               f'sum(increase(redis_commands_total{{{S}, cmd=~"{"|".join(REDIS.dangerous_commands)}"}}'
               f"[{EVENT_WINDOW}])) or vector(0)", "short", too_high(0), links=["redis"]), **SIZE)
    g.add(stat("Static assets via CDN", "CDN for static assets: share of the requests to routes that serve "
               "fingerprinted assets (their responses say Cache-Control immutable) that came through a CDN, "
               f"by its request headers (CDN-Loop, Via, CF-Ray...; {W}). Low: static assets are served from origin.",
               q(_static_via_cdn(), empty_reason="no route answers Cache-Control immutable (no fingerprinted assets)"),
               "percentunit", too_low(HTTP.static_via_cdn_ratio), links=["service"], no_value="no static assets"),
          **SIZE)


def _application(g: Grid) -> None:
    g.row("Application")
    g.add(stat("Error ratio (5xx)", "Share of requests failing with 5xx over 5 minutes, selected instances.",
               f"sum({ERRORS_BY_INSTANCE}{{{S}}}) / sum({REQUESTS_BY_INSTANCE}{{{S}}})",
               "percentunit", too_high(HTTP.error_ratio), links=["service"]), **SIZE)
    g.add(stat("p99 latency", f"Response time p99 of the slowest selected instance ({W}).",
               f'max({LATENCY_BY_INSTANCE}{{{selector("job", "instance", quantile="0.99")}}})',
               "s", too_high(HTTP.latency_p99_seconds), links=["service"]), **SIZE)
    g.add(_ok("Health checks passing", "Health checks implemented: every /health check passed on its last "
              "evaluation.", f"min(health_check_status{{{S}}})", "passing", "FAILING", "service"), **SIZE)
    g.add(stat("Pool wait (mean)", f"Mean wait for a pooled connection ({W}).",
               f"max({pool_wait_mean('job, instance, pool_name', W, f'{{{S}}}')})",
               "s", too_high(POOL.wait_mean_seconds), links=["service"], no_value="no waits"), **SIZE)
    g.add(stat("Oldest waiting job", "Async processing for long tasks: the longest any queued job has waited "
               "(0 when the queues are drained).", f"max({job_queue_oldest_age('job, instance', S)})",
               "s", too_high(JOBS.oldest_age_seconds), links=["jobs"], no_value="no queues"), **SIZE)
    g.add(stat("Compressed responses", "Response compression enabled (gzip): share of the responses worth "
               "compressing (a text type, sent encoded or of "
               f"{HTTP.compression_min_bytes} bytes and more) that went out with a Content-Encoding ({W}).",
               q(compressed_share(None, W, f"{{{S}}}"),
                 empty_reason="no compressible response of 1 KiB or more in the window (small JSON only)"),
               "percentunit", too_low(HTTP.compressed_ratio), links=["service"], no_value="nothing to compress"),
          **SIZE)
    g.add(stat("Slowest route p95", "Synchronous processing pitfall: the highest p95 of any route (recorded per "
               "route over all instances: $instance does not narrow it); past the line its work belongs in a "
               "background job.",
               "max(job_http_route:http_server_request_duration_seconds:quantile_rate5m"
               f'{{{selector("job", quantile="0.95")}}})',
               "s", too_high(JOBS.synchronous_route_p95_seconds), links=["jobs"]), **SIZE)


def _resources(g: Grid) -> None:
    g.row("Resources")
    g.add(_ok("CPU limits set", "Resource limits set: every watched cgroup has a CPU quota.",
              f"min(process_cgroup_cpu_limited{{{S}}})", "set", "NO LIMIT", "processes"), **SIZE)
    g.add(_ok("Memory limits set", "Resource limits set: every watched cgroup has memory.max.",
              f"min(process_cgroup_memory_limited{{{S}}})", "set", "NO LIMIT", "processes"), **SIZE)
    g.add(stat("CPU used of limit", f"Busiest cgroup's CPU over its quota ({W}).",
               q(f"max(rate(process_cgroup_cpu_usage_seconds_total{{{S}}}[{W}]) / "
                 f"process_cgroup_cpu_limit_cores{{{S}}})",
                 empty_reason="no cgroup has a CPU limit"),
               "percentunit", too_high(PROCESS.cpu_limit_ratio), links=["processes"], no_value="no limit"), **SIZE)
    g.add(stat("Memory used of limit", "Fullest cgroup's memory over memory.max.",
               q(f"max(process_cgroup_memory_current_bytes{{{S}}} / process_cgroup_memory_max_bytes{{{S}}})",
                 empty_reason="no cgroup has a memory limit"),
               "percentunit", too_high(PROCESS.memory_limit_ratio), links=["processes"], no_value="no limit"),
          **SIZE)


def _monitoring(g: Grid) -> None:
    g.row("Monitoring")
    g.add(stat("Healthy instances", "Load balancing configured: instances up of the service with the fewest "
               f"(at least {HTTP.min_instances} behind the load balancer).",
               f"min(count by (job) (up{{{SELECTORS.services}, {S}}} == 1))", "short",
               too_low(HTTP.min_instances), links=["service"]), **SIZE)
    g.add(stat("Services traced", "Distributed tracing for microservices: share of instrumented services whose "
               "request spans are made (stackwatch_instrumentation_info).",
               f'(count(stackwatch_instrumentation_info{{{S}, tracing="true"}}) or vector(0)) / '
               f"count(stackwatch_instrumentation_info{{{S}}})",
               "percentunit", too_low(1), links=["service"]), **SIZE)
    g.add(stat("Services with error tracking", "Error tracking (Sentry): share of instrumented services whose "
               "errors a Sentry client reports.",
               f'(count(stackwatch_instrumentation_info{{{S}, error_tracking!="none"}}) or vector(0)) / '
               f"count(stackwatch_instrumentation_info{{{S}}})",
               "percentunit", too_low(1), links=["service"]), **SIZE)
    g.add(stat("Services with APM", "APM tool configured: share of instrumented services an APM sees, by an agent "
               "in the process (ddtrace, newrelic, Sentry performance) or request spans exported "
               "(stackwatch_instrumentation_info).",
               f'(count(stackwatch_instrumentation_info{{{S}, apm!="none"}} or stackwatch_instrumentation_info'
               f'{{{S}, tracing="true", traces_exporter=~"otlp|service"}}) or vector(0)) / '
               f"count(stackwatch_instrumentation_info{{{S}}})",
               "percentunit", too_low(1), links=["service"]), **SIZE)
    g.add(_ok("Grafana up", "Performance dashboards (Grafana): Prometheus scrapes Grafana, which serves these "
              "dashboards (its scrape job's up).", f"min(up{{{SELECTORS.grafana}, {S}}})", "up", "DOWN",
              "checklist"), **SIZE)
    g.add(_ok("Alerting pipeline", "Alerting on key metrics: the always-firing Watchdog alert is active, so "
              "rules are evaluated.",
              f'max(ALERTS{{{selector(alertname="Watchdog", alertstate="firing")}}}) or vector(0)',
              "working", "BROKEN", "checklist"), **SIZE)
    g.add(stat("Critical alerts firing", "Critical alerts that page right now: active in Alertmanager, neither "
               "silenced nor inhibited (stackwatch_alertmanager_alerts, read from Alertmanager's API by the "
               "exporter's --alertmanager-url; Prometheus' ALERTS cannot see silences). No data: the exporter "
               "does not read Alertmanager.",
               f'max(stackwatch_alertmanager_alerts{{{selector(severity="critical", state="active")}}})', "short",
               too_high(0), links=["checklist"]), **SIZE)
    g.add(_ok("Exporter collectors", "Every exporter sub-collector succeeded on its last poll.",
              f'min({{__name__=~"({EXPORTER_KINDS})_scrape_collector_success",{S}}})', "ok", "FAILING",
              "checklist"), **SIZE)
    g.add(_ok("Scrape targets up", "Every Prometheus target answered its last scrape.",
              f"min(up{{{S}}})", "all up", "DOWN", "checklist"), **SIZE)


def build() -> Dashboard:
    g = Grid()
    _alerts(g)
    _database(g)
    _caching(g)
    _application(g)
    _resources(g)
    _monitoring(g)
    _coverage_row(g)
    return dashboard("checklist", __doc__.split("\n")[0], g, [
        label_variable("job", "job", "up"),
        label_variable("instance", "instance", "up", parents=["job"]),
    ])
