"""The rule catalog: every recording rule and alert stackwatch ships, built from the thresholds.

Recording rules hold what dashboards and alerts share (latency quantiles, error and hit ratios,
connection saturation); alerts watch each checklist item that can be watched. Numbers come from
:mod:`stackwatch.thresholds` only. Label names are the metric-name contract's; series from the
exporter carry ``job``, ``instance`` and ``server``.
"""

from __future__ import annotations

from stackwatch.promql import (
    cache_request_rate,
    n_plus_one_detections,
    pool_wait_mean,
    redis_lookup_rate,
    statement_mean_seconds,
)
from stackwatch.thresholds import (
    CACHE,
    EVENT_WINDOW,
    EXPORTER_JOB,
    FOR,
    HTTP,
    JOBS,
    POOL,
    POSTGRES,
    PROCESS,
    RATE_WINDOW,
    REDIS,
    SLOW_TIER_WINDOW,
)
from stackwatch.thresholds import EXPORTER as EXPORTER_HEALTH

from .rules import (
    VALUE,
    Alert,
    Group,
    Record,
    Severity,
    duration,
    label,
    num,
    percent,
    size,
    value_as,
)

__all__ = ["GROUPS", "QUANTILES", "alerts", "records"]

W = RATE_WINDOW
EW = EVENT_WINDOW
PCT = value_as("humanizePercentage")
SECS = value_as("humanizeDuration")
COUNT = '{{ $value | printf "%.0f" }}'
EXPORTER = f'job="{EXPORTER_JOB}"'
PG = f"PostgreSQL {label('server')}"
PG_DB = f"{label('server')}/{label('datname')}"
REDIS_SRV = f"Redis {label('server')}"

#: latency quantiles recorded for every service and route
QUANTILES: tuple[str, ...] = ("0.5", "0.95", "0.99")

BUCKETS_BY_ROUTE = f"job_http_route:http_server_request_duration_seconds_bucket:rate{W}"
BUCKETS_BY_JOB = f"job:http_server_request_duration_seconds_bucket:rate{W}"
LATENCY_BY_ROUTE = f"job_http_route:http_server_request_duration_seconds:quantile_rate{W}"
LATENCY_BY_JOB = f"job:http_server_request_duration_seconds:quantile_rate{W}"
REQUESTS_BY_ROUTE = f"job_http_route:http_server_requests:rate{W}"
ERRORS_BY_ROUTE = f"job_http_route:http_server_request_errors:rate{W}"
ERROR_RATIO_BY_ROUTE = f"job_http_route:http_server_request_errors:ratio_rate{W}"
REQUESTS_BY_JOB = f"job:http_server_requests:rate{W}"
ERRORS_BY_JOB = f"job:http_server_request_errors:rate{W}"
ERROR_RATIO_BY_JOB = f"job:http_server_request_errors:ratio_rate{W}"
REDIS_LOOKUPS = f"instance:redis_keyspace_lookups:rate{W}"
REDIS_HIT_RATIO = f"instance:redis_keyspace_hits:ratio_rate{W}"
CACHE_REQUESTS = f"job_cache:cache_requests:rate{W}"
CACHE_HIT_RATIO = f"job_cache:cache_requests_hits:ratio_rate{W}"
PG_SATURATION = "instance:pg_connections:saturation_ratio"

_PG_BY = "job, instance, server"


