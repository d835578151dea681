"""The rule catalog: every recording rule and alert stackwatch ships, built from the thresholds.

Recording rules hold what dashboards and alerts share (latency quantiles, error and hit ratios,
connection saturation); alerts watch each checklist item that can be watched. Numbers come from
:mod:`stackwatch.thresholds` only. Label names are the metric-name contract's; series from the
exporter carry ``job``, ``instance`` and ``server``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from stackwatch.core.text import byte_size
from stackwatch.promql import (
    CONTENT_ENCODING_FAMILY,
    DATA_FILESYSTEMS,
    EXPORTER_KINDS,
    cache_request_rate,
    compressed_share,
    database_growth_forecast,
    filesystem_avail_ratio,
    instance_request_share,
    instances_up,
    le_matcher,
    memory_used_ratio,
    n_plus_one_detections,
    pg_sessions_per_transaction,
    pool_wait_mean,
    redis_lookup_rate,
    select_rows_per_call,
    statement_mean_seconds,
)
from stackwatch.thresholds import (
    ALERTING,
    CACHE,
    EVENT_WINDOW,
    FOR,
    GROWTH_WINDOW,
    HOST,
    HTTP,
    JOBS,
    POOL,
    POSTGRES,
    PREDICTION_WINDOW,
    PRESENCE_WINDOW,
    PROCESS,
    RATE_WINDOW,
    REDIS,
    SELECTORS,
    SLO_PERIOD,
    SLOS,
    SLOW_TIER_WINDOW,
    ServiceSlo,
)
from stackwatch.thresholds import EXPORTER as EXPORTER_HEALTH

from .rules import (
    Alert,
    Group,
    Record,
    Severity,
    duration,
    label,
    num,
    percent,
    value_as,
)

__all__ = ["GROUPS", "QUANTILES", "alerts", "records", "slo_problems"]

W = RATE_WINDOW
EW = EVENT_WINDOW
PCT = value_as("humanizePercentage")
SECS = value_as("humanizeDuration")
COUNT = '{{ $value | printf "%.0f" }}'
TIMES = '{{ $value | printf "%.2f" }}'
EXPORTER = SELECTORS.exporter
SERVICES = SELECTORS.services
PG = f"PostgreSQL {label('server')}"
PG_DB = f"{label('server')}/{label('datname')}"
REDIS_SRV = f"Redis {label('server')}"
#: Redis servers whose eviction policy makes memory at the limit and evictions the normal state
CACHE_POLICY = f'redis_config_maxmemory_policy_info{{policy=~"{"|".join(REDIS.cache_policies)}"}}'

#: latency quantiles recorded for every service and route
QUANTILES: tuple[str, ...] = ("0.5", "0.95", "0.99")

BUCKETS_BY_ROUTE = f"job_http_route:http_server_request_duration_seconds_bucket:rate{W}"
BUCKETS_BY_JOB = f"job:http_server_request_duration_seconds_bucket:rate{W}"
LATENCY_BY_ROUTE = f"job_http_route:http_server_request_duration_seconds:quantile_rate{W}"
LATENCY_BY_JOB = f"job:http_server_request_duration_seconds:quantile_rate{W}"
REQUESTS_BY_ROUTE = f"job_http_route:http_server_requests:rate{W}"
ERRORS_BY_ROUTE = f"job_http_route:http_server_request_errors:rate{W}"
ERROR_RATIO_BY_ROUTE = f"job_http_route:http_server_request_errors:ratio_rate{W}"
BUCKETS_BY_INSTANCE = f"job_instance:http_server_request_duration_seconds_bucket:rate{W}"
LATENCY_BY_INSTANCE = f"job_instance:http_server_request_duration_seconds:quantile_rate{W}"
REQUESTS_BY_INSTANCE = f"job_instance:http_server_requests:rate{W}"
ERRORS_BY_INSTANCE = f"job_instance:http_server_request_errors:rate{W}"
REQUESTS_BY_JOB = f"job:http_server_requests:rate{W}"
ERRORS_BY_JOB = f"job:http_server_request_errors:rate{W}"
ERROR_RATIO_BY_JOB = f"job:http_server_request_errors:ratio_rate{W}"
REDIS_LOOKUPS = f"instance:redis_keyspace_lookups:rate{W}"
REDIS_HIT_RATIO = f"instance:redis_keyspace_hits:ratio_rate{W}"
CACHE_REQUESTS = f"job_cache:cache_requests:rate{W}"
CACHE_HIT_RATIO = f"job_cache:cache_requests_hits:ratio_rate{W}"
PG_SATURATION = "instance:pg_connections:saturation_ratio"
SHARE_BY_INSTANCE = f"job_instance:http_server_requests:share_rate{W}"

_PG_BY = "job, instance, server"


def _settled(expr: str, series: str, window: str) -> str:
    """``expr`` (a rate or increase of the server-side counter ``series``), left out for series
    younger than ``window``.

    A counter the exporter starts serving (exporter restart, new database, fresh store) already
    holds the target's history; VictoriaMetrics counts a new series' first value as an increase,
    so an unguarded alert fires on every restart. Unlike NPlusOneQueriesDetected's counter (born
    at its first event), these start at whatever happened since the server started.
    """
    return f"({expr} and {series} offset {window})"


def _settled_increase(series: str, window: str) -> str:
    """``increase()`` of a server-side counter, left out for series younger than ``window``."""
    return _settled(f"increase({series}[{window}])", series, window)


def _target_absent(prefix: str) -> str:
    """Targets of kind ``prefix`` an exporter instance served within PRESENCE_WINDOW and whose
    ``<prefix>_up`` is gone while that instance is scraped fine.

    Per instance and server, so several exporters never hide each other (``absent()`` is
    job-wide), and driven by ``stackwatch_exporter_target_info``, so an exporter configured
    without this kind (a Redis-only one) is never expected to serve it.
    """
    served = f'stackwatch_exporter_target_info{{{EXPORTER}, kind="{prefix}"}}'
    return (f"max by (job, instance, server) (max_over_time({served}[{PRESENCE_WINDOW}]))"
            f" unless on (job, instance, server) {prefix}_up"
            f" and on (job, instance) up{{{EXPORTER}}} == 1")


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
    # per instance too, so the dashboards' $instance narrows their headline numbers
    instances = [
        Record(BUCKETS_BY_INSTANCE,
               f"sum by (job, instance, le) (rate(http_server_request_duration_seconds_bucket[{W}]))",
               meaning="request duration histogram buckets per second, by service and instance"),
        *(Record(LATENCY_BY_INSTANCE, f"histogram_quantile({q}, {BUCKETS_BY_INSTANCE})", {"quantile": q},
                 meaning=f"p{float(q) * 100:g} request latency by service and instance") for q in QUANTILES),
        Record(REQUESTS_BY_INSTANCE,
               f"sum by (job, instance) (rate(http_server_request_duration_seconds_count[{W}]))",
               meaning="requests per second by service and instance"),
        Record(ERRORS_BY_INSTANCE,
               "sum by (job, instance) "
               f'(rate(http_server_request_duration_seconds_count{{http_response_status_code=~"5.."}}[{W}]))'
               f" or {REQUESTS_BY_INSTANCE} * 0",
               meaning="5xx responses per second by service and instance (0 when none)"),
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
    balancing = [
        Record(SHARE_BY_INSTANCE, instance_request_share(W),
               meaning="each instance's share of its service's requests (what the load balancer did)"),
    ]
    saturation = [
        # the exporter's own ratio also leaves out reserved_connections (PostgreSQL 16+), as
        # stackwatch check does: max_connections - superuser_reserved_connections alone overstates
        # the room ordinary roles have
        Record(PG_SATURATION, f"max by ({_PG_BY}) (pg_connections_saturation_ratio)",
               meaning="PostgreSQL client connections over the slots ordinary roles may use "
                       "(max_connections - superuser_reserved_connections - reserved_connections)"),
    ]
    return (*latency, *errors, *instances, *caches, *balancing, *saturation)


def _self_metric(suffix: str) -> str:
    """``<prefix>_scrape_collector_<suffix>`` of every target kind, with the prefix as ``target``."""
    return (f'label_replace({{__name__=~"({EXPORTER_KINDS})_scrape_collector_{suffix}"}}, '
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
                f'{_self_metric("success")} == 0'
                " unless on (job, instance, server, target) "
                f'label_replace({{__name__=~"({EXPORTER_KINDS})_up"}}, "target", "$1", "__name__", "(.+)_up") == 0'
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
            alert="StackwatchCollectorDisabled",
            expr=(
                # no process groups configured is a choice, an old Redis without LATENCY blinds no alert
                f'label_replace({{__name__=~"({EXPORTER_KINDS})_scrape_collector_disabled", '
                'reason!~"no_groups_configured|unsupported_version"}, '
                '"target", "$1", "__name__", "(.+)_scrape_collector_disabled") == 1'
            ),
            for_=FOR.collector_disabled,
            severity="warning",
            summary=f"Collector {label('collector')} of {label('target')} target {label('server')} cannot run "
                    f"({label('reason')})",
            description=(
                f"The {label('collector')} collector of the {label('target')} target {label('server')} on "
                f"{label('instance')} has been disabled for {FOR.collector_disabled} (reason: {label('reason')}): "
                "it serves nothing, so the alerts built on it are silently blind (without pg_stat_statements, "
                "PostgresSlowStatements can never fire). Install what it needs, or turn the collector off "
                "explicitly with --disable-collector."
            ),
            runbook="stackwatch", dashboard="checklist", threshold="disabled == 1",
            meaning="an exporter sub-collector cannot run on its target (e.g. pg_stat_statements missing)",
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
            expr=_target_absent("pg"),
            for_=FOR.postgres_metrics_absent,
            severity="warning",
            summary=f"No PostgreSQL metrics for {label('server')} arrive from exporter {label('instance')}",
            description=(
                f"The exporter {label('instance')} of job {label('job')} served PostgreSQL target "
                f"{label('server')} within the last {PRESENCE_WINDOW} but has served no pg_up for it for "
                f"{FOR.postgres_metrics_absent}, though it is scraped fine: its configuration lost the target "
                "(an emptied STACKWATCH_POSTGRES_DSN, a removed targets-file entry) or a relabelling drops "
                f"the series. PostgreSQL could be down without any alert. A target removed on purpose "
                f"resolves after {PRESENCE_WINDOW}."
            ),
            runbook="postgres", dashboard="postgres", threshold=f"pg_up gone (target served in {PRESENCE_WINDOW})",
            meaning="second layer of PostgreSQL down: an exporter instance no longer serves a PostgreSQL "
                    "target it was configured with",
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
            # a statement's counters hold its history since the statistics reset (see _settled)
            expr=(_settled(statement_mean_seconds(SLOW_TIER_WINDOW), "pg_stat_statements_calls_total", SLOW_TIER_WINDOW)
                  + f" > {num(POSTGRES.slow_statement_mean_seconds)}"),
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
            threshold=f"> {byte_size(POSTGRES.unused_index_min_bytes)}",
            meaning="size of an index with no scans since the statistics reset",
        ),
        Alert(
            alert="PostgresDeadlocks",
            expr=(
                f"sum by ({_PG_BY}, datname) {_settled_increase('pg_stat_database_deadlocks', EW)}"
                f" > {num(POSTGRES.deadlocks)}"
            ),
            for_=FOR.postgres_deadlocks,
            severity="warning",
            summary=f"Deadlocks in {PG_DB}",
            description=(
                f"{PG} aborted about {COUNT} transaction(s) in database {label('datname')} to break deadlocks in "
                f"the last {EW}. The server log shows both statements of each deadlock: make the code paths "
                f"lock rows in the same order. (Counted once the series is {EW} old, so a restarted exporter "
                "does not report the server's past deadlocks.)"
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
        *_postgres_health(),
        *_postgres_practices(),
    )


def _postgres_health() -> tuple[Alert, ...]:
    table = f"{label('schemaname')}.{label('relname')}"
    dead, live = "pg_stat_user_tables_n_dead_tup", "pg_stat_user_tables_n_live_tup"
    cluster = SELECTORS.postgres_cluster_label
    return (
        Alert(
            alert="PostgresVacuumBehind",
            expr=(
                f"{dead} / ({dead} + {live}) > {num(POSTGRES.dead_tuple_ratio)}"
                f" and {dead} > {num(POSTGRES.dead_tuple_min_rows)}"
                f" unless pg_stat_user_tables_last_vacuum_age_seconds < {num(POSTGRES.vacuum_age_seconds)}"
            ),
            for_=FOR.postgres_vacuum_behind,
            severity="warning",
            summary=f"Table {table} on {PG_DB} is {PCT} dead rows",
            description=(
                f"{PCT} of the rows of {table} in database {label('datname')} on {PG} are dead (threshold "
                f"{percent(POSTGRES.dead_tuple_ratio)} with more than {POSTGRES.dead_tuple_min_rows} dead rows) and "
                f"it has not been vacuumed for {duration(POSTGRES.vacuum_age_seconds)} (or ever). Scans read the "
                "dead rows and the table bloats: look for a long transaction or an abandoned replication slot "
                "holding the xmin horizon, or autovacuum workers too few or too throttled."
            ),
            runbook="postgres", dashboard="postgres",
            threshold=(f"> {percent(POSTGRES.dead_tuple_ratio)} dead, > {POSTGRES.dead_tuple_min_rows} rows, "
                       f"no vacuum in {duration(POSTGRES.vacuum_age_seconds)}"),
            meaning="a table's dead-row share is high and (auto)vacuum has not run on it for a long time",
        ),
        Alert(
            alert="PostgresXidWraparound",
            expr=f"pg_database_datfrozenxid_age > {num(POSTGRES.xid_age)}",
            for_=FOR.postgres_xid_wraparound,
            severity="warning",
            summary=f"The oldest unfrozen XID of {PG_DB} is {value_as('humanize')} transactions old",
            description=(
                f"The oldest unfrozen transaction ID of database {label('datname')} on {PG} is "
                f"{value_as('humanize')} transactions old (threshold {POSTGRES.xid_age:,}); at 2^31 (about 2.1 "
                "billion) PostgreSQL stops accepting writes to avoid wraparound. Autovacuum should have frozen "
                "it from 200 million: find what holds it back (a long transaction, an abandoned replication "
                "slot or prepared transaction) and run VACUUM (FREEZE) on the oldest tables."
            ),
            runbook="postgres", dashboard="postgres", threshold=f"> {POSTGRES.xid_age:,} transactions",
            meaning="age(datfrozenxid) of a database (transaction ID wraparound)",
        ),
        Alert(
            alert="PostgresMoreThanOnePrimary",
            expr=f'count by ({cluster}) (pg_replication_is_replica{{{cluster}!=""}} == 0) > 1',
            for_=FOR.postgres_more_than_one_primary,
            severity="critical",
            summary=f"Cluster {label(cluster)} has {COUNT} PostgreSQL primaries",
            description=(
                f"{COUNT} servers of cluster {label(cluster)} are out of recovery at once: a failover promoted a "
                "standby while the old primary still accepts writes (split brain). Writes to either are lost "
                "to the other: fence the old primary now. Only targets labelled "
                f"{cluster}=\"...\" in the scrape configuration are watched."
            ),
            runbook="postgres", dashboard="postgres", threshold="> 1 primary per cluster",
            meaning=f"servers not in recovery, counted per `{cluster}` label",
        ),
        *_postgres_replication(),
    )


def _postgres_practices() -> tuple[Alert, ...]:
    """Checklist practices the exporter measures: the slow-query log and pg_stat_statements on,
    SELECTs bounded, indexes neither duplicated nor invalid, reads from memory, sessions pooled."""
    index = f"database {label('datname')} on {PG}"
    blocks = (f"rate(pg_stat_database_blks_hit[{W}]) + rate(pg_stat_database_blks_read[{W}])")
    sessions = f"sum by ({_PG_BY}) (rate(pg_stat_database_sessions[{W}]))"
    horizon = POSTGRES.disk_full_horizon_seconds
    growth = database_growth_forecast(_PG_BY, GROWTH_WINDOW, horizon)
    free = 'max by (server) (label_replace(process_filesystem_avail_bytes, "server", "$1", "filesystem", "(.*)"))'
    return (
        Alert(
            alert="PostgresDiskFullForecast",
            expr=f"{growth} > on (server) group_left () {free}",
            for_=FOR.postgres_disk_full_forecast,
            severity="warning",
            summary=f"The databases of {PG} will fill their disk within {duration(horizon)}",
            description=(
                f"At the rate of the last {GROWTH_WINDOW}, the databases of {PG} grow by "
                f"{value_as('humanize1024')}B within {duration(horizon)}, more than the space left on the "
                f"filesystem declared for them (--filesystem {label('server')}=PATH). PostgreSQL stops when "
                "the disk is full: find what grows (pg_stat_user_tables_size_bytes, WAL kept by slots), "
                "archive or drop old data, or add disk."
            ),
            runbook="postgres", dashboard="postgres",
            threshold=f"growth in {duration(horizon)} > free bytes",
            meaning=f"database growth forecast (predict_linear over {GROWTH_WINDOW}) against the free space of "
                    "the filesystem named as the server",
        ),
        Alert(
            alert="PostgresSlowQueryLogOff",
            expr="pg_settings_log_min_duration_statement_seconds < 0",
            for_=FOR.postgres_slow_query_log_off,
            severity="info",
            summary=f"{PG} does not log slow statements",
            description=(
                f"log_min_duration_statement is -1 on {PG}: no statement is ever written to the log for its "
                "duration, so a slow query of the past leaves no text and no parameters to reproduce it. Set it "
                f"to {duration(POSTGRES.slow_statement_mean_seconds)} (the slow-statement threshold) in "
                "postgresql.conf or with ALTER SYSTEM, then SELECT pg_reload_conf()."
            ),
            runbook="postgres", dashboard="postgres", threshold="log_min_duration_statement = -1",
            meaning="the slow-query log is off (checklist: slow query log monitored)",
        ),
        Alert(
            alert="PostgresStatementStatisticsMissing",
            expr="pg_settings_pg_stat_statements_loaded == 0",
            for_=FOR.postgres_statements_not_loaded,
            severity="warning",
            summary=f"pg_stat_statements is not loaded on {PG}",
            description=(
                f"pg_stat_statements is not in shared_preload_libraries of {PG}: nothing records which "
                "statements cost the most, so slow and unbounded statements go unseen. Add it to "
                "shared_preload_libraries, restart, and CREATE EXTENSION pg_stat_statements."
            ),
            runbook="postgres", dashboard="postgres", threshold="not in shared_preload_libraries",
            meaning="per-statement statistics are unavailable (checklist: query execution plans analyzed)",
        ),
        Alert(
            alert="PostgresUnboundedQuery",
            expr=f"{select_rows_per_call(SLOW_TIER_WINDOW)} > {num(POSTGRES.rows_per_call)}",
            for_=FOR.postgres_unbounded_query,
            severity="warning",
            summary=f"Statement {label('queryid')} on {PG_DB} returns {value_as('humanize')} rows per call",
            description=(
                f"Over the last {SLOW_TIER_WINDOW}, each call of SELECT {label('queryid')} by user {label('user')} "
                f"in database {label('datname')} on {PG} returned {value_as('humanize')} rows on average "
                f"(threshold {num(POSTGRES.rows_per_call)}): more than any page shows, and it grows with the "
                "table. pg_stat_statements_query_info has its text: add a LIMIT (keyset pagination) or "
                "aggregate in the database."
            ),
            runbook="postgres", dashboard="postgres",
            threshold=(f"> {num(POSTGRES.rows_per_call)} rows per call, "
                       f">= {POSTGRES.slow_statement_min_calls} calls"),
            meaning=f"rows returned per call of a SELECT over {SLOW_TIER_WINDOW} (checklist pitfall: unbounded "
                    "queries)",
        ),
        Alert(
            alert="PostgresDuplicateIndexes",
            expr="pg_indexes_duplicate > 0",
            for_=FOR.postgres_duplicate_index,
            severity="info",
            summary=f"{COUNT} duplicate index(es) in {PG_DB}",
            description=(
                f"{COUNT} index(es) in {index} repeat another index of the same table (same columns, "
                "expressions, operator classes and predicate): every write maintains both and only one is "
                "ever used. pg_index_duplicate_size_bytes names them: drop the copy with DROP INDEX "
                "CONCURRENTLY (keep the one backing a constraint)."
            ),
            runbook="postgres", dashboard="postgres", threshold="> 0",
            meaning="indexes that duplicate another index, by database",
        ),
        Alert(
            alert="PostgresInvalidIndexes",
            expr="pg_indexes_invalid > 0",
            for_=FOR.postgres_invalid_index,
            severity="warning",
            summary=f"{COUNT} invalid index(es) in {PG_DB}",
            description=(
                f"{COUNT} index(es) in {index} have been invalid for {FOR.postgres_invalid_index}, usually left "
                "by a CREATE INDEX CONCURRENTLY or REINDEX CONCURRENTLY that failed: the planner ignores them "
                "while every write still maintains them. pg_index_invalid_size_bytes names them: DROP INDEX "
                "CONCURRENTLY and create them again, or REINDEX INDEX CONCURRENTLY."
            ),
            runbook="postgres", dashboard="postgres", threshold=f"> 0 for {FOR.postgres_invalid_index}",
            meaning="indexes with indisvalid = false, by database",
        ),
        Alert(
            alert="PostgresBufferCacheHitRatioLow",
            expr=(f"pg_stat_database_cache_hit_ratio < {num(POSTGRES.buffer_cache_hit_ratio)}"
                  f" and on ({_PG_BY}, datname) ({blocks}) > {num(POSTGRES.min_block_reads_per_second)}"),
            for_=FOR.postgres_buffer_cache_hit_ratio_low,
            severity="warning",
            summary=f"Only {PCT} of block reads of {PG_DB} come from memory",
            description=(
                f"{PCT} of the blocks that database {label('datname')} on {PG} read came from shared buffers "
                f"(target: at least {percent(POSTGRES.buffer_cache_hit_ratio)}, checked above "
                f"{num(POSTGRES.min_block_reads_per_second)} block reads/s): the working set no longer fits in "
                "memory and queries wait on the disk. Look for sequential scans of big tables (missing "
                "indexes), then consider a larger shared_buffers."
            ),
            runbook="postgres", dashboard="postgres",
            threshold=(f"< {percent(POSTGRES.buffer_cache_hit_ratio)} (with > "
                       f"{num(POSTGRES.min_block_reads_per_second)} block reads/s)"),
            meaning="blocks found in shared buffers over blocks read, between the exporter's last two polls",
        ),
        Alert(
            alert="PostgresConnectionChurn",
            expr=(f"{pg_sessions_per_transaction(W)} > {num(POSTGRES.new_sessions_per_transaction)}"
                  f" and {sessions} > {num(POSTGRES.min_new_sessions_per_second)}"),
            for_=FOR.postgres_connection_churn,
            severity="warning",
            summary=f"{PG} opens {TIMES} new sessions per transaction",
            description=(
                f"{PG} starts {TIMES} new sessions per transaction (threshold "
                f"{num(POSTGRES.new_sessions_per_transaction)}, checked above "
                f"{num(POSTGRES.min_new_sessions_per_second)} sessions/s; PostgreSQL 14+): clients connect per "
                "request or per query instead of borrowing from a pool (checklist pitfall: no connection "
                "pooling). Each connection forks a backend and authenticates, costing milliseconds: use the "
                "driver's pool (psycopg_pool, SQLAlchemy, asyncpg) or PgBouncer."
            ),
            runbook="postgres", dashboard="postgres",
            threshold=(f"> {num(POSTGRES.new_sessions_per_transaction)} sessions per transaction "
                       f"(with > {num(POSTGRES.min_new_sessions_per_second)} sessions/s)"),
            meaning=f"new sessions over transactions, {W} rates (pg_stat_database, PostgreSQL 14+)",
        ),
    )


def _postgres_replication() -> tuple[Alert, ...]:
    """Broken replication that the lag alone hides: a standby whose receiver is gone replays what
    it has and reports 0, and the primary's row of it vanishes."""
    streams = f"count by ({_PG_BY}) (pg_stat_replication_replay_lag_bytes)"
    primaries = "(pg_replication_is_replica == 0) * 0"
    slot = f"{label('slot_name')}"
    return (
        Alert(
            alert="PostgresWalReceiverDown",
            expr="pg_stat_wal_receiver_streaming == 0",
            for_=FOR.postgres_wal_receiver_down,
            severity="warning",
            summary=f"Standby {PG} does not receive WAL",
            description=(
                f"The WAL receiver of standby {PG} has not been streaming for {FOR.postgres_wal_receiver_down}: "
                "it replays what it has and then reports a replication lag of 0 while it falls behind. "
                "Its log says why (primary unreachable, authentication, a slot or WAL segment gone)."
            ),
            runbook="postgres", dashboard="postgres", threshold="streaming == 0",
            meaning="a standby's WAL receiver is not streaming (pg_stat_wal_receiver)",
        ),
        Alert(
            alert="PostgresReplicationSlotInactive",
            expr=(f'pg_replication_slot_retained_wal_bytes{{active="false"}}'
                  f" > {num(POSTGRES.inactive_slot_wal_bytes)}"),
            for_=FOR.postgres_replication_slot_inactive,
            severity="warning",
            summary=f"Inactive replication slot {slot} on {PG} retains {value_as('humanize1024')}B of WAL",
            description=(
                f"No client uses replication slot {slot} on {PG}, yet it keeps {value_as('humanize1024')}B of "
                f"WAL (threshold {byte_size(POSTGRES.inactive_slot_wal_bytes)}), and keeps more with every write "
                "until the disk is full. Reconnect its standby or consumer, or drop the slot with "
                "pg_drop_replication_slot()."
            ),
            runbook="postgres", dashboard="postgres", threshold=f"> {byte_size(POSTGRES.inactive_slot_wal_bytes)}",
            meaning="WAL retained by a replication slot no client is using",
        ),
        Alert(
            alert="PostgresReplicasMissing",
            expr=(
                f"({streams} or on ({_PG_BY}) {primaries}) < {POSTGRES.expected_replicas}"
                f" and on ({_PG_BY}) max_over_time(({streams})[{PRESENCE_WINDOW}:1m]) > 0"
            ),
            for_=FOR.postgres_replicas_missing,
            severity="warning",
            summary=f"Primary {PG} streams to {COUNT} standby(s)",
            description=(
                f"Primary {PG} streams WAL to {COUNT} standby(s), fewer than the {POSTGRES.expected_replicas} "
                f"expected, and it had one within the last {PRESENCE_WINDOW}: a standby disconnected (its "
                "pg_stat_replication row is gone) and is falling behind or down. Check the standby and its "
                f"PostgresWalReceiverDown alert. Resolves after {PRESENCE_WINDOW} without any standby."
            ),
            runbook="postgres", dashboard="postgres", threshold=f"< {POSTGRES.expected_replicas} standby(s)",
            meaning="standbys streaming from a primary that had some recently, against the expected count",
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
            expr=(f"{REDIS_HIT_RATIO} < {num(REDIS.hit_ratio)}"
                  f" and {REDIS_LOOKUPS} > {num(REDIS.min_lookups_per_second)}"),
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
            expr=f"redis_memory_used_bytes / (redis_memory_max_bytes > 0) > {num(REDIS.memory_saturation)}"
                 f" unless on ({_PG_BY}) {CACHE_POLICY}",
            for_=FOR.redis_memory_near_limit,
            severity="warning",
            summary=f"{REDIS_SRV} uses {PCT} of maxmemory",
            description=(
                f"{REDIS_SRV} uses {PCT} of its maxmemory (threshold {percent(REDIS.memory_saturation)}). "
                f"Its maxmemory-policy is not one of {', '.join(REDIS.cache_policies)}, so at the limit it "
                "refuses writes (noeviction) or evicts only keys with a TTL (volatile-*): raise maxmemory or "
                "find the keys that grow (keys without TTL, big values)."
            ),
            runbook="redis", dashboard="redis", threshold=f"> {percent(REDIS.memory_saturation)}",
            meaning="used memory over maxmemory (when maxmemory is set), unless the policy evicts any key "
                    "(an LRU/LFU cache at capacity is healthy)",
        ),
        Alert(
            alert="RedisEvictingKeys",
            expr=(f"rate(redis_evicted_keys_total[{W}]) > {num(REDIS.evictions_per_second)}"
                  f" unless on ({_PG_BY}) {CACHE_POLICY}"),
            for_=FOR.redis_evicting_keys,
            severity="warning",
            summary=f"{REDIS_SRV} evicts keys",
            description=(
                f"{REDIS_SRV} has been evicting keys for {FOR.redis_evicting_keys} ({value_as('humanize')} keys/s "
                f"now) to stay under maxmemory under a volatile-* policy: keys with a TTL, which the application "
                "expects to keep until they expire, are dropped while keys without one stay: raise maxmemory, "
                "give every key a TTL, or switch a pure cache to allkeys-lru."
            ),
            runbook="redis", dashboard="redis", threshold=f"> {num(REDIS.evictions_per_second)} keys/s",
            meaning=f"keys evicted per second, {W} rate, unless the policy is an allkeys-* cache policy",
        ),
        Alert(
            alert="RedisRejectedConnections",
            expr=f"{_settled_increase('redis_rejected_connections_total', EW)} > {num(REDIS.rejected_connections)}",
            for_=FOR.redis_rejected_connections,
            severity="warning",
            summary=f"{REDIS_SRV} rejects connections",
            description=(
                f"{REDIS_SRV} rejected about {COUNT} connection(s) in the last {EW} because maxclients was "
                "reached: those clients got errors. Look for connection leaks or pools without a maximum "
                f"before raising maxclients. (Counted once the series is {EW} old, so a restarted exporter "
                "does not report the server's past rejections.)"
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
        *_redis_health(),
        *_redis_practices(),
    )


def _redis_health() -> tuple[Alert, ...]:
    return (
        Alert(
            alert="RedisMetricsAbsent",
            expr=_target_absent("redis"),
            for_=FOR.redis_metrics_absent,
            severity="warning",
            summary=f"No Redis metrics for {label('server')} arrive from exporter {label('instance')}",
            description=(
                f"The exporter {label('instance')} of job {label('job')} served Redis target {label('server')} "
                f"within the last {PRESENCE_WINDOW} but has served no redis_up for it for "
                f"{FOR.redis_metrics_absent}, though it is scraped fine: its configuration lost the target or a "
                f"relabelling drops the series. Redis could be down without any alert. A target removed on "
                f"purpose resolves after {PRESENCE_WINDOW}."
            ),
            runbook="redis", dashboard="redis", threshold=f"redis_up gone (target served in {PRESENCE_WINDOW})",
            meaning="an exporter instance no longer serves a Redis target it was configured with",
        ),
        Alert(
            alert="RedisMasterLinkDown",
            expr="redis_master_link_up == 0",
            for_=FOR.redis_master_link_down,
            severity="warning",
            summary=f"Replica {REDIS_SRV} has lost its primary {label('master_host')}:{label('master_port')}",
            description=(
                f"The replica {REDIS_SRV} has had no link to its primary {label('master_host')}:"
                f"{label('master_port')} for {FOR.redis_master_link_down}: it serves data that grows staler and "
                "cannot take over cleanly. redis_master_link_down_since_seconds says since when; check the "
                "primary, the network and the replica's log (a full resync that keeps failing)."
            ),
            runbook="redis", dashboard="redis", threshold="master_link_up == 0",
            meaning="a replica's replication link to its primary is down",
        ),
        Alert(
            alert="RedisPersistenceFailing",
            expr=(
                'label_replace(redis_rdb_last_bgsave_status == 0, "persistence", "rdb", "", "")'
                ' or label_replace(redis_aof_last_write_status == 0, "persistence", "aof", "", "")'
            ),
            for_=FOR.redis_persistence_failing,
            severity="critical",
            summary=f"{REDIS_SRV} fails to write its {label('persistence')} file",
            description=(
                f"The last {label('persistence')} write of {REDIS_SRV} failed and has not succeeded for "
                f"{FOR.redis_persistence_failing}. A restart loses what was written since the last good save, and "
                "with stop-writes-on-bgsave-error (the default) Redis refuses every write: the log says why "
                "(disk full, permissions, fork failing for lack of memory)."
            ),
            runbook="redis", dashboard="redis", threshold="last status != ok",
            meaning="the last RDB snapshot or AOF write failed",
        ),
    )


def _redis_practices() -> tuple[Alert, ...]:
    """Checklist practices seen from Redis: keys expire, clients pool, no command blocks the rest."""
    estimated = "sum by (job, instance, server) (redis_ttl_keys_without_ttl_estimated)"
    keys = "sum by (job, instance, server) (redis_db_keys)"
    received = f"rate(redis_connections_received_total[{W}])"
    dangerous = f'redis_commands_total{{cmd=~"{"|".join(REDIS.dangerous_commands)}"}}'
    return (
        Alert(
            alert="RedisKeysWithoutTtl",
            expr=(f"{estimated} / ({keys} > 0) > {num(REDIS.keys_without_ttl_ratio)}"
                  " and on (job, instance, server) redis_ttl_keys_sampled > 0"),
            for_=FOR.redis_keys_without_ttl,
            severity="warning",
            summary=f"{PCT} of the keys of {REDIS_SRV} never expire",
            description=(
                f"The exporter's TTL sample estimates that {PCT} of the keys of {REDIS_SRV} have no TTL "
                f"(threshold {percent(REDIS.keys_without_ttl_ratio)}): a cache that keeps them grows until "
                "maxmemory and then evicts or refuses writes. redis_ttl_keys_without_ttl_estimated names the "
                "prefixes: set a TTL on every cache write (SET key value EX seconds)."
            ),
            runbook="redis", dashboard="redis", threshold=f"> {percent(REDIS.keys_without_ttl_ratio)}",
            meaning="estimated keys without TTL over all keys (the exporter's TTL sampler)",
        ),
        Alert(
            alert="RedisConnectionChurn",
            expr=(f"{received} / (rate(redis_commands_processed_total[{W}]) > 0)"
                  f" > {num(REDIS.connections_per_command)}"
                  f" and {received} > {num(REDIS.min_connections_per_second)}"),
            for_=FOR.redis_connection_churn,
            severity="warning",
            summary=f"{REDIS_SRV} accepts {TIMES} new connections per command",
            description=(
                f"{REDIS_SRV} accepts {TIMES} new connections per command processed (threshold "
                f"{num(REDIS.connections_per_command)}, checked above {num(REDIS.min_connections_per_second)} "
                "connections/s): clients connect per request instead of reusing a pool (checklist pitfall: "
                "no connection pooling). Create one redis.Redis (or ConnectionPool) per process and share it."
            ),
            runbook="redis", dashboard="redis",
            threshold=(f"> {num(REDIS.connections_per_command)} connections per command "
                       f"(with > {num(REDIS.min_connections_per_second)} connections/s)"),
            meaning=f"connections received over commands processed, {W} rates",
        ),
        Alert(
            alert="RedisDangerousCommands",
            expr=f"sum by (job, instance, server, cmd) {_settled_increase(dangerous, EW)} > 0",
            for_=FOR.redis_dangerous_commands,
            severity="warning",
            summary=f"{REDIS_SRV} ran {label('cmd')} {COUNT} time(s)",
            description=(
                f"{REDIS_SRV} executed {label('cmd')} about {COUNT} time(s) in the last {EW}. Redis runs one "
                "command at a time: KEYS walks the whole keyspace while every client waits, FLUSHALL/FLUSHDB "
                "drop the cache at once (a stampede on the database), SAVE snapshots in the main thread. "
                "Invalidate by pattern with SCAN (stackwatch's Cache.invalidate_pattern), rename or ACL-deny "
                f"these commands for the application's user. (Counted once the series is {EW} old.)"
            ),
            runbook="redis", dashboard="redis", threshold=f"> 0 calls in {EW}",
            meaning=f"calls of {', '.join(c.upper() for c in REDIS.dangerous_commands)} in the last {EW}",
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
            # one route is a lead for the day: paging is the service-wide budget burn's (HttpErrorBudgetBurn)
            severity="warning",
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
            meaning=(f"N+1 detections (a statement repeated {HTTP.n_plus_one_repeat_count}+ times in one request) "
                     f"in {EW}"),
        ),
        Alert(
            alert="EventLoopBlocked",
            expr=(f"sum by (job, http_route) (rate(http_server_event_loop_blocked_seconds_total[{W}]))"
                  f" > {num(HTTP.event_loop_blocked_ratio)}"),
            for_=FOR.event_loop_blocked,
            severity="warning",
            summary=f"{route} blocks the event loop {PCT} of the time",
            description=(
                f"Requests to route {label('http_route')} of {label('job')} held the event loop for {PCT} of the "
                f"last {W} (threshold {percent(HTTP.event_loop_blocked_ratio)}; a stall counts from "
                f"{duration(HTTP.event_loop_block_seconds)}): synchronous work in an async endpoint (a blocking "
                "client, time.sleep, heavy computation), during which every other request of the process waits "
                "(checklist pitfall: synchronous processing). Await an async client, move the call to a thread "
                "(run_in_threadpool, or a plain def endpoint) or to a background job."
            ),
            runbook="service", dashboard="service",
            threshold=f"> {percent(HTTP.event_loop_blocked_ratio)} of the time",
            meaning=(f"share of time the event loop was blocked (stalls of {duration(HTTP.event_loop_block_seconds)}+) "
                     f"by requests of the route, {W} rate"),
        ),
        Alert(
            alert="HttpResponsesUncompressed",
            expr=(f"{compressed_share('job', W)} < {num(HTTP.compressed_ratio)}"
                  f" and sum by (job) (rate({CONTENT_ENCODING_FAMILY}[{W}]))"
                  f" > {num(HTTP.min_compressible_per_second)}"),
            for_=FOR.http_responses_uncompressed,
            severity="warning",
            summary=f"{label('job')} compresses only {PCT} of the responses worth compressing",
            description=(
                f"Of the responses of {label('job')} where compression matters (a text type: JSON, HTML, CSS, "
                f"JavaScript...; sent encoded, or of {HTTP.compression_min_bytes} bytes and more to a client accepting "
                f"compression), only {PCT} went "
                f"out with a Content-Encoding over the last {W} (target: at least {percent(HTTP.compressed_ratio)}, "
                f"checked above {num(HTTP.min_compressible_per_second)} such responses/s): large text crosses the "
                "network uncompressed (checklist: response compression enabled). Enable gzip "
                f"(Starlette/FastAPI: app.add_middleware(GZipMiddleware, minimum_size={HTTP.compression_min_bytes}))"
                " or find the routes the Service dashboard shows bypassing it."
            ),
            runbook="service", dashboard="service",
            threshold=(f"< {percent(HTTP.compressed_ratio)} encoded (with > "
                       f"{num(HTTP.min_compressible_per_second)} compressible responses/s)"),
            meaning=f"responses sent encoded over the responses where compression matters, by service, {W} rate",
        ),
        *_health_checks(),
        Alert(
            alert="DbPoolRequestsWaiting",
            expr=f"avg_over_time(db_client_connection_pending_requests[{W}]) > {num(POOL.pending_requests)}",
            for_=FOR.pool_requests_waiting,
            severity="warning",
            summary=f"Requests wait for a connection from pool {label('pool_name')} of {label('job')}",
            description=(
                f"On average {value_as('humanize')} request(s) of {label('job')} on {label('instance')} waited for "
                f"a connection from pool {label('pool_name')} over the last {W}, and requests have kept waiting "
                f"for {FOR.pool_requests_waiting}: the pool is exhausted much of the time. Look for slow queries or "
                "connections held across slow work first; size pools as "
                "(cores x 2) + spindles and keep their total under max_connections."
            ),
            runbook="service", dashboard="service", threshold=f"> {num(POOL.pending_requests)} mean over {W}",
            meaning=f"requests queued for a connection from the client pool, averaged over {W}",
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
            expr=(f"{CACHE_HIT_RATIO} < {num(CACHE.hit_ratio)}"
                  f" and {CACHE_REQUESTS} > {num(CACHE.min_requests_per_second)}"),
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
        *_load_balancing(),
    )


def _load_balancing() -> tuple[Alert, ...]:
    """The load balancer seen from the instances it feeds: each one's share of the service's
    requests against its fair share (1 / instances up), while the service has traffic."""
    fair = f"{SHARE_BY_INSTANCE} * on (job) group_left {instances_up()}"
    busy = f"on (job) {REQUESTS_BY_JOB} > {num(HTTP.min_requests_per_second)}"
    instance = f"{label('instance')} of {label('job')}"
    return (
        Alert(
            alert="HttpTrafficImbalanced",
            expr=(f"{fair} > {num(HTTP.instance_share_high)} and on (job) {instances_up()} >= 2 and {busy}"
                  f" unless on (job) ({fair} < {num(HTTP.instance_share_low)})"),
            for_=FOR.http_traffic_imbalanced,
            severity="warning",
            summary=f"{instance} takes {TIMES}x its fair share of the requests",
            description=(
                f"{label('instance')} served {TIMES} times its fair share (1 / instances "
                f"up) of the requests to {label('job')} over the last {W} (threshold "
                f"{num(HTTP.instance_share_high)}x): the load balancer is not spreading the load. Look for "
                "session affinity (ip_hash, sticky cookies), a client holding one keep-alive connection, "
                "weights, or the other instances failing their readiness check."
            ),
            runbook="service", dashboard="service",
            threshold=f"> {num(HTTP.instance_share_high)}x the fair share (with >= 2 instances up)",
            meaning="an instance's share of its service's requests over 1 / instances up",
        ),
        Alert(
            alert="HttpInstanceOutOfRotation",
            expr=(
                f"(up{{{SERVICES}}} == 0 or {fair} < {num(HTTP.instance_share_low)})"
                f" and {busy} unless on (job) (max by (job) (up{{{SERVICES}}}) == 0)"
            ),
            for_=FOR.http_instance_out_of_rotation,
            severity="warning",
            summary=f"{instance} is out of rotation",
            description=(
                f"{label('instance')} is down, or got less than {num(HTTP.instance_share_low)}x its fair share of "
                f"the requests to {label('job')} over the last {W}, while the other instances serve: the load "
                "balancer has taken it out of rotation (failed health checks, marked down, missing from the "
                "upstream) and the service runs on less capacity than deployed. Its /health/ready body says "
                "which dependency fails; the load balancer's log says why it stopped sending."
            ),
            runbook="service", dashboard="service",
            threshold=f"down, or < {num(HTTP.instance_share_low)}x the fair share while the service has traffic",
            meaning="an instance of a service with traffic is down or receives (almost) none of it",
        ),
    )


def _health_checks() -> tuple[Alert, ...]:
    """Page when a service has no healthy instance left for a check; one failing instance is the
    load balancer's business and a warning. (Alertmanager holds the page back while the dependency's
    own alert, RedisDown or PostgresDown, fires: one cause, one page.)"""
    every_instance = "max by (job, check) (health_check_status) == 0"
    check = f"{label('check')} of {label('job')}"
    return (
        Alert(
            alert="HealthCheckFailing",
            expr=every_instance,
            for_=FOR.health_check_failing,
            severity="critical",
            summary=f"Health check {check} fails on every instance",
            description=(
                f"Every instance of {label('job')} has reported its {label('check')} check failing on /health for "
                f"{FOR.health_check_failing}: load balancers have no instance left to send traffic to. The "
                "/health response body says which dependency is failing."
            ),
            runbook="service", dashboard="service", threshold="status == 0 on every instance",
            meaning="a dependency check of the service's /health fails on all its instances",
        ),
        Alert(
            alert="HealthCheckFailing",
            expr=f"health_check_status == 0 unless on (job, check) ({every_instance})",
            for_=FOR.health_check_failing_instance,
            severity="warning",
            summary=f"Health check {check} fails on {label('instance')}",
            description=(
                f"The {label('check')} check of {label('job')} on {label('instance')} has reported failure on "
                f"/health for {FOR.health_check_failing_instance} while other instances pass: load balancers "
                "take this one out of rotation. Its /health response body says which dependency is failing."
            ),
            runbook="service", dashboard="service", threshold="status == 0 on some instances",
            meaning="a dependency check of the service's /health fails on some of its instances",
        ),
        Alert(
            alert="HealthCheckNotRunning",
            expr=f"time() - health_check_last_run_timestamp_seconds > {num(HTTP.health_check_max_age_seconds)}",
            for_=FOR.health_check_not_running,
            severity="warning",
            summary=f"Health check {check} has not run for {SECS}",
            description=(
                f"The {label('check')} check of {label('job')} on {label('instance')} last finished {SECS} ago "
                f"(threshold {duration(HTTP.health_check_max_age_seconds)}), yet the instance is scraped: its "
                "health_check_status is frozen and HealthCheckFailing cannot see a failure. The instrumentation's "
                "timer (STACKWATCH_HEALTH_INTERVAL) is off or stuck, or the event loop is blocked."
            ),
            runbook="service", dashboard="service",
            threshold=f"last run > {duration(HTTP.health_check_max_age_seconds)} ago",
            meaning="age of the last evaluation of a /health check (timer or request)",
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
                "process_cgroup_memory_working_set_bytes / process_cgroup_memory_max_bytes"
                f" > {num(PROCESS.memory_limit_ratio)}"
            ),
            for_=FOR.process_memory_near_limit,
            severity="warning",
            summary=f"{cgroup} uses {PCT} of its memory limit",
            description=(
                f"The working set of {cgroup} on {label('server')} is {PCT} of its memory limit (threshold "
                f"{percent(PROCESS.memory_limit_ratio)}; page cache the kernel can reclaim is left out). At the "
                "limit the OOM killer ends one of its processes: raise the limit or find the growth."
            ),
            runbook="processes", dashboard="processes", threshold=f"> {percent(PROCESS.memory_limit_ratio)}",
            meaning="cgroup working set (usage minus inactive page cache) over memory.max",
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
        Alert(
            alert="ProcessCpuThrottled",
            expr=f"rate(process_cgroup_cpu_throttled_seconds_total[{W}]) > {num(PROCESS.cpu_throttled_ratio)}",
            for_=FOR.process_cpu_throttled,
            severity="warning",
            summary=f"{cgroup} is throttled {PCT} of the time",
            description=(
                f"The kernel has throttled the processes of {cgroup} on {label('server')} for {PCT} of the "
                f"time over the last {W} (threshold {percent(PROCESS.cpu_throttled_ratio)}; throttled seconds per "
                f"second, summed over CPUs), for {FOR.process_cpu_throttled}. Bursts wait for the next CFS "
                "period even when average usage looks fine: raise the CPU limit, or lower the processes' "
                "parallelism to fit it."
            ),
            runbook="processes", dashboard="processes",
            threshold=f"> {percent(PROCESS.cpu_throttled_ratio)} of the time",
            meaning=f"time the cgroup was throttled by its CPU quota per second, {W} rate",
        ),
        Alert(
            alert="ProcessOomKilled",
            expr=f"{_settled_increase('process_cgroup_oom_kills_total', EW)} > 0",
            for_=FOR.process_oom_killed,
            severity="warning",
            summary=f"The OOM killer ended {COUNT} process(es) of {cgroup}",
            description=(
                f"The kernel killed {COUNT} process(es) of {cgroup} on {label('server')} in the last {EW} because "
                "the cgroup reached its memory limit. A killed PostgreSQL backend makes the server restart "
                "every connection: raise the limit or find what grew (see the working set on the dashboard)."
            ),
            runbook="processes", dashboard="processes", threshold=f"> 0 in {EW}",
            meaning=f"OOM kills in the cgroup (memory.events oom_kill) in the last {EW}",
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


def _availability() -> tuple[Alert, ...]:
    """Scrape targets and services that stop answering: their own metrics go stale with them, so
    every other alert about them is blind."""
    service_down = f"max by (job) (up{{{SERVICES}}}) == 0"
    hour_before = f"avg_over_time({REQUESTS_BY_JOB}[1h] offset {FOR.http_traffic_drop})"
    return (
        Alert(
            alert="ServiceDown",
            expr=service_down,
            for_=FOR.service_down,
            severity="critical",
            summary=f"Every instance of {label('job')} is down",
            description=(
                f"Prometheus has failed to scrape every target of job {label('job')} for {FOR.service_down}. "
                "Its requests, errors and health checks are no longer measured, so HttpErrorRatioHigh and "
                "HealthCheckFailing cannot fire: the service is probably down for its users. Prometheus → "
                "Status → Targets shows the scrape error."
            ),
            runbook="service", dashboard="service", threshold="max(up) == 0 per job",
            meaning="no target of an instrumented service's job can be scraped",
        ),
        Alert(
            alert="TargetDown",
            expr=f"up == 0 unless on (job) up{{{EXPORTER}}} unless on (job) ({service_down})",
            for_=FOR.target_down,
            severity="warning",
            summary=f"Target {label('instance')} of {label('job')} is down",
            description=(
                f"Prometheus has failed to scrape {label('instance')} of job {label('job')} for "
                f"{FOR.target_down}; its metrics and the alerts built on them are missing. (When every target "
                "of an instrumented service is down ServiceDown fires instead, and the exporter has "
                "StackwatchExporterDown.)"
            ),
            runbook="stackwatch", dashboard="checklist", threshold="up == 0",
            meaning="one scrape target is down (not the exporter's, nor a whole service)",
        ),
        Alert(
            alert="HttpTrafficAbsent",
            expr=(
                f"max_over_time({REQUESTS_BY_JOB}[{PRESENCE_WINDOW}]) > {num(HTTP.min_requests_per_second)}"
                f" unless {REQUESTS_BY_JOB} > 0"
                f" unless on (job) ({service_down})"
            ),
            for_=FOR.http_traffic_absent,
            severity="warning",
            summary=f"{label('job')} receives no requests",
            description=(
                f"{label('job')} served more than {num(HTTP.min_requests_per_second)} req/s within the last "
                f"{PRESENCE_WINDOW} and none for {FOR.http_traffic_absent} (or its request metrics vanished), "
                "though its targets are not all down: traffic no longer reaches it (load balancer, DNS, "
                f"ingress) or its instances left service discovery. Resolves after {PRESENCE_WINDOW} without "
                "traffic."
            ),
            runbook="service", dashboard="service",
            threshold=f"0 req/s after > {num(HTTP.min_requests_per_second)} req/s in {PRESENCE_WINDOW}",
            meaning="a service that had traffic receives none",
        ),
        Alert(
            alert="HttpTrafficDrop",
            expr=(
                f"{REQUESTS_BY_JOB} < {num(HTTP.traffic_drop_ratio)} * {hour_before}"
                f" and {REQUESTS_BY_JOB} > 0"
                f" and {hour_before} > {num(HTTP.min_requests_per_second)}"
            ),
            for_=FOR.http_traffic_drop,
            severity="warning",
            summary=f"{label('job')} receives {value_as('humanize')} req/s, under half its usual traffic",
            description=(
                f"{label('job')} has served {value_as('humanize')} req/s for {FOR.http_traffic_drop}, under "
                f"{percent(HTTP.traffic_drop_ratio)} of its average over the hour before: part of the traffic "
                "no longer arrives (a client release failing before its requests, an upstream or region lost, "
                "a load balancer sending elsewhere). HttpTrafficAbsent covers traffic that stopped entirely."
            ),
            runbook="service", dashboard="service",
            threshold=(f"< {percent(HTTP.traffic_drop_ratio)} of the previous hour's average (with > "
                       f"{num(HTTP.min_requests_per_second)} req/s then)"),
            meaning="request rate against its own average over the previous hour",
        ),
    )


def _otel_collector() -> tuple[Alert, ...]:
    """The trace pipeline: spans the OpenTelemetry collector loses (exemplar links then lead nowhere)."""

    def lost(reason: str, family: str) -> str:
        # the collector names counters with `_total` since its telemetry moved to the OTel SDK
        rate = f"rate({family}_total[{W}]) or rate({family}[{W}])"
        return f'label_replace({rate}, "reason", "{reason}", "", "")'

    losses = " or ".join((
        lost("refused", "otelcol_receiver_refused_spans"),
        lost("send_failed", "otelcol_exporter_send_failed_spans"),
        lost("enqueue_failed", "otelcol_exporter_enqueue_failed_spans"),
    ))
    return (
        Alert(
            alert="OtelCollectorDroppingSpans",
            expr=f"sum by (job, instance, reason) ({losses}) > 0",
            for_=FOR.otel_collector_dropping_spans,
            severity="warning",
            summary=f"The OpenTelemetry collector {label('instance')} loses spans ({label('reason')})",
            description=(
                f"The collector {label('instance')} has lost {value_as('humanize')} span(s)/s for "
                f"{FOR.otel_collector_dropping_spans} ({label('reason')}: refused = the receiver turned them away, "
                "usually the memory_limiter; send_failed = the backend rejected them after retries; "
                "enqueue_failed = the sending queue was full). Traces have gaps and exemplar links lead to "
                "missing traces. Its log names the exporter and the error."
            ),
            runbook="stackwatch", dashboard="checklist", threshold="> 0 spans/s lost",
            meaning=f"spans refused by receivers or failed/dropped by exporters, by reason, {W} rate",
        ),
    )


def _pipeline() -> tuple[Alert, ...]:
    """The alerting pipeline watching itself (the Watchdog proves it end to end)."""
    prom, am = SELECTORS.prometheus, SELECTORS.alertmanager
    ratio = num(ALERTING.notification_error_ratio)
    return (
        Alert(
            alert="PrometheusRuleFailures",
            expr=f"increase(prometheus_rule_evaluation_failures_total{{{prom}}}[{W}]) > 0",
            for_=FOR.prometheus_rule_failures,
            severity="critical",
            summary=f"Prometheus {label('instance')} fails to evaluate rules of {label('rule_group')}",
            description=(
                f"Prometheus {label('instance')} failed {value_as('humanize')} rule evaluation(s) of group "
                f"{label('rule_group')} in the last {W}, for {FOR.prometheus_rule_failures}: the alerts of that "
                "group cannot fire. Status → Rules shows each rule's last error (a query timeout, "
                "\"many-to-many matching\", a label set that became duplicate)."
            ),
            runbook="stackwatch", dashboard="checklist", threshold="> 0",
            meaning=f"rule evaluation failures, {W} increase",
        ),
        Alert(
            alert="PrometheusNotConnectedToAlertmanagers",
            expr=f"max_over_time(prometheus_notifications_alertmanagers_discovered{{{prom}}}[{W}]) < 1",
            for_=FOR.prometheus_alertmanager_missing,
            severity="critical",
            summary=f"Prometheus {label('instance')} has no Alertmanager to send alerts to",
            description=(
                f"Prometheus {label('instance')} has discovered no Alertmanager for "
                f"{FOR.prometheus_alertmanager_missing}: every alert it evaluates goes nowhere (this one can only "
                "be seen in its own UI or through the Watchdog's dead man's switch). Check the `alerting` "
                "section of prometheus.yml."
            ),
            runbook="stackwatch", dashboard="checklist", threshold="< 1 Alertmanager",
            meaning="Alertmanagers Prometheus has discovered",
        ),
        Alert(
            alert="PrometheusErrorSendingAlertsToAnyAlertmanager",
            expr=(
                f"min without (alertmanager) (rate(prometheus_notifications_errors_total{{{prom}}}[{W}])"
                f" / rate(prometheus_notifications_sent_total{{{prom}}}[{W}])) > {ratio}"
            ),
            for_=FOR.prometheus_notifications_failing,
            severity="critical",
            summary=f"Prometheus {label('instance')} fails to send {PCT} of its alerts",
            description=(
                f"{PCT} of the alerts Prometheus {label('instance')} sent to every Alertmanager failed over the "
                f"last {W} (threshold {percent(ALERTING.notification_error_ratio)}): alerts are lost before "
                "routing. Its log names the Alertmanager and the error."
            ),
            runbook="stackwatch", dashboard="checklist",
            threshold=f"> {percent(ALERTING.notification_error_ratio)} to every Alertmanager",
            meaning=f"failed over sent alert notifications, the best Alertmanager, {W} rate",
        ),
        Alert(
            alert="AlertmanagerFailedToSendAlerts",
            expr=(
                # newer Alertmanagers add a `reason` label to the failures only
                f"sum without (reason) (rate(alertmanager_notifications_failed_total{{{am}}}[{W}]))"
                f" / rate(alertmanager_notifications_total{{{am}}}[{W}]) > {ratio}"
            ),
            for_=FOR.alertmanager_notifications_failing,
            severity="warning",
            summary=f"Alertmanager {label('instance')} fails to deliver {PCT} of its {label('integration')} "
                    "notifications",
            description=(
                f"{PCT} of the {label('integration')} notifications of Alertmanager {label('instance')} failed "
                f"over the last {W} (threshold {percent(ALERTING.notification_error_ratio)}): nobody receives "
                "those pages. Its log names the receiver and the error (a placeholder webhook URL, a revoked "
                "token, an unreachable endpoint)."
            ),
            runbook="stackwatch", dashboard="checklist",
            threshold=f"> {percent(ALERTING.notification_error_ratio)}",
            meaning=f"failed over attempted notifications, by integration, {W} rate",
        ),
    )


def _host() -> tuple[Alert, ...]:
    """The host under the databases (node_exporter): a full disk stops PostgreSQL and Redis
    whatever their own metrics say."""
    fs = DATA_FILESYSTEMS
    avail = filesystem_avail_ratio()
    writable = f"node_filesystem_readonly{{{fs}}} == 0"
    where = f"{label('mountpoint')} ({label('device')}) on {label('instance')}"
    hours = HOST.filesystem_filling_hours
    return (
        Alert(
            alert="NodeFilesystemSpaceFillingUp",
            expr=(
                f"{avail} < {num(HOST.filesystem_filling_avail_ratio)}"
                f" and predict_linear(node_filesystem_avail_bytes{{{fs}}}[{PREDICTION_WINDOW}], {num(hours * 3600)})"
                f" < 0 and {writable}"
            ),
            for_=FOR.node_filesystem_space_filling_up,
            severity="warning",
            summary=f"Filesystem {where} will be full within {duration(hours * 3600)}",
            description=(
                f"Only {PCT} of filesystem {where} is left, and at the pace of the last {PREDICTION_WINDOW} "
                f"it fills within {duration(hours * 3600)} (trend held for {FOR.node_filesystem_space_filling_up}). "
                "When it is full PostgreSQL stops for lack of WAL space and Redis fails its RDB/AOF writes: "
                "find what grows (WAL kept by a slot, logs, a table or temporary files) before it does."
            ),
            runbook="host", dashboard="host",
            threshold=(f"< {percent(HOST.filesystem_filling_avail_ratio)} left and full within "
                       f"{duration(hours * 3600)} ({PREDICTION_WINDOW} trend)"),
            meaning="a writable filesystem's free space trends to zero (predict_linear)",
        ),
        Alert(
            alert="NodeFilesystemAlmostOutOfSpace",
            expr=f"{avail} < {num(HOST.filesystem_avail_ratio)} and {writable}",
            for_=FOR.node_filesystem_almost_out_of_space,
            severity="critical",
            summary=f"Filesystem {where} has only {PCT} left",
            description=(
                f"Only {PCT} of filesystem {where} is left (threshold {percent(HOST.filesystem_avail_ratio)}) for "
                f"{FOR.node_filesystem_almost_out_of_space}. Writes fail when it is full: PostgreSQL stops for "
                "lack of WAL space, Redis fails its persistence. Free space now (old logs, WAL held by an "
                "inactive replication slot, core dumps) or grow the volume."
            ),
            runbook="host", dashboard="host", threshold=f"< {percent(HOST.filesystem_avail_ratio)} left",
            meaning="free space of a writable filesystem (node_exporter)",
        ),
        Alert(
            alert="NodeMemoryHighUtilization",
            expr=f"{memory_used_ratio()} > {num(HOST.memory_used_ratio)}",
            for_=FOR.node_memory_high_utilization,
            severity="warning",
            summary=f"Host {label('instance')} uses {PCT} of its memory",
            description=(
                f"{PCT} of the memory of {label('instance')} is in use, page cache the kernel can reclaim "
                f"left out (threshold {percent(HOST.memory_used_ratio)}), for {FOR.node_memory_high_utilization}. "
                "The cache that keeps PostgreSQL's reads in memory is being squeezed out, and the OOM killer is "
                "next: find the process that grew (the Processes dashboard) or add memory."
            ),
            runbook="host", dashboard="host", threshold=f"> {percent(HOST.memory_used_ratio)}",
            meaning="memory in use over the host's total, MemAvailable counted as free",
        ),
    )


@dataclass(frozen=True)
class _BurnRate:
    """One row of the SRE workbook's multi-window table: a burn this fast over ``long`` (and still
    over ``short``) spends ``budget_share`` of the error budget within ``long``."""

    long: str
    short: str
    factor: float


#: page: 2% of a 30-day budget in 1h, or 5% in 6h; ticket: 10% in 1d, or 10% in 3d
_BURN_RATES: dict[Severity, tuple[_BurnRate, ...]] = {
    "critical": (_BurnRate("1h", "5m", 14.4), _BurnRate("6h", "30m", 6.0)),
    "warning": (_BurnRate("1d", "2h", 3.0), _BurnRate("3d", "6h", 1.0)),
}
_SLO_WINDOWS: tuple[str, ...] = tuple(dict.fromkeys(
    w for rows in _BURN_RATES.values() for row in rows for w in (row.short, row.long)))


def _slo_requests(window: str) -> str:
    return f"job:slo_http_requests:rate{window}"


def _slo_errors(window: str) -> str:
    return f"job:slo_http_request_errors:ratio_rate{window}"


def _slo_slow(window: str) -> str:
    return f"job:slo_http_requests_slow:ratio_rate{window}"


def _slo_jobs(index: int) -> str:
    """Matchers of the jobs SLOS[index] governs: the first entry whose ``jobs`` matches wins."""
    earlier = "|".join(slo.jobs for slo in SLOS[:index])
    return f'job=~"{SLOS[index].jobs}"' + (f', job!~"{earlier}"' if earlier else "")


def _slo_selector(index: int) -> str:
    """Matchers of the requests SLOS[index] counts (its jobs, without its excluded routes)."""
    excluded = SLOS[index].excluded_routes
    return _slo_jobs(index) + (f', http_route!~"{excluded}"' if excluded else "")


def slo_problems(slos: tuple[ServiceSlo, ...], boundaries: tuple[float, ...]) -> list[str]:
    """Why ``slos`` cannot be turned into rules (empty when they can): latency targets must be
    histogram bucket boundaries, objectives strictly between 0 and 1."""
    problems = []
    for slo in slos:
        if float(slo.latency_seconds) not in {float(b) for b in boundaries}:
            problems.append(f"SLO for jobs {slo.jobs!r}: latency_seconds={slo.latency_seconds:g} is not a bucket "
                            f"boundary of http_server_request_duration_seconds "
                            f"({', '.join(f'{b:g}' for b in boundaries)})")
        for name in ("availability", "latency_target"):
            if not 0 < getattr(slo, name) < 1:
                problems.append(f"SLO for jobs {slo.jobs!r}: {name}={getattr(slo, name)!r} must be between 0 and 1")
    return problems


def _slo_recording() -> tuple[Record, ...]:
    """Per-service request rates, error ratios and slow ratios over every burn-rate window, each
    service counted by the SLO that governs it (see ``_slo_jobs``)."""
    family = "http_server_request_duration_seconds"
    entries = range(len(SLOS))
    rules: list[Record] = []
    for w in _SLO_WINDOWS:
        requests, errors, slow = _slo_requests(w), _slo_errors(w), _slo_slow(w)
        rules.append(Record(requests, " or ".join(
            f"sum by (job) (rate({family}_count{{{_slo_selector(i)}}}[{w}]))" for i in entries),
            meaning=f"requests per second by service, its SLO's excluded routes left out, {w} rate"))
        failed = " or ".join(
            f'sum by (job) (rate({family}_count{{{_slo_selector(i)}, http_response_status_code=~"5.."}}[{w}]))'
            for i in entries)
        rules.append(Record(errors, f"({failed}) / {requests} or {requests} * 0",
                            meaning=f"share of a service's SLO requests answered 5xx (0 when none), {w} rate"))
        fast = " or ".join(
            f"sum by (job) (rate({family}_bucket{{{_slo_selector(i)}, {le_matcher(SLOS[i].latency_seconds)}}}[{w}]))"
            for i in entries)
        rules.append(Record(slow, f"1 - ({fast}) / {requests}",
                            meaning=f"share of a service's SLO requests slower than its SLO latency, {w} rate"))
    return tuple(rules)


def _budget_burn(slo_budget: float, ratio: Callable[[str], str], severity: Severity, jobs: str) -> str:
    guard = num(HTTP.min_requests_per_second)
    return " or ".join(
        f"({ratio(row.long)}{{{jobs}}} > {num(round(row.factor * slo_budget, 12))}"
        f" and {ratio(row.short)} > {num(round(row.factor * slo_budget, 12))}"
        f" and {_slo_requests(row.long)} > {guard})"
        for row in _BURN_RATES[severity])


def _slo_alerts() -> tuple[Alert, ...]:
    tiers = {"critical": "page", "warning": "ticket"}
    out = []
    for severity, tier in tiers.items():
        rows = _BURN_RATES[severity]
        windows = " or ".join(f"{r.long} (confirmed over {r.short})" for r in rows)
        speeds = " / ".join(f"{r.factor:g}x over {r.long}" for r in rows)
        guard = f"checked above {num(HTTP.min_requests_per_second)} req/s"
        for sli, ratio, objective, what in (
            ("Error", _slo_errors, lambda slo: slo.availability, "answered with a 5xx"),
            ("Latency", _slo_slow, lambda slo: slo.latency_target, "slower than their SLO latency"),
        ):
            expr = " or ".join(_budget_burn(1 - objective(slo), ratio, severity, _slo_jobs(i))
                               for i, slo in enumerate(SLOS))
            out.append(Alert(
                alert=f"Http{sli}BudgetBurn",
                expr=expr,
                for_=getattr(FOR, f"slo_{sli.lower()}_budget_{tier}"),
                severity=severity,
                summary=f"{label('job')} burns its {sli.lower()} budget too fast ({PCT} {what})",
                description=(
                    f"{PCT} of the requests to {label('job')} were {what} over the last {windows}: the "
                    f"{SLO_PERIOD} {sli.lower()} budget of its SLO is being spent at least {speeds} the "
                    f"sustainable rate ({guard}). "
                    + ("At this pace it is gone within days: find what changed (deploy, dependency, load). "
                       if tier == "page" else
                       "Not urgent, but the budget will not last the period: plan the fix. ")
                    + "The service dashboard shows which routes contribute."
                ),
                runbook="service", dashboard="service",
                threshold=f"burn {speeds}",
                meaning=f"multi-window {sli.lower()} budget burn of the service SLO ({tier} tier)",
            ))
    return tuple(out)


def _groups() -> tuple[Group, ...]:
    return (
        Group("stackwatch.recording", _recording()),
        Group("stackwatch.slo.recording", _slo_recording()),
        Group("stackwatch.exporter", _exporter()),
        Group("stackwatch.availability", _availability()),
        Group("stackwatch.pipeline", (*_pipeline(), *_otel_collector())),
        Group("stackwatch.slo", _slo_alerts()),
        Group("stackwatch.postgres", _postgres()),
        Group("stackwatch.redis", _redis()),
        Group("stackwatch.service", _service()),
        Group("stackwatch.processes", _processes()),
        Group("stackwatch.jobs", _jobs()),
        Group("stackwatch.host", _host()),
    )


#: every rule group, in file order
GROUPS: tuple[Group, ...] = _groups()


def alerts() -> list[Alert]:
    """Every alerting rule of the catalog."""
    return [rule for group in GROUPS for rule in group.rules if isinstance(rule, Alert)]


def records() -> list[Record]:
    """Every recording rule of the catalog."""
    return [rule for group in GROUPS for rule in group.rules if isinstance(rule, Record)]
