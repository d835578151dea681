"""Every checklist item ``stackwatch check`` reports, by the system that judges it.

Declared apart from the checks, which import their system's client library (psycopg, redis):
the report lists every item, including those of systems that were not given, without importing
a client it does not use. Ids are stable: scripts and ``--format json`` rely on them.
"""

from __future__ import annotations

from .model import Item

__all__ = ["APP_ITEMS", "CACHE_CONTROL", "CDN", "DELIVERY_ITEMS", "LOAD_BALANCING", "POSTGRES_ITEMS",
           "PROMETHEUS_ITEMS", "REDIS_ITEMS"]

_DB = "Database"
MISSING_INDEXES = Item("pg.missing_indexes", _DB, "Indexes on frequently queried columns")
UNUSED_INDEXES = Item("pg.unused_indexes", _DB, "No unused indexes")
DUPLICATE_INDEXES = Item("pg.duplicate_indexes", _DB, "No duplicate indexes")
INVALID_INDEXES = Item("pg.invalid_indexes", _DB, "No invalid indexes")
CONNECTIONS = Item("pg.connections", _DB, "Connection pooling: connections vs max_connections")
IDLE = Item("pg.idle_connections", _DB, "Connection pooling: no sessions left idle in transaction")
PER_APP = Item("pg.connections_per_app", _DB, "Connection pooling: active connections vs (cores x 2) + spindles")
SLOW_LOG = Item("pg.slow_query_log", _DB, "Slow query log configured (log_min_duration_statement)")
STATEMENTS = Item("pg.pg_stat_statements", _DB, "pg_stat_statements loaded")
SLOW = Item("pg.slow_statements", _DB, "Slow query log monitored: slowest statements")
PLANS = Item("pg.plans", _DB, "Query execution plans analyzed")
CHURN = Item("pg.connection_churn", _DB, "Connection pooling configured: no connection per request")
UNBOUNDED = Item("pg.unbounded_queries", _DB, "No unbounded queries (rows per call)")
POSTGRES_ITEMS = (MISSING_INDEXES, UNUSED_INDEXES, DUPLICATE_INDEXES, INVALID_INDEXES, CONNECTIONS, IDLE, PER_APP,
                  CHURN, SLOW_LOG, STATEMENTS, SLOW, PLANS, UNBOUNDED)

_CACHE = "Caching"
HIT_RATE = Item("redis.hit_rate", _CACHE, ">80% cache hit rate achieved")
TTL = Item("redis.keys_without_ttl", _CACHE, "Cache TTL configured appropriately")
MAXMEMORY = Item("redis.maxmemory", _CACHE, "maxmemory and an eviction policy set")
DANGEROUS = Item("redis.dangerous_commands", _CACHE, "Cache invalidation on writes: no KEYS/FLUSHALL/FLUSHDB/SAVE")
_ASYNC = "Application"
QUEUES = Item("redis.queues", _ASYNC, "Async processing for long tasks: job queues drain")
REDIS_ITEMS = (HIT_RATE, TTL, MAXMEMORY, DANGEROUS, QUEUES)

POOL_SETTINGS = Item("app.pool_settings", _DB, "Connection pooling configured: pool size and timeouts")
POOL_WAITING = Item("app.pool_waiting", _DB, "Connection pooling: no requests waiting for a connection")
N_PLUS_ONE = Item("app.n_plus_one", _DB, "N+1 queries eliminated")
LIMITS = Item("ops.resource_limits", "Application", "Resource limits set (CPU, memory)")
RULES = Item("ops.alert_rules", "Monitoring", "Alerting on key metrics: alert rules loaded")
ALERTMANAGER = Item("ops.alertmanager", "Monitoring", "Alerting on key metrics: Alertmanager reachable")
TARGETS = Item("ops.targets", "Monitoring", "Exporters' scrape targets up")
ASYNC = Item("app.async_processing", _ASYNC, "Async processing for long tasks: no long synchronous requests")
LATENCY = Item("app.latency", "Application", "Key metrics: response time (p50, p95, p99)")
ERROR_RATIO = Item("app.error_ratio", "Application", "Key metrics: error rate")
THROUGHPUT = Item("app.throughput", "Application", "Key metrics: throughput (requests/second)")
TRACING = Item("app.tracing", "Monitoring", "Distributed tracing for microservices")
ERROR_TRACKING = Item("app.error_tracking", "Monitoring", "Error tracking (Sentry)")
APM = Item("app.apm", "Monitoring", "APM tool configured")
READ_SHARE = Item("pg.read_share", _DB, "Read replicas for read-heavy workloads (90%+ reads)")
PROMETHEUS_ITEMS = (POOL_WAITING, POOL_SETTINGS, N_PLUS_ONE, LIMITS, RULES, ALERTMANAGER, TARGETS, ASYNC, LATENCY,
                    ERROR_RATIO, THROUGHPUT, TRACING, ERROR_TRACKING, APM, READ_SHARE)

HEALTH = Item("app.health", "Application", "Health checks implemented")
COMPRESSION = Item("app.compression", "Application", "Response compression enabled (gzip)")
METRICS = Item("app.metrics", "Application", "Metrics endpoint (/metrics) for Prometheus")
APP_ITEMS = (HEALTH, COMPRESSION, METRICS)

CACHE_CONTROL = Item("app.cache_control", _CACHE, "CDN for static assets: Cache-Control on static assets and API "
                     "responses")
CDN = Item("app.cdn", _CACHE, "CDN for static assets")
LOAD_BALANCING = Item("ops.load_balancing", "Application", "Load balancing configured")
#: how responses reach users: each item a source of its own (their inputs differ)
DELIVERY_ITEMS = (CACHE_CONTROL, CDN, LOAD_BALANCING)