def _recording() -> tuple[Record, ...]:
    latency = [
        Record(BUCKETS_BY_ROUTE,
               f"sum by (job, http_route, le) (rate(http_server_request_duration_seconds_bucket[{W}]))",
               meaning="request duration histogram buckets per second, by service and route"),
        Record(BUCKETS_BY_JOB, f"sum by (job, le) ({BUCKETS_BY_ROUTE})",
               meaning="request duration histogram buckets per second, by service"),
    ]
    for q in QUANTILES:
        latency.append(Record(LATENCY_BY_ROUTE, f"histogram_quantile({q}, {BUCKETS_BY_ROUTE})", {"quantile": q},
                              meaning=f"p{float(q) * 100:g} request latency by service and route"))
    for q in QUANTILES:
        latency.append(Record(LATENCY_BY_JOB, f"histogram_quantile({q}, {BUCKETS_BY_JOB})", {"quantile": q},
                              meaning=f"p{float(q) * 100:g} request latency by service"))
    errors = [
        Record(REQUESTS_BY_ROUTE, f"sum by (job, http_route) (rate(http_server_request_duration_seconds_count[{W}]))",
               meaning="requests per second by service and route"),
        # "or ... * 0" records an explicit 0 for routes that never failed, so ratios exist for them.
        Record(ERRORS_BY_ROUTE,
               "sum by (job, http_route) "
               f'(rate(http_server_request_duration_seconds_count{{http_response_status_code=~"5.."}}[{W}]))'
               f" or {REQUESTS_BY_ROUTE} * 0",
               meaning="5xx responses per second by service and route (0 when none)"),
        Record(ERROR_RATIO_BY_ROUTE, f"{ERRORS_BY_ROUTE} / {REQUESTS_BY_ROUTE}",
               meaning="share of requests answered 5xx, by service and route"),
        Record(REQUESTS_BY_JOB, f"sum by (job) ({REQUESTS_BY_ROUTE})", meaning="requests per second by service"),
        Record(ERRORS_BY_JOB, f"sum by (job) ({ERRORS_BY_ROUTE})", meaning="5xx responses per second by service"),
        Record(ERROR_RATIO_BY_JOB, f"{ERRORS_BY_JOB} / {REQUESTS_BY_JOB}",
               meaning="share of requests answered 5xx, by service"),
    ]
    caches = [
        Record(REDIS_LOOKUPS,
               f"{redis_lookup_rate('hits', _PG_BY, W)} + {redis_lookup_rate('misses', _PG_BY, W)}",
               meaning="Redis key lookups (hits + misses) per second, TTL lookups (PTTL/TTL) left out"),
        Record(REDIS_HIT_RATIO, f"{redis_lookup_rate('hits', _PG_BY, W)} / {REDIS_LOOKUPS}",
               meaning="share of Redis key lookups that hit, TTL lookups (PTTL/TTL) left out"),
        Record(CACHE_REQUESTS, cache_request_rate("job, cache", W),
               meaning="application cache lookups per second, by service and cache"),
        Record(CACHE_HIT_RATIO,
               f'({cache_request_rate("job, cache", W, "hit")} or {CACHE_REQUESTS} * 0)'
               f" / {CACHE_REQUESTS}",
               meaning="share of application cache lookups that hit (0 when none ever hit)"),
    ]
    saturation = [
        # the exporter's own ratio also leaves out reserved_connections (PostgreSQL 16+), as
        # stackwatch check does: max_connections - superuser_reserved_connections alone overstates
        # the room ordinary roles have
        Record(PG_SATURATION, f"max by ({_PG_BY}) (pg_connections_saturation_ratio)",
               meaning="PostgreSQL client connections over the slots ordinary roles may use "
                       "(max_connections - superuser_reserved_connections - reserved_connections)"),
    ]
    return (*latency, *errors, *caches, *saturation)


def _self_metric(suffix: str) -> str:
    """``<prefix>_scrape_collector_<suffix>`` of every target kind, with the prefix as ``target``."""
    return (f'label_replace({{__name__=~"(pg|redis|process)_scrape_collector_{suffix}"}}, '
            f'"target", "$1", "__name__", "(.+)_scrape_collector_{suffix}")')


def _exporter() -> tuple[Alert, ...]:
    return (
        Alert(
            alert="StackwatchExporterDown",
            expr=f"up{{{EXPORTER}}} == 0",
            for_=FOR.exporter_down,
            severity="critical",
            summary=f"The stackwatch exporter {label('instance')} cannot be scraped",
            description=(
                f"Prometheus has failed to scrape the stackwatch exporter at {label('instance')} for "
                f"{FOR.exporter_down}. The PostgreSQL, Redis and process metrics it serves are missing, so "
                "their alerts cannot fire: check the exporter process and the host it shares with the databases."
            ),
            runbook="stackwatch", dashboard="checklist", threshold="up == 0",
            meaning="first layer of PostgreSQL down: the exporter's scrape target is down",
        ),
        Alert(
            alert="StackwatchCollectorFailing",
            # a target that is down is PostgresDown/RedisDown's business: the collector that met the
            # lost connection keeps success 0 until the target is back, and is not failing itself
            expr=(
                'label_replace({__name__=~"(pg|redis|process)_scrape_collector_success"}, '
                '"target", "$1", "__name__", "(.+)_scrape_collector_success") == 0'
                " unless on (job, instance, server, target) "
                'label_replace({__name__=~"(pg|redis|process)_up"}, "target", "$1", "__name__", "(.+)_up") == 0'
            ),
            for_=FOR.collector_failing,
            severity="warning",
            summary=f"Collector {label('collector')} of {label('target')} target {label('server')} is failing",
            description=(
                f"The {label('collector')} collector of the {label('target')} target {label('server')} on "
                f"{label('instance')} has failed its polls for {FOR.collector_failing}: its metrics are missing and "
                "the alerts built on them are blind. The exporter's log names the error "
                "(permissions, a statement timeout, a missing extension)."
            ),
            runbook="stackwatch", dashboard="checklist", threshold="success == 0",
            meaning="an exporter sub-collector fails while its target is up",
        ),
        Alert(
            alert="StackwatchCollectorStale",
            # a failing collector (or a target that is down) reports success 0: that is
            # StackwatchCollectorFailing's or PostgresDown/RedisDown's business, not a stuck tier
            expr=(
                f"{_self_metric('snapshot_age_seconds')} > on (job, instance, server, target, collector) "
                f"{num(EXPORTER_HEALTH.stale_snapshot_intervals)} * {_self_metric('interval_seconds')}"
                f" and on (job, instance, server, target, collector) {_self_metric('success')} == 1"
            ),
            for_=FOR.collector_stale,
            severity="warning",
            summary=f"Collector {label('collector')} of {label('target')} target {label('server')} is stale",
            description=(
                f"The {label('collector')} collector of the {label('target')} target {label('server')} on "
                f"{label('instance')} last polled successfully {SECS} ago, more than "
                f"{num(EXPORTER_HEALTH.stale_snapshot_intervals)} times its interval: its tier is stuck or starved "
                "(a query that runs for minutes, a lock wait) and its metrics are out of date."
            ),
            runbook="stackwatch", dashboard="checklist",
            threshold=f"age > {num(EXPORTER_HEALTH.stale_snapshot_intervals)} x interval",
            meaning="an exporter sub-collector's snapshot is older than its tier should allow",
        ),
        Alert(
            alert="Watchdog",
            expr="vector(1)",
            for_=FOR.watchdog,
            severity="none",
            summary="The alerting pipeline is alive (this alert always fires)",
            description=(
                "Watchdog fires for as long as Prometheus evaluates rules and delivers alerts to Alertmanager. "
                "Route it to a dead man's switch: when it stops arriving, alerting itself is broken."
            ),
            runbook="stackwatch", dashboard="checklist", threshold="always",
            meaning="heartbeat of the alerting pipeline",
        ),
    )


