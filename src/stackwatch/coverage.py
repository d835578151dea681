"""The seed checklist, line by line, mapped to what covers it: data only.

Every "Performance Optimization Checklist" line, every "Common Performance Pitfall" and every
"Key Metrics" entry of ``docs/reference/backend-performance-checklist.txt``, quoted as the seed
words it, with the exporter families (docs/metrics.md), alerts (alerts/catalog.py), dashboard
panels (uid suffix + title), ``stackwatch check`` item ids and instrumentation that cover it, or
why nothing can. ``docs/checklist.md`` and the Checklist dashboard's coverage row are generated
from it; ``tests/test_coverage.py`` fails when a name here does not exist or a seed line is
missing or misquoted. To cover a line better, add names to its entry: the test checks them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["CHECKLIST", "KEY_METRICS", "PITFALLS", "Coverage", "Panel", "all_lines"]


@dataclass(frozen=True)
class Panel:
    """A dashboard panel: ``dashboard`` is the uid without ``stackwatch-`` (``postgres``)."""

    dashboard: str
    title: str


@dataclass(frozen=True)
class Coverage:
    """One seed line (``section`` as the seed heads it) and what covers it; ``note`` says what no
    signal can show (a design choice, a vendor's product) when that matters."""

    section: str
    line: str
    families: tuple[str, ...] = ()
    alerts: tuple[str, ...] = ()
    panels: tuple[Panel, ...] = ()
    checks: tuple[str, ...] = ()
    instrumentation: tuple[str, ...] = ()
    note: str = ""


_CL = "Performance Optimization Checklist"
# entries two sections share, placed with replace(..., section=, line=)
_N_PLUS_ONE = Coverage("", "", families=("db_client_n_plus_one_total", "db_client_queries_per_request"),
                   alerts=("NPlusOneQueriesDetected",),
                   panels=(Panel("checklist", "N+1 queries"), Panel("service", "N+1 detections by route")),
                   checks=("app.n_plus_one",),
                   instrumentation=("instrument_psycopg", "instrument_sqlalchemy", "instrument_asyncpg"))
_CHURN = Coverage("", "", families=("pg_stat_database_sessions", "pg_stat_activity_client_backend_median_age_seconds",
                                    "redis_connections_received_total", "db_client_connection_pool_info"),
              alerts=("PostgresConnectionChurn", "RedisConnectionChurn"),
              panels=(Panel("checklist", "Connection churn"),),
              checks=("pg.connection_churn", "app.pool_settings"), instrumentation=("instrument_pool",))
_CDN = Coverage("", "", families=("http_server_requests_cdn_total", "http_server_responses_cache_control_total"),
            panels=(Panel("checklist", "Static assets via CDN"), Panel("service", "Requests by CDN"),
                    Panel("service", "Responses by Cache-Control class")),
            checks=("app.cdn", "app.cache_control"),
            note="requests to the routes that serve fingerprinted (immutable) assets, by the CDN headers they "
                 "came with; no alert: a design choice, not an incident (the CDN's own monitoring watches it)")

CHECKLIST: tuple[Coverage, ...] = (
    Coverage(f"{_CL} / Database", "Indexes on frequently queried columns",
             families=("pg_table_missing_index_suspect_score", "pg_index_unused_size_bytes"),
             alerts=("PostgresMissingIndexSuspect", "PostgresUnusedIndex"),
             panels=(Panel("checklist", "Missing-index suspects"), Panel("postgres", "Missing-index suspects")),
             checks=("pg.missing_indexes", "pg.unused_indexes")),
    Coverage(f"{_CL} / Database", "Connection pooling configured",
             families=("pg_connections_saturation_ratio", "pg_stat_database_sessions",
                       "db_client_connection_count", "db_client_connection_pending_requests",
                       "db_client_connection_pool_info"),
             alerts=("PostgresConnectionsSaturated", "PostgresConnectionChurn", "DbPoolRequestsWaiting",
                     "DbPoolWaitTimeHigh"),
             panels=(Panel("checklist", "Connection saturation"), Panel("checklist", "Pool requests waiting"),
                     Panel("service", "Pool connections: used vs max")),
             checks=("pg.connections", "pg.idle_connections", "pg.connections_per_app", "pg.connection_churn",
                     "app.pool_waiting", "app.pool_settings"),
             instrumentation=("instrument_pool",)),
    replace(_N_PLUS_ONE, section=f"{_CL} / Database", line="N+1 queries eliminated"),
    Coverage(f"{_CL} / Database", "Slow query log monitored",
             families=("pg_settings_log_min_duration_statement_seconds", "pg_stat_statements_slow_statements"),
             alerts=("PostgresSlowQueryLogOff", "PostgresSlowStatements"),
             panels=(Panel("checklist", "Slow statements"), Panel("postgres", "Slow-query log")),
             checks=("pg.slow_query_log", "pg.slow_statements")),
    Coverage(f"{_CL} / Database", "Query execution plans analyzed",
             families=("pg_settings_pg_stat_statements_loaded", "pg_stat_statements_seconds_total"),
             alerts=("PostgresStatementStatisticsMissing",),
             panels=(Panel("checklist", "Statement statistics"), Panel("postgres", "Top statements by total time")),
             checks=("pg.plans", "pg.pg_stat_statements")),
    Coverage(f"{_CL} / Caching", "Redis cache for hot data",
             families=("cache_requests_total", "redis_keyspace_hits_total"),
             alerts=("CacheHitRatioLow", "RedisHitRatioLow"),
             panels=(Panel("checklist", "Application cache hit ratio"), Panel("redis", "Lookups: hits and misses")),
             checks=("redis.hit_rate",), instrumentation=("Cache", "AsyncCache")),
    Coverage(f"{_CL} / Caching", "Cache TTL configured appropriately",
             families=("redis_ttl_keys_without_ttl_ratio", "redis_ttl_keys_without_ttl_estimated"),
             alerts=("RedisKeysWithoutTtl",),
             panels=(Panel("checklist", "Keys without TTL"), Panel("redis", "Keys without TTL by prefix")),
             checks=("redis.keys_without_ttl",)),
    Coverage(f"{_CL} / Caching", "Cache invalidation on writes",
             families=("redis_commands_total",), alerts=("RedisDangerousCommands",),
             panels=(Panel("checklist", "Dangerous commands (10m)"),), checks=("redis.dangerous_commands",),
             instrumentation=("Cache.invalidate_pattern",),
             note="whether each write invalidates its keys is the application's logic; what is watched is "
                  "how it invalidates (SCAN, never KEYS or FLUSHALL)"),
    replace(_CDN, section=f"{_CL} / Caching", line="CDN for static assets"),
    Coverage(f"{_CL} / Caching", ">80% cache hit rate achieved",
             families=("redis_keyspace_hit_ratio", "cache_requests_total"),
             alerts=("RedisHitRatioLow", "CacheHitRatioLow"),
             panels=(Panel("checklist", "Redis hit ratio"), Panel("checklist", "Application cache hit ratio")),
             checks=("redis.hit_rate",)),
    Coverage(f"{_CL} / Application", "Async processing for long tasks",
             families=("job_queue_depth", "job_queue_oldest_age_seconds"),
             alerts=("JobQueueOldestJobTooOld", "JobQueueBacklogGrowing", "JobQueueNoWorkers",
                     "HttpRouteShouldBeBackgroundJob"),
             panels=(Panel("checklist", "Oldest waiting job"), Panel("jobs", "Jobs waiting")),
             checks=("redis.queues", "app.async_processing")),
    Coverage(f"{_CL} / Application", "Response compression enabled (gzip)",
             families=("http_server_responses_content_encoding_total",), alerts=("HttpResponsesUncompressed",),
             panels=(Panel("checklist", "Compressed responses"), Panel("service", "Compressed responses by route")),
             checks=("app.compression",), instrumentation=("instrument",),
             note="counted where compression matters: a text type, sent encoded, or of 1 KiB and more to a "
                  "client accepting compression"),
    Coverage(f"{_CL} / Application", "Load balancing configured",
             families=("http_server_request_duration_seconds",),
             alerts=("HttpTrafficImbalanced", "HttpInstanceOutOfRotation"),
             panels=(Panel("checklist", "Healthy instances"), Panel("service", "Request share per instance"),
                     Panel("service", "Instances up")),
             checks=("ops.load_balancing",)),
    Coverage(f"{_CL} / Application", "Health checks implemented",
             families=("health_check_status",), alerts=("HealthCheckFailing",),
             panels=(Panel("checklist", "Health checks passing"), Panel("service", "Health checks")),
             checks=("app.health",), instrumentation=("database_check", "redis_check")),
    Coverage(f"{_CL} / Application", "Resource limits set (CPU, memory)",
             families=("process_cgroup_cpu_limited", "process_cgroup_memory_limited"),
             alerts=("ProcessResourceLimitMissing", "ProcessCpuNearLimit", "ProcessMemoryNearLimit"),
             panels=(Panel("checklist", "CPU limits set"), Panel("checklist", "Memory limits set")),
             checks=("ops.resource_limits",)),
    Coverage(f"{_CL} / Monitoring", "APM tool configured (New Relic/Datadog)",
             families=("stackwatch_instrumentation_info",), panels=(Panel("checklist", "Services with APM"),),
             checks=("app.apm",), instrumentation=("instrument",),
             note="the agents found in the process (ddtrace, newrelic, Sentry performance) are in the info "
                  "series; stackwatch's traces and RED metrics stand in for the rest"),
    Coverage(f"{_CL} / Monitoring", "Error tracking (Sentry)", families=("stackwatch_instrumentation_info",),
             panels=(Panel("checklist", "Services with error tracking"),), checks=("app.error_tracking",),
             instrumentation=("instrument",)),
    Coverage(f"{_CL} / Monitoring", "Performance dashboards (Grafana)",
             panels=(Panel("service", "Request rate"), Panel("postgres", "PostgreSQL up"), Panel("redis", "Redis up"),
                     Panel("checklist", "Grafana up"), Panel("checklist", "Scrape targets up")),
             checks=("ops.targets",),
             note="Grafana itself is provisioned by docker-compose.yml, and scraped (job grafana); no Grafana "
                  "runs where tests run"),
    Coverage(f"{_CL} / Monitoring", "Alerting on key metrics",
             families=("stackwatch_alertmanager_alerts",), alerts=("Watchdog",),
             panels=(Panel("checklist", "Alerting pipeline"), Panel("checklist", "Critical alerts firing")),
             checks=("ops.alert_rules", "ops.alertmanager")),
    Coverage(f"{_CL} / Monitoring", "Distributed tracing for microservices",
             families=("stackwatch_instrumentation_info",), alerts=("OtelCollectorDroppingSpans",),
             panels=(Panel("checklist", "Services traced"),), checks=("app.tracing",),
             instrumentation=("instrument", "outgoing_headers")),
)

_PF = "Common Performance Pitfalls"
PITFALLS: tuple[Coverage, ...] = (
    Coverage(_PF, "No caching - Repeatedly querying same data",
             families=("cache_requests_total", "db_client_queries_per_request"), alerts=("CacheHitRatioLow",),
             panels=(Panel("service", "Application cache hit ratio"),), checks=("redis.hit_rate",),
             instrumentation=("Cache",)),
    Coverage(_PF, "Missing indexes - Full table scans",
             families=("pg_table_missing_index_suspect_score", "pg_stat_user_tables_seq_scan"),
             alerts=("PostgresMissingIndexSuspect",), panels=(Panel("postgres", "Sequential vs index scans"),),
             checks=("pg.missing_indexes",)),
    replace(_N_PLUS_ONE, section=_PF, line="N+1 queries - Fetching related data in loops"),
    Coverage(_PF, "Synchronous processing - Blocking on long tasks",
             families=("python_event_loop_lag_seconds", "http_server_event_loop_blocked_seconds_total"),
             alerts=("HttpRouteShouldBeBackgroundJob", "EventLoopBlocked"),
             panels=(Panel("checklist", "Slowest route p95"), Panel("service", "Event loop lag"),
                     Panel("service", "Event loop blocked, by route")),
             checks=("app.async_processing",)),
    replace(_CHURN, section=_PF, line="No connection pooling - Creating new connections per request"),
    Coverage(_PF, "Unbounded queries - No LIMIT on large tables",
             families=("pg_stat_statements_rows_total",), alerts=("PostgresUnboundedQuery",),
             panels=(Panel("checklist", "Unbounded queries"),), checks=("pg.unbounded_queries",)),
    replace(_CDN, section=_PF, line="No CDN - Serving static assets from origin"),
)

_KM = "Key Metrics"
KEY_METRICS: tuple[Coverage, ...] = (
    Coverage(f"{_KM} / Application", "Response time (p50, p95, p99)",
             families=("http_server_request_duration_seconds",),
             alerts=("HttpLatencyP99High", "HttpLatencyBudgetBurn"),
             panels=(Panel("service", "Latency p50 / p95 / p99"), Panel("checklist", "p99 latency")),
             checks=("app.latency",), instrumentation=("instrument",)),
    Coverage(f"{_KM} / Application", "Throughput (requests/second)",
             families=("http_server_request_duration_seconds",), alerts=("HttpTrafficAbsent", "HttpTrafficDrop"),
             panels=(Panel("service", "Request rate"),), checks=("app.throughput",), instrumentation=("instrument",)),
    Coverage(f"{_KM} / Application", "Error rate",
             families=("http_server_request_duration_seconds",),
             alerts=("HttpErrorRatioHigh", "HttpErrorBudgetBurn"),
             panels=(Panel("service", "Error ratio (5xx)"), Panel("checklist", "Error ratio (5xx)")),
             checks=("app.error_ratio",), instrumentation=("instrument",)),
    Coverage(f"{_KM} / Application", "CPU/memory usage",
             families=("process_group_cpu_seconds_total", "process_group_resident_memory_bytes",
                       "process_cgroup_memory_current_bytes"),
             alerts=("ProcessCpuNearLimit", "ProcessMemoryNearLimit"),
             panels=(Panel("processes", "CPU by process group"),
                     Panel("processes", "Resident memory by process group")),
             checks=("ops.resource_limits",)),
    Coverage(f"{_KM} / Database", "Query execution time",
             families=("pg_stat_statements_seconds_total", "db_client_operation_duration_seconds"),
             alerts=("PostgresSlowStatements",),
             panels=(Panel("postgres", "Mean statement time (all statements)"),
                     Panel("service", "Database operation p99 by operation")),
             checks=("pg.slow_statements",)),
    Coverage(f"{_KM} / Database", "Connection pool saturation",
             families=("db_client_connection_count", "db_client_connection_max", "pg_connections_saturation_ratio"),
             alerts=("PostgresConnectionsSaturated", "DbPoolRequestsWaiting"),
             panels=(Panel("service", "Pool connections: used vs max"), Panel("checklist", "Connection saturation")),
             checks=("pg.connections", "app.pool_waiting"), instrumentation=("instrument_pool",)),
    Coverage(f"{_KM} / Database", "Cache hit rate",
             families=("redis_keyspace_hit_ratio", "pg_stat_database_cache_hit_ratio", "cache_requests_total"),
             alerts=("RedisHitRatioLow", "CacheHitRatioLow", "PostgresBufferCacheHitRatioLow"),
             panels=(Panel("checklist", "Redis hit ratio"), Panel("checklist", "Buffer cache hit ratio")),
             checks=("redis.hit_rate",)),
    Coverage(f"{_KM} / Database", "Slow query log",
             families=("pg_settings_log_min_duration_statement_seconds",), alerts=("PostgresSlowQueryLogOff",),
             panels=(Panel("postgres", "Slow-query log"),), checks=("pg.slow_query_log",)),
    Coverage(f"{_KM} / Tools", "Prometheus + Grafana (metrics)",
             alerts=("TargetDown",), panels=(Panel("checklist", "Scrape targets up"),),
             checks=("ops.targets", "app.metrics"), instrumentation=("get_metrics",)),
    Coverage(f"{_KM} / Tools", "New Relic / Datadog (APM)", families=("stackwatch_instrumentation_info",),
             panels=(Panel("checklist", "Services with APM"),), checks=("app.apm",),
             note="the agents found in the process (ddtrace, newrelic) or exported traces, from the info series"),
    Coverage(f"{_KM} / Tools", "Sentry (error tracking)", checks=("app.error_tracking",),
             instrumentation=("instrument",)),
    Coverage(f"{_KM} / Tools", "OpenTelemetry (distributed tracing)",
             alerts=("OtelCollectorDroppingSpans",), checks=("app.tracing",),
             instrumentation=("instrument", "outgoing_headers")),
)


def all_lines() -> tuple[Coverage, ...]:
    """Every entry, in the order docs/checklist.md lists them."""
    return CHECKLIST + PITFALLS + KEY_METRICS