def _postgres() -> tuple[Alert, ...]:
    def saturated(severity: Severity, for_: str, level: float) -> Alert:
        """The two levels share a name, so Alertmanager's critical-inhibits-warning can match it."""
        return Alert(
            alert="PostgresConnectionsSaturated",
            expr=f"{PG_SATURATION} > {num(level)}",
            for_=for_,
            severity=severity,
            summary=f"{PG} uses {PCT} of its connections",
            description=(
                f"{PCT} of the connection slots of {PG} that ordinary roles may use are in use "
                f"(warning above {percent(POSTGRES.connection_saturation_warning)}, critical above "
                f"{percent(POSTGRES.connection_saturation_critical)}). New clients are refused when none are "
                "left: put a pooler such as PgBouncer in front, or shrink the application pools."
            ),
            runbook="postgres", dashboard="postgres", threshold=f"> {percent(level)}",
            meaning="connections in use over max_connections minus the reserved slots (recorded)",
        )

    return (
        Alert(
            alert="PostgresMetricsAbsent",
            expr=f"absent(pg_up{{{EXPORTER}}}) unless on() (up{{{EXPORTER}}} == 0)",
            for_=FOR.postgres_metrics_absent,
            severity="warning",
            summary="No PostgreSQL metrics arrive from the stackwatch exporter",
            description=(
                f"The {label('job')} job is scraped but has served no pg_up series for "
                f"{FOR.postgres_metrics_absent}: the exporter has no PostgreSQL target configured, or the "
                "scrape configuration changed. PostgreSQL could be down without any alert."
            ),
            runbook="postgres", dashboard="postgres", threshold="absent(pg_up)",
            meaning="second layer of PostgreSQL down: the exporter is up but serves no pg_up",
        ),
        Alert(
            alert="PostgresDown",
            expr="pg_up == 0",
            for_=FOR.postgres_down,
            severity="critical",
            summary=f"{PG} is down",
            description=(
                f"The exporter on {label('instance')} has not been able to connect to {PG} for "
                f"{FOR.postgres_down}. pg_connection_error says why (authentication, unreachable, "
                "too many clients)."
            ),
            runbook="postgres", dashboard="postgres", threshold="pg_up == 0",
            meaning="third layer of PostgreSQL down: the exporter cannot connect",
        ),
        saturated("warning", FOR.postgres_connections_saturated_warning, POSTGRES.connection_saturation_warning),
        saturated("critical", FOR.postgres_connections_saturated_critical, POSTGRES.connection_saturation_critical),
        Alert(
            alert="PostgresIdleInTransaction",
            expr=f"pg_stat_activity_idle_in_transaction_max_seconds > {num(POSTGRES.idle_in_transaction_seconds)}",
            for_=FOR.postgres_idle_in_transaction,
            severity="warning",
            summary=f"A session on {PG} has been idle in transaction for {SECS}",
            description=(
                f"The oldest idle-in-transaction session on {PG} has been idle for {SECS} "
                f"(threshold {duration(POSTGRES.idle_in_transaction_seconds)}). It keeps its locks and snapshot, "
                "blocking writers and vacuum: find it in pg_stat_activity, fix the code path that leaves the "
                "transaction open, and set idle_in_transaction_session_timeout as a backstop."
            ),
            runbook="postgres", dashboard="postgres",
            threshold=f"> {duration(POSTGRES.idle_in_transaction_seconds)}",
            meaning="age of the oldest session idle in transaction",
        ),
        Alert(
            alert="PostgresLongTransaction",
            # one series per database: a transaction moves between the state series (active, idle in
            # transaction) as it runs, which must not restart `for`
            expr=f"max without (state) (pg_stat_activity_max_tx_duration) > {num(POSTGRES.long_transaction_seconds)}",
            for_=FOR.postgres_long_transaction,
            severity="warning",
            summary=f"A transaction on {PG_DB} has been open for {SECS}",
            description=(
                f"The oldest transaction in database {label('datname')} on {PG} has been open for {SECS} "
                f"(threshold {duration(POSTGRES.long_transaction_seconds)}). Until it ends, vacuum cannot remove "
                "dead rows anywhere and the locks it holds make others wait."
            ),
            runbook="postgres", dashboard="postgres",
            threshold=f"> {duration(POSTGRES.long_transaction_seconds)}",
            meaning="age of the oldest open transaction, by database",
        ),
        Alert(
            alert="PostgresSlowStatements",
            expr=f"{statement_mean_seconds(SLOW_TIER_WINDOW)} > {num(POSTGRES.slow_statement_mean_seconds)}",
            for_=FOR.postgres_slow_statements,
            severity="warning",
            summary=f"Statement {label('queryid')} on {PG_DB} averages {SECS} per call",
            description=(
                f"Over the last {SLOW_TIER_WINDOW}, calls of statement {label('queryid')} by user {label('user')} "
                f"in database {label('datname')} on {PG} took {SECS} on average (threshold "
                f"{duration(POSTGRES.slow_statement_mean_seconds)}). pg_stat_statements_query_info has its text: "
                "look at its plan (stackwatch check shows the generic plan) for a missing index or LIMIT."
            ),
            runbook="postgres", dashboard="postgres",
            threshold=(f"> {duration(POSTGRES.slow_statement_mean_seconds)} mean, "
                       f">= {POSTGRES.slow_statement_min_calls} calls"),
            meaning=(f"mean time per call of a top application statement over {SLOW_TIER_WINDOW} "
                     "(utility and monitoring statements and one-offs left out)"),
        ),
        Alert(
            alert="PostgresMissingIndexSuspect",
            expr=f"pg_table_missing_index_suspect_score >= {num(POSTGRES.missing_index_suspect_score)}",
            for_=FOR.postgres_missing_index_suspect,
            severity="warning",
            summary=f"Table {label('schemaname')}.{label('relname')} on {PG_DB} looks like it lacks an index",
            description=(
                f"Sequential scans of {label('schemaname')}.{label('relname')} in database {label('datname')} "
                f"on {PG} read far more rows than index scans would (suspect score {value_as('humanize')}, "
                f"suspect from {num(POSTGRES.missing_index_suspect_score)}). Index the columns its frequent "
                "statements filter or join on; stackwatch check suggests a CREATE INDEX."
            ),
            runbook="postgres", dashboard="postgres",
            threshold=f">= {num(POSTGRES.missing_index_suspect_score)}",
            meaning="the exporter's missing-index suspect score of a table",
        ),
        Alert(
            alert="PostgresUnusedIndex",
            expr=f"pg_index_unused_size_bytes > {num(POSTGRES.unused_index_min_bytes)}",
            for_=FOR.postgres_unused_index,
            severity="info",
            summary=f"Index {label('indexrelname')} on {PG_DB} is never used",
            description=(
                f"Index {label('schemaname')}.{label('indexrelname')} of table {label('relname')} on {PG} has not "
                f"been scanned since statistics were reset and holds {value_as('humanize1024')}B. Every write still "
                "maintains it: unless a replica or a rare report needs it, drop it with DROP INDEX CONCURRENTLY."
            ),
            runbook="postgres", dashboard="postgres",
            threshold=f"> {size(POSTGRES.unused_index_min_bytes)}",
            meaning="size of an index with no scans since the statistics reset",
        ),
        Alert(
            alert="PostgresDeadlocks",
            expr=(
                f"sum by ({_PG_BY}, datname) (increase(pg_stat_database_deadlocks[{EW}]))"
                f" > {num(POSTGRES.deadlocks)}"
            ),
            for_=FOR.postgres_deadlocks,
            severity="warning",
            summary=f"Deadlocks in {PG_DB}",
            description=(
                f"{PG} aborted about {COUNT} transaction(s) in database {label('datname')} to break deadlocks in "
                f"the last {EW}. The server log shows both statements of each deadlock: make the code paths "
                "lock rows in the same order."
            ),
            runbook="postgres", dashboard="postgres", threshold=f"> {POSTGRES.deadlocks} in {EW}",
            meaning=f"deadlocks detected in the last {EW}, by database",
        ),
        Alert(
            alert="PostgresReplicationLag",
            expr=(
                f"pg_replication_lag_seconds > {num(POSTGRES.replication_lag_seconds)}"
                f" or max by ({_PG_BY}, application_name) (pg_stat_replication_replay_lag_seconds)"
                f" > {num(POSTGRES.replication_lag_seconds)}"
            ),
            for_=FOR.postgres_replication_lag,
            severity="warning",
            summary=f"Replication of {PG} lags {SECS} behind",
            description=(
                f"{PG} reports a replication lag of {SECS} (threshold "
                f"{duration(POSTGRES.replication_lag_seconds)}){{{{ if $labels.application_name }}}} for standby "
                f"{label('application_name')}{{{{ end }}}}. Reads from the replica are that stale and a failover "
                "would lose that much: look for long queries on the replica, a saturated network or disk."
            ),
            runbook="postgres", dashboard="postgres",
            threshold=f"> {duration(POSTGRES.replication_lag_seconds)}",
            meaning="replay lag seen on a replica, or per standby on the primary",
        ),
    )


def _redis() -> tuple[Alert, ...]:
    return (
        Alert(
            alert="RedisDown",
            expr="redis_up == 0",
            for_=FOR.redis_down,
            severity="critical",
            summary=f"{REDIS_SRV} is down",
            description=(
                f"The exporter on {label('instance')} has not been able to reach {REDIS_SRV} for {FOR.redis_down}. "
                "Every cache lookup now fails or falls through to the database: redis_connection_error says why."
            ),
            runbook="redis", dashboard="redis", threshold="redis_up == 0",
            meaning="the exporter cannot connect to Redis",
        ),
        Alert(
            alert="RedisHitRatioLow",
            expr=f"{REDIS_HIT_RATIO} < {num(REDIS.hit_ratio)} and {REDIS_LOOKUPS} > {num(REDIS.min_lookups_per_second)}",
            for_=FOR.redis_hit_ratio_low,
            severity="warning",
            summary=f"Only {PCT} of lookups hit on {REDIS_SRV}",
            description=(
                f"{PCT} of the key lookups on {REDIS_SRV} hit over the last {W} (target: at least "
                f"{percent(REDIS.hit_ratio)}, checked above {num(REDIS.min_lookups_per_second)} lookup/s). "
                "Every miss goes to the database: look for TTLs that are too short, over-eager invalidation or "
                "a cache too small for the working set (see evictions)."
            ),
            runbook="redis", dashboard="redis",
            threshold=f"< {percent(REDIS.hit_ratio)} (with > {num(REDIS.min_lookups_per_second)} lookup/s)",
            meaning=f"keyspace hits over hits + misses, {W} rate",
        ),
        Alert(
            alert="RedisMemoryNearLimit",
            expr=f"redis_memory_used_bytes / (redis_memory_max_bytes > 0) > {num(REDIS.memory_saturation)}",
            for_=FOR.redis_memory_near_limit,
            severity="warning",
            summary=f"{REDIS_SRV} uses {PCT} of maxmemory",
            description=(
                f"{REDIS_SRV} uses {PCT} of its maxmemory (threshold {percent(REDIS.memory_saturation)}). "
                "At the limit it evicts keys or, with noeviction, refuses writes: raise maxmemory or find the "
                "keys that grow (keys without TTL, big values)."
            ),
            runbook="redis", dashboard="redis", threshold=f"> {percent(REDIS.memory_saturation)}",
            meaning="used memory over maxmemory (when maxmemory is set)",
        ),
        Alert(
            alert="RedisEvictingKeys",
            expr=f"rate(redis_evicted_keys_total[{W}]) > {num(REDIS.evictions_per_second)}",
            for_=FOR.redis_evicting_keys,
            severity="warning",
            summary=f"{REDIS_SRV} evicts keys",
            description=(
                f"{REDIS_SRV} has been evicting keys for {FOR.redis_evicting_keys} ({value_as('humanize')} keys/s "
                f"now) to stay under maxmemory. The working set no longer fits and hot keys are dropped, which "
                "the hit ratio will show: raise maxmemory or shorten the TTLs of cold keys."
            ),
            runbook="redis", dashboard="redis", threshold=f"> {num(REDIS.evictions_per_second)} keys/s",
            meaning=f"keys evicted per second, {W} rate",
        ),
        Alert(
            alert="RedisRejectedConnections",
            expr=f"increase(redis_rejected_connections_total[{EW}]) > {num(REDIS.rejected_connections)}",
            for_=FOR.redis_rejected_connections,
            severity="critical",
            summary=f"{REDIS_SRV} rejects connections",
            description=(
                f"{REDIS_SRV} rejected about {COUNT} connection(s) in the last {EW} because maxclients was "
                "reached: those clients got errors. Look for connection leaks or pools without a maximum "
                "before raising maxclients."
            ),
            runbook="redis", dashboard="redis", threshold=f"> {REDIS.rejected_connections} in {EW}",
            meaning=f"connections rejected in the last {EW}",
        ),
        Alert(
            alert="RedisMaxmemoryNotSet",
            expr="redis_memory_max_bytes == 0",
            for_=FOR.redis_maxmemory_not_set,
            severity="info",
            summary=f"{REDIS_SRV} has no maxmemory",
            description=(
                f"{REDIS_SRV} runs without maxmemory, so its eviction policy never applies: as a cache it grows "
                "until the host or container runs out of memory. Set maxmemory and a maxmemory-policy such as "
                "allkeys-lru."
            ),
            runbook="redis", dashboard="redis", threshold="maxmemory == 0",
            meaning="Redis memory is unbounded",
        ),
    )


def _service() -> tuple[Alert, ...]:
    guard = f"{REQUESTS_BY_ROUTE} > {num(HTTP.min_requests_per_second)}"
    route = f"{label('job')} {label('http_route')}"
    return (
        Alert(
            alert="HttpErrorRatioHigh",
            expr=f"{ERROR_RATIO_BY_ROUTE} > {num(HTTP.error_ratio)} and {guard}",
            for_=FOR.http_error_ratio_high,
            severity="critical",
            summary=f"{PCT} of requests to {route} fail",
            description=(
                f"{PCT} of the requests to route {label('http_route')} of {label('job')} were answered with a 5xx "
                f"over the last {W} (threshold {percent(HTTP.error_ratio)}, checked above "
                f"{num(HTTP.min_requests_per_second)} req/s). Sentry and the traces linked from the service "
                "dashboard show the failing calls."
            ),
            runbook="service", dashboard="service",
            threshold=f"> {percent(HTTP.error_ratio)} (with > {num(HTTP.min_requests_per_second)} req/s)",
            meaning=f"5xx responses over all responses, by service and route, {W} rate",
        ),
        Alert(
            alert="HttpLatencyP99High",
            expr=(
                f'{LATENCY_BY_ROUTE}{{quantile="0.99"}} > {num(HTTP.latency_p99_seconds)}'
                f" and ignoring(quantile) {guard}"
            ),
            for_=FOR.http_latency_p99_high,
            severity="warning",
            summary=f"p99 latency of {route} is {SECS}",
            description=(
                f"The slowest 1% of the requests to route {label('http_route')} of {label('job')} took more than "
                f"{SECS} over the last {W} (threshold {duration(HTTP.latency_p99_seconds)}, checked above "
                f"{num(HTTP.min_requests_per_second)} req/s). The exemplars on the latency panel link to traces "
                "of slow requests."
            ),
            runbook="service", dashboard="service",
            threshold=f"> {duration(HTTP.latency_p99_seconds)} (with > {num(HTTP.min_requests_per_second)} req/s)",
            meaning=f"p99 of the request duration histogram, by service and route, {W} rate",
        ),
        Alert(
            alert="NPlusOneQueriesDetected",
            expr=f"{n_plus_one_detections(EW, 'job, http_route')} > {num(HTTP.n_plus_one_detections)}",
            for_=FOR.n_plus_one_detected,
            severity="warning",
            summary=f"N+1 queries in {route}",
            description=(
                f"About {COUNT} time(s) in the last {EW}, a request to route {label('http_route')} of {label('job')} "
                f"ran the same statement {HTTP.n_plus_one_repeat_count} times or more (counted once per repeated "
                "statement and request): a loop issues one query per item. "
                "Load the related rows with a join or an IN list (eager loading)."
            ),
            runbook="service", dashboard="service",
            threshold=f"> {HTTP.n_plus_one_detections} in {EW}",
            meaning=f"N+1 detections (a statement repeated {HTTP.n_plus_one_repeat_count}+ times in one request) in {EW}",
        ),
        Alert(
            alert="HealthCheckFailing",
            expr="health_check_status == 0",
            for_=FOR.health_check_failing,
            severity="critical",
            summary=f"Health check {label('check')} of {label('job')} fails",
            description=(
                f"The {label('check')} check of {label('job')} on {label('instance')} has reported failure on "
                f"/health for {FOR.health_check_failing}: load balancers take the instance out of rotation. The "
                "/health response body says which dependency is failing."
            ),
            runbook="service", dashboard="service", threshold="status == 0",
            meaning="a dependency check of the service's /health fails",
        ),
        Alert(
            alert="DbPoolRequestsWaiting",
            expr=f"db_client_connection_pending_requests > {num(POOL.pending_requests)}",
            for_=FOR.pool_requests_waiting,
            severity="warning",
            summary=f"Requests wait for a connection from pool {label('pool_name')} of {label('job')}",
            description=(
                f"{VALUE} request(s) of {label('job')} on {label('instance')} were waiting for a connection from "
                f"pool {label('pool_name')} at every evaluation for {FOR.pool_requests_waiting}: the pool is "
                "exhausted. Look for slow queries or connections held across slow work first; size pools as "
                "(cores x 2) + spindles and keep their total under max_connections."
            ),
            runbook="service", dashboard="service", threshold=f"> {num(POOL.pending_requests)}",
            meaning="requests queued for a connection from the client pool",
        ),
        Alert(
            alert="DbPoolWaitTimeHigh",
            expr=f"{pool_wait_mean('job, instance, pool_name', W)} > {num(POOL.wait_mean_seconds)}",
            for_=FOR.pool_wait_time_high,
            severity="warning",
            summary=f"Getting a connection from pool {label('pool_name')} of {label('job')} takes {SECS}",
            description=(
                f"Requests of {label('job')} on {label('instance')} waited {SECS} on average for a connection "
                f"from pool {label('pool_name')} over the last {W} (threshold {duration(POOL.wait_mean_seconds)}). "
                "That time is spent before any query runs: the pool is too small or connections are held too long."
            ),
            runbook="service", dashboard="service", threshold=f"> {duration(POOL.wait_mean_seconds)} mean",
            meaning=f"mean wait for a pool connection, {W} rate",
        ),
        Alert(
            alert="CacheHitRatioLow",
            expr=f"{CACHE_HIT_RATIO} < {num(CACHE.hit_ratio)} and {CACHE_REQUESTS} > {num(CACHE.min_requests_per_second)}",
            for_=FOR.cache_hit_ratio_low,
            severity="warning",
            summary=f"Only {PCT} of lookups in cache {label('cache')} of {label('job')} hit",
            description=(
                f"{PCT} of the lookups {label('job')} made in cache {label('cache')} hit over the last {W} "
                f"(target: at least {percent(CACHE.hit_ratio)}, checked above "
                f"{num(CACHE.min_requests_per_second)} lookup/s). Check the keys' TTLs and invalidation, and "
                "whether the cached data is read more often than it changes."
            ),
            runbook="service", dashboard="service",
            threshold=f"< {percent(CACHE.hit_ratio)} (with > {num(CACHE.min_requests_per_second)} lookup/s)",
            meaning=f"application cache hits over lookups, by service and cache, {W} rate",
        ),
    )


def _processes() -> tuple[Alert, ...]:
    cgroup = f"cgroup {label('cgroup')}"
    return (
        Alert(
            alert="ProcessCpuNearLimit",
            expr=(
                f"rate(process_cgroup_cpu_usage_seconds_total[{W}]) / process_cgroup_cpu_limit_cores"
                f" > {num(PROCESS.cpu_limit_ratio)}"
            ),
            for_=FOR.process_cpu_near_limit,
            severity="warning",
            summary=f"{cgroup} uses {PCT} of its CPU limit",
            description=(
                f"The processes of {cgroup} on {label('server')} use {PCT} of their CPU limit (threshold "
                f"{percent(PROCESS.cpu_limit_ratio)}). Near the quota the kernel throttles them, which shows up as "
                "latency: raise the limit, add instances or find what burns the CPU."
            ),
            runbook="processes", dashboard="processes", threshold=f"> {percent(PROCESS.cpu_limit_ratio)}",
            meaning=f"cgroup CPU usage over its CPU limit, {W} rate",
        ),
        Alert(
            alert="ProcessMemoryNearLimit",
            expr=(
                "process_cgroup_memory_current_bytes / process_cgroup_memory_max_bytes"
                f" > {num(PROCESS.memory_limit_ratio)}"
            ),
            for_=FOR.process_memory_near_limit,
            severity="warning",
            summary=f"{cgroup} uses {PCT} of its memory limit",
            description=(
                f"The processes of {cgroup} on {label('server')} use {PCT} of their memory limit (threshold "
                f"{percent(PROCESS.memory_limit_ratio)}). At the limit the OOM killer ends one of them: raise the "
                "limit or find the growth."
            ),
            runbook="processes", dashboard="processes", threshold=f"> {percent(PROCESS.memory_limit_ratio)}",
            meaning="cgroup memory in use over memory.max",
        ),
        Alert(
            alert="ProcessResourceLimitMissing",
            expr=(
                'label_replace(process_cgroup_memory_limited == 0, "resource", "memory", "", "")'
                ' or label_replace(process_cgroup_cpu_limited == 0, "resource", "cpu", "", "")'
            ),
            for_=FOR.process_limit_missing,
            severity="info",
            summary=f"{cgroup} has no {label('resource')} limit",
            description=(
                f"The processes of {cgroup} on {label('server')} run without a {label('resource')} limit "
                "(checklist: resource limits set). One runaway process can starve its neighbours: set the "
                "limit in the container or systemd unit."
            ),
            runbook="processes", dashboard="processes", threshold="limited == 0",
            meaning="a monitored cgroup has no CPU or memory limit",
        ),
    )


def _jobs() -> tuple[Alert, ...]:
    queue = f"{label('system')} queue {label('queue')}"
    queued = 'job_queue_depth{state="queued"}'
    task = f"task {label('task')} of {label('job')}"
    by_task = "job, system, queue, task"
    finished = f'sum by ({by_task}) (rate(jobs_total{{result=~"success|failure"}}[{W}]))'
    route = f"{label('job')} {label('http_route')}"
    return (
        Alert(
            alert="JobQueueBacklogGrowing",
            expr=f"delta({queued}[{FOR.job_queue_backlog_growing}]) > {num(JOBS.backlog_growth)}",
            for_=FOR.job_queue_backlog_growing,
            severity="warning",
            summary=f"The backlog of {queue} keeps growing",
            description=(
                f"The {queue} on {label('server')} holds {COUNT} more queued jobs than "
                f"{FOR.job_queue_backlog_growing} ago, and has kept growing for {FOR.job_queue_backlog_growing}: "
                "the workers no longer keep up with what is enqueued. Add workers, or find the task that got slower."
            ),
            runbook="jobs", dashboard="jobs",
            threshold=f"> {num(JOBS.backlog_growth)} more queued jobs than {FOR.job_queue_backlog_growing} ago",
            meaning="growth of the queued jobs over the window, by queue (exporter, read from Redis)",
        ),
        Alert(
            alert="JobQueueOldestJobTooOld",
            expr=f"job_queue_oldest_age_seconds > {num(JOBS.oldest_age_seconds)}",
            for_=FOR.job_queue_oldest_job_too_old,
            severity="warning",
            summary=f"The oldest job of {queue} has waited {SECS}",
            description=(
                f"The longest-waiting job in {queue} on {label('server')} was enqueued {SECS} ago (threshold "
                f"{duration(JOBS.oldest_age_seconds)}): emails, reports and webhooks behind it are late. Check that "
                "workers run and consume this queue."
            ),
            runbook="jobs", dashboard="jobs", threshold=f"> {duration(JOBS.oldest_age_seconds)}",
            meaning="age of the longest-waiting queued job, where the queue's layout records it",
        ),
        Alert(
            alert="JobQueueNoWorkers",
            expr=(
                f"job_queue_workers == 0 and on (job, instance, server, system, queue) {queued} > 0"
            ),
            for_=FOR.job_queue_no_workers,
            severity="warning",
            summary=f"Nobody works {queue}",
            description=(
                f"{COUNT} workers consume {queue} on {label('server')} while jobs wait in it, for "
                f"{FOR.job_queue_no_workers}: nothing will run them. Start the workers for this queue, or check "
                "that they listen to its name."
            ),
            runbook="jobs", dashboard="jobs", threshold="0 workers with queued jobs",
            meaning="registered workers (RQ) or consumers (streams) of a queue that has work",
        ),
        Alert(
            alert="JobFailureRatioHigh",
            expr=(
                f'sum by ({by_task}) (rate(jobs_total{{result="failure"}}[{W}])) / {finished}'
                f" > {num(JOBS.failure_ratio)} and {finished} > {num(JOBS.min_jobs_per_second)}"
            ),
            for_=FOR.job_failure_ratio_high,
            severity="warning",
            summary=f"{PCT} of the runs of {task} fail",
            description=(
                f"{PCT} of the finished runs of {task} on queue {label('queue')} failed over the last {W} "
                f"(threshold {percent(JOBS.failure_ratio)}, checked above {num(JOBS.min_jobs_per_second * 60)} job "
                "a minute). Sentry events from the job carry its trace id."
            ),
            runbook="jobs", dashboard="jobs",
            threshold=f"> {percent(JOBS.failure_ratio)} (with > {num(JOBS.min_jobs_per_second * 60)} job/min)",
            meaning=f"failed over finished job runs by task ({W} rate; retries are neither)",
        ),
        Alert(
            alert="HttpRouteShouldBeBackgroundJob",
            expr=(
                f'{LATENCY_BY_ROUTE}{{quantile="0.95"}} > {num(JOBS.synchronous_route_p95_seconds)}'
                f" and ignoring(quantile) {REQUESTS_BY_ROUTE} > {num(HTTP.min_requests_per_second)}"
            ),
            for_=FOR.http_route_should_be_background_job,
            severity="info",
            summary=f"{route} keeps its clients waiting {SECS}",
            description=(
                f"The p95 latency of route {label('http_route')} of {label('job')} has stayed above "
                f"{duration(JOBS.synchronous_route_p95_seconds)} for {FOR.http_route_should_be_background_job} "
                f"(now {SECS}): the typical request does long work while the client waits (checklist pitfall: "
                "synchronous processing). Enqueue the work as a background job and answer 202 with a status URL."
            ),
            runbook="jobs", dashboard="service",
            threshold=(f"p95 > {duration(JOBS.synchronous_route_p95_seconds)} "
                       f"(with > {num(HTTP.min_requests_per_second)} req/s)"),
            meaning="p95 request latency by route (recorded), for the synchronous-processing pitfall",
        ),
    )


def _groups() -> tuple[Group, ...]:
    return (
        Group("stackwatch.recording", _recording()),
        Group("stackwatch.exporter", _exporter()),
        Group("stackwatch.postgres", _postgres()),
        Group("stackwatch.redis", _redis()),
        Group("stackwatch.service", _service()),
        Group("stackwatch.processes", _processes()),
        Group("stackwatch.jobs", _jobs()),
    )


#: every rule group, in file order
GROUPS: tuple[Group, ...] = _groups()


def alerts() -> list[Alert]:
    """Every alerting rule of the catalog."""
    return [rule for group in GROUPS for rule in group.rules if isinstance(rule, Alert)]


def records() -> list[Record]:
    """Every recording rule of the catalog."""
    return [rule for group in GROUPS for rule in group.rules if isinstance(rule, Record)]
