"""The checklist thresholds, defined once (design principle 2).

The alert rules (``alerts/generate.py``), the dashboards' threshold lines and ``stackwatch check``
all read these values: change a number here and regenerate, never edit a copy. Each value says
why it is that number. Ratios are fractions (0.80 = 80%), durations are seconds, sizes bytes.
A "too high" threshold alerts when the measure is strictly above it, a "too low" one (the hit
ratios) when the measure is strictly below it. ``FOR`` holds how long each alert's condition must
hold before it fires.

Teams that vendor the rules override values without editing this file, as the monitoring
mixins' ``_config`` allows: ``STACKWATCH_THRESHOLDS_FILE`` names a TOML file whose tables are the
groups below (``[postgres]``, ``[pool]``, ``[redis]``, ``[cache]``, ``[http]``, ``[process]``,
``[host]``, ``[for]``) and whose top-level keys are the settings (``rate_window``, ``exporter_job``...), in
lower case. The generators, the dashboards and ``stackwatch check`` all read the result.

Imported at runtime by the CLI: standard library only.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

__all__ = [
    "OVERRIDES_ENV",
    "ThresholdsError",
    "load_overrides",
    "ALERTING",
    "CACHE",
    "DASHBOARD_UIDS",
    "EVENT_WINDOW",
    "EXPORTER",
    "EXPORTER_JOB",
    "FOR",
    "GRAFANA_BASE_URL",
    "HOST",
    "HTTP",
    "POOL",
    "POSTGRES",
    "PREDICTION_WINDOW",
    "PRESENCE_WINDOW",
    "PROCESS",
    "RATE_WINDOW",
    "REDIS",
    "RUNBOOK_BASE_URL",
    "SELECTORS",
    "SLOS",
    "SLO_PERIOD",
    "SLOW_TIER_WINDOW",
    "UNJUDGED_COMMANDS",
    "AlertingThresholds",
    "CacheThresholds",
    "ExporterThresholds",
    "ForDurations",
    "HostThresholds",
    "HttpThresholds",
    "JOBS",
    "JobThresholds",
    "PoolThresholds",
    "PostgresThresholds",
    "ProcessThresholds",
    "RedisThresholds",
    "Selectors",
    "ServiceSlo",
]

MiB: Final = 1024 * 1024


@dataclass(frozen=True)
class PostgresThresholds:
    """PostgreSQL server-side thresholds."""

    #: 80% of the non-reserved slots in use: still room for a deploy's second pool or a burst.
    connection_saturation_warning: float = 0.80
    #: 95%: the next pool growth or migration job gets "sorry, too many clients already".
    connection_saturation_critical: float = 0.95
    #: a request never needs a minute of idle-in-transaction; such sessions hold locks and block vacuum.
    idle_in_transaction_seconds: float = 60.0
    #: five minutes is past any request or ordinary batch step; older snapshots stall vacuum everywhere.
    long_transaction_seconds: float = 300.0
    #: a quarter of the HTTP p99 budget in one statement; also the exporter's and slow-query log's cut-off.
    slow_statement_mean_seconds: float = 0.25
    #: calls in the judged window (the alert's 15m, the exporter's poll, the check's statistics)
    #: below which a statement is a one-off (a data load, a migration, a report): not a slow path.
    slow_statement_min_calls: int = 5
    #: the exporter's score scale: at 1 and above seq scans read far more rows than an index would (>=).
    missing_index_suspect_score: float = 1.0
    #: the checklist's "don't index small tables (<1000 rows)": below that a seq scan is fine.
    missing_index_min_live_rows: int = 1000
    #: an index pays off when the filter keeps at most ~5% of the table: above that (a column of a few
    #: values) the planner reads the table anyway, and the fix is a LIMIT, not an index.
    index_max_filter_share: float = 0.05
    #: a column where one value fills 90%+ of the rows (an ``active``/``archived`` flag, a status that
    #: ends "done") is read by its rare values: pg_stat_statements hides the value compared with, so a
    #: partial index on the rare value is tried with it substituted (``WHERE active = true``).
    partial_index_skew_share: float = 0.9
    #: a B-tree holds every key whole: from ~100 bytes on average (URLs, tokens, hex digests) a Hash
    #: index's 4-byte codes make it several times smaller, for the equality lookups that are all it serves.
    hash_index_min_avg_width: int = 100
    #: an index scan whose matches a sort under a LIMIT orders: from 1000 matches on (more than any page
    #: shows) the sort reads rows an index holding the sort key would skip; below, sorting is cheap.
    sorted_scan_min_rows: int = 1000
    #: "when NOT to index": a table written more than read that has this many indexes pays for each
    #: one on every write; a further index is suggested with that cost spelled out.
    write_heavy_table_indexes: int = 5
    #: below 1 MiB an unused index costs next to nothing in writes, vacuum or cache.
    unused_index_min_bytes: int = 1 * MiB
    #: any deadlock is a lock-ordering bug in the application; one in the window is worth a look.
    deadlocks: int = 0
    #: a replica 30 s behind breaks read-after-write visibly and loses that much on failover.
    replication_lag_seconds: float = 30.0
    #: a primary serving from shared buffers reads >99% of blocks from memory; less means disk-bound.
    buffer_cache_hit_ratio: float = 0.99
    #: "Unbounded queries": more rows per call than any page shows; a LIMIT is probably missing.
    rows_per_call: float = 1000.0
    #: the checklist's "typical: 20-30 connections per app instance"; more rarely helps throughput.
    pool_connections_per_instance: int = 30
    #: a fifth of a table's rows dead is past autovacuum's default 20% scale factor: vacuum is behind.
    dead_tuple_ratio: float = 0.20
    #: under 10,000 dead rows a table is too small for its bloat to matter.
    dead_tuple_min_rows: int = 10_000
    #: a table with that backlog and no (auto)vacuum for a day has autovacuum blocked or starved.
    vacuum_age_seconds: float = 86_400.0
    #: autovacuum freezes from 200M (autovacuum_freeze_max_age); at 1B it has fallen far behind, with
    #: the 2^31 stop (and 1.6B vacuum_failsafe_age) still ahead: time to find what blocks it.
    xid_age: int = 1_000_000_000
    #: an unused slot keeping 1 GiB of WAL (max_wal_size's default) grows until the disk is full.
    inactive_slot_wal_bytes: int = 1024 * MiB
    #: the checklist's read replicas are for "read-heavy workloads (90%+ reads)": a primary whose
    #: statements are at least that share SELECTs can move reads to a replica.
    read_heavy_share: float = 0.90
    #: standbys each primary streams to; fewer pages a ticket (only on primaries that had standbys
    #: within PRESENCE_WINDOW, so a single server is never expected to have one).
    expected_replicas: int = 1
    #: block reads per second under which the buffer cache hit ratio is left alone: an idle
    #: database's few cold reads swing it without anyone waiting on the disk.
    min_block_reads_per_second: float = 100.0
    #: "No connection pooling": more than one new session per ten transactions means sessions live
    #: for a request or a query, not for the process (a pool opens a handful per process start).
    new_sessions_per_transaction: float = 0.1
    #: traffic guard: under one new session a second (cron jobs, migrations, a monitoring tool
    #: connecting per scrape) churn costs nothing worth an alert.
    min_new_sessions_per_second: float = 1.0
    #: sessions a database must have seen before ``stackwatch check`` judges its churn: fewer is a
    #: quiet database (or one whose statistics were just reset), pooled or not.
    churn_min_sessions: int = 50
    #: a week's warning before the databases' growth fills their disk: time to add disk, archive or
    #: drop data during working hours rather than at 3 a.m.
    disk_full_horizon_seconds: int = 7 * 86_400


@dataclass(frozen=True)
class PoolThresholds:
    """The service's client-side connection pool (``db_client_connection_*``)."""

    #: requests queued for a connection at every evaluation: the pool is too small for the load.
    pending_requests: float = 0.0
    #: 100 ms waiting for a connection is a tenth of the p99 budget spent before any work starts.
    wait_mean_seconds: float = 0.1
    #: the checklist's pool errors when it cannot connect in 2 s; past 10 s (or with no timeout)
    #: requests hang on an unreachable database instead of failing fast.
    connect_timeout_seconds: float = 10.0


@dataclass(frozen=True)
class RedisThresholds:
    """Redis server thresholds (redis_exporter names)."""

    #: the checklist's target: ">80% cache hit rate achieved".
    hit_ratio: float = 0.80
    #: traffic guard: under one lookup a second a few cold misses swing the ratio and nobody feels it.
    min_lookups_per_second: float = 1.0
    #: 10% headroom below maxmemory absorbs a burst before eviction or OOM write errors start.
    memory_saturation: float = 0.90
    #: sustained evictions mean the working set no longer fits and hot keys are being dropped.
    evictions_per_second: float = 0.0
    #: every rejected connection is a client that got an error (maxclients reached).
    rejected_connections: int = 0
    #: cache keys should all expire; over 10% of keys without TTL means some writer forgot one.
    keys_without_ttl_ratio: float = 0.10
    #: maxmemory-policy values under which memory near the limit and evictions are healthy (an LRU/LFU
    #: cache at capacity); the memory and eviction alerts only watch the others (noeviction, volatile-*).
    cache_policies: tuple[str, ...] = ("allkeys-lru", "allkeys-lfu", "allkeys-random")
    #: connections opened per command processed above which clients connect per request: a pooled
    #: client sends thousands of commands per connection, one connecting per request a handful.
    connections_per_command: float = 0.1
    #: traffic guard: under one new connection a second (cron jobs, health probes) churn is harmless.
    min_connections_per_second: float = 1.0
    #: commands that walk or drop the whole keyspace while every other client waits (Redis runs one
    #: command at a time): KEYS (use SCAN), FLUSHALL/FLUSHDB (the cache lost at once), SAVE (a
    #: snapshot in the main thread; BGSAVE forks). Lowercase, as INFO commandstats names them.
    dangerous_commands: tuple[str, ...] = ("keys", "flushall", "flushdb", "save")


@dataclass(frozen=True)
class CacheThresholds:
    """Application-side cache lookups (``cache_requests_total{cache,result}``)."""

    #: the checklist's target, seen from the application: ">80% cache hit rate".
    hit_ratio: float = 0.80
    #: traffic guard, as for Redis: one lookup a second.
    min_requests_per_second: float = 1.0


@dataclass(frozen=True)
class HttpThresholds:
    """Service RED thresholds and the N+1 detector (``http_server_*``, ``db_client_*``)."""

    #: one request in twenty failing is user-visible, yet tolerant of a stray 5xx during deploys.
    error_ratio: float = 0.05
    #: one second is where users lose the feeling of an uninterrupted flow.
    latency_p99_seconds: float = 1.0
    #: traffic guard: under 0.5 req/s (150 per 5 minutes) a couple of requests swing ratio and p99.
    min_requests_per_second: float = 0.5
    #: the same statement 5+ times in one request is a loop; 2-4 repeats are often legitimate.
    n_plus_one_repeat_count: int = 5
    #: N+1 detections allowed in the event window before alerting: none, each one is a loop to fix.
    n_plus_one_detections: int = 0
    #: responses over 1 KiB gain from gzip; smaller ones cost more CPU than they save.
    compression_min_bytes: int = 1024
    #: with compression on, every compressible response worth it goes out encoded (a share near
    #: 1); under 90% a service sends much of its large text uncompressed (a route that bypasses it,
    #: or no compression at all).
    compressed_ratio: float = 0.9
    #: traffic guard: under one compressible response of 1 KiB+ every 10 s a few large downloads
    #: swing the share.
    min_compressible_per_second: float = 0.1
    #: a CDN in front takes the fingerprinted assets' traffic; over a tenth of it reaching the
    #: origin straight means pages link the origin, or there is no CDN.
    static_via_cdn_ratio: float = 0.9
    #: load balancing needs somewhere to balance to: fewer instances is a single point of failure.
    min_instances: int = 2
    #: an instance taking 1.5x its fair share (75% of two instances' requests) is not balanced:
    #: least_conn keeps instances of equal speed within a few percent of each other.
    instance_share_high: float = 1.5
    #: under a tenth of its fair share (5% of two instances' requests) an instance that is up gets
    #: no real traffic: the load balancer has taken it out of rotation.
    instance_share_low: float = 0.1
    #: fingerprinted static assets never change under their name: cache them for a year (the
    #: checklist's ``public, max-age=31536000, immutable``).
    static_max_age_seconds: int = 31_536_000
    #: a callback that holds the event loop 100 ms blocks it (asyncio's own debug-mode
    #: slow-callback threshold): every concurrent request waits that long.
    event_loop_block_seconds: float = 0.1
    #: a route that keeps the loop blocked 1% of the time (3 s in 5 minutes) delays every other
    #: request that often; a rare single stall stays below it.
    event_loop_blocked_ratio: float = 0.01
    #: "traffic drop": requests fell under half of the previous hour's average while still flowing
    #: (none at all is HttpTrafficAbsent): a lost upstream, a broken client release, a DNS change.
    traffic_drop_ratio: float = 0.5
    #: health checks not run for 2 minutes have missed 8 runs of the instrumentation's 15 s timer:
    #: the timer or the event loop is stuck, and health_check_status is frozen.
    health_check_max_age_seconds: float = 120.0


@dataclass(frozen=True)
class JobThresholds:
    """Background jobs (checklist: "async processing for long tasks"): queues read by the exporter
    (``job_queue_*``) and jobs measured where they run (``jobs_total``)."""

    #: the checklist's jobs (emails, reports, exports, webhooks) are late once queued for 5 minutes.
    oldest_age_seconds: float = 300.0
    #: a backlog 100 jobs longer than a window ago: the workers no longer keep up with the producers.
    backlog_growth: float = 100.0
    #: one job in twenty failing for good is a broken task or dependency, not bad luck.
    failure_ratio: float = 0.05
    #: traffic guard: under one job a minute a single failure swings the ratio.
    min_jobs_per_second: float = 1 / 60
    #: a route whose typical (p95) request takes 2 s does work a background job should do.
    synchronous_route_p95_seconds: float = 2.0


@dataclass(frozen=True)
class ExporterThresholds:
    """The exporter's own health."""

    #: a snapshot older than three intervals has missed two polls in a row: its tier is stuck or starved.
    stale_snapshot_intervals: float = 3.0


@dataclass(frozen=True)
class ProcessThresholds:
    """Monitored processes against their cgroup limits (checklist: "resource limits set")."""

    #: at 90% of the CPU quota the kernel starts throttling bursts, which shows up as latency.
    cpu_limit_ratio: float = 0.90
    #: at 90% of memory.max the OOM killer is one allocation spike away (working set: page cache the
    #: kernel can reclaim is left out, as cAdvisor's container_memory_working_set_bytes does).
    memory_limit_ratio: float = 0.90
    #: throttled a quarter of the wall-clock time: requests stall for whole CFS periods (100 ms).
    cpu_throttled_ratio: float = 0.25


@dataclass(frozen=True)
class HostThresholds:
    """Hosts as node_exporter sees them (``node_*``): the disks PostgreSQL and Redis write to, memory."""

    #: 5% of a filesystem left is hours from full at any write rate worth alerting on; then
    #: PostgreSQL stops (no room for WAL) and Redis fails its RDB/AOF writes.
    filesystem_avail_ratio: float = 0.05
    #: a filesystem predicted to fill is watched once less than 40% is left (the node mixin's level):
    #: with more room a day's trend is noise, such as a backup written then deleted.
    filesystem_filling_avail_ratio: float = 0.40
    #: the linear trend of the last PREDICTION window reaches zero within this many hours.
    filesystem_filling_hours: float = 24.0
    #: 90% of memory in use (MemAvailable, so reclaimable page cache is free): the cache that keeps
    #: PostgreSQL's reads off the disk is being squeezed out; swapping or the OOM killer come next.
    memory_used_ratio: float = 0.90


@dataclass(frozen=True)
class AlertingThresholds:
    """The alerting pipeline itself: Prometheus evaluating and sending, Alertmanager delivering."""

    #: one notification in a hundred failing loses pages over a day; fewer is a network blip.
    notification_error_ratio: float = 0.01


@dataclass(frozen=True)
class ForDurations:
    """How long each alert's condition must hold before it fires (Prometheus durations).

    Short for outages (a down database is never a blip worth waiting out), longer for trends
    that fluctuate, longest for slow-moving hygiene findings polled on the exporter's rare tier.
    """

    exporter_down: str = "2m"
    postgres_metrics_absent: str = "5m"
    postgres_down: str = "1m"
    postgres_connections_saturated_warning: str = "5m"
    postgres_connections_saturated_critical: str = "2m"
    postgres_idle_in_transaction: str = "1m"
    postgres_long_transaction: str = "2m"
    postgres_slow_statements: str = "10m"
    postgres_missing_index_suspect: str = "30m"
    postgres_unused_index: str = "1h"
    postgres_deadlocks: str = "0m"
    postgres_replication_lag: str = "5m"
    #: longer than the rate window, so one burst of waiters (which stays in the window for its
    #: length) cannot fire it alone
    pool_requests_waiting: str = "10m"
    pool_wait_time_high: str = "5m"
    redis_down: str = "1m"
    redis_hit_ratio_low: str = "10m"
    redis_memory_near_limit: str = "10m"
    redis_evicting_keys: str = "10m"
    redis_rejected_connections: str = "0m"
    redis_maxmemory_not_set: str = "1h"
    cache_hit_ratio_low: str = "10m"
    http_error_ratio_high: str = "5m"
    http_latency_p99_high: str = "10m"
    n_plus_one_detected: str = "0m"
    health_check_failing: str = "2m"
    health_check_failing_instance: str = "5m"
    process_cpu_near_limit: str = "15m"
    process_memory_near_limit: str = "10m"
    process_limit_missing: str = "1h"
    job_queue_backlog_growing: str = "15m"
    job_queue_oldest_job_too_old: str = "5m"
    job_failure_ratio_high: str = "10m"
    job_queue_no_workers: str = "5m"
    http_route_should_be_background_job: str = "30m"
    event_loop_blocked: str = "5m"
    #: a configuration fact (compression off or bypassed), not an incident: wait out deploys
    http_responses_uncompressed: str = "30m"
    collector_failing: str = "10m"
    collector_disabled: str = "15m"
    collector_stale: str = "5m"
    watchdog: str = "0m"
    target_down: str = "5m"
    service_down: str = "2m"
    http_traffic_absent: str = "10m"
    #: least_conn evens out within minutes; a quarter of an hour of skew is a setup problem
    http_traffic_imbalanced: str = "15m"
    #: a replica out of rotation is capacity lost: worth a look within minutes, not seconds (deploys)
    http_instance_out_of_rotation: str = "5m"
    #: the SRE workbook's multi-window alerts need no long "for": the short window already
    #: confirms the burn is still going on
    slo_error_budget_page: str = "2m"
    slo_error_budget_ticket: str = "15m"
    slo_latency_budget_page: str = "2m"
    slo_latency_budget_ticket: str = "15m"
    redis_metrics_absent: str = "5m"
    prometheus_rule_failures: str = "15m"
    prometheus_notifications_failing: str = "10m"
    prometheus_alertmanager_missing: str = "10m"
    alertmanager_notifications_failing: str = "10m"
    postgres_vacuum_behind: str = "1h"
    postgres_more_than_one_primary: str = "1m"
    redis_master_link_down: str = "2m"
    redis_persistence_failing: str = "5m"
    process_cpu_throttled: str = "15m"
    process_oom_killed: str = "0m"
    postgres_wal_receiver_down: str = "2m"
    postgres_xid_wraparound: str = "15m"
    postgres_replication_slot_inactive: str = "10m"
    postgres_replicas_missing: str = "5m"
    #: the trend must hold for an hour: one large file written and deleted is no trend
    node_filesystem_space_filling_up: str = "1h"
    node_filesystem_almost_out_of_space: str = "15m"
    node_memory_high_utilization: str = "15m"
    postgres_slow_query_log_off: str = "1h"
    postgres_statements_not_loaded: str = "1h"
    #: the slow tier polls statements every 5 minutes: two readings over the line, not one
    postgres_unbounded_query: str = "30m"
    postgres_duplicate_index: str = "1h"
    #: CREATE INDEX CONCURRENTLY leaves its index invalid while it builds: an hour is past any build
    postgres_invalid_index: str = "1h"
    postgres_buffer_cache_hit_ratio_low: str = "15m"
    postgres_connection_churn: str = "15m"
    redis_keys_without_ttl: str = "1h"
    redis_connection_churn: str = "15m"
    redis_dangerous_commands: str = "0m"
    http_traffic_drop: str = "15m"
    postgres_disk_full_forecast: str = "1h"
    health_check_not_running: str = "5m"
    #: longer than the rate window: a Tempo restart the exporter's retries ride out is not a loss
    otel_collector_dropping_spans: str = "10m"


POSTGRES: Final = PostgresThresholds()
POOL: Final = PoolThresholds()
REDIS: Final = RedisThresholds()
CACHE: Final = CacheThresholds()
HTTP: Final = HttpThresholds()
PROCESS: Final = ProcessThresholds()
JOBS: Final = JobThresholds()
ALERTING: Final = AlertingThresholds()
HOST: Final = HostThresholds()
EXPORTER: Final = ExporterThresholds()
FOR: Final = ForDurations()

#: window of the recording rules' rates: 20 scrapes at 15 s, short enough to see an incident start.
RATE_WINDOW: Final = "5m"
#: window in which counted events (deadlocks, rejections, N+1 detections) keep an alert firing.
EVENT_WINDOW: Final = "10m"
#: window whose linear trend predicts when a filesystem fills: long enough to span a day's ups and downs
#: of logs and temporary files, short enough to follow a new growth rate.
PREDICTION_WINDOW: Final = "6h"
#: window for rates of families the exporter refreshes on its slow tier (every 300 s by default,
#: e.g. pg_stat_statements): it must span at least two polls.
SLOW_TIER_WINDOW: Final = "15m"
#: how long absent-style alerts remember a series that vanished (a target the exporter no longer
#: serves, a service that stopped receiving requests): they fire, then resolve after this long.
PRESENCE_WINDOW: Final = "1h"
#: history a growth forecast (``predict_linear``) is fitted on: long enough to smooth a batch load
#: or a vacuum, short enough to follow a change in the write rate.
GROWTH_WINDOW: Final = "6h"

#: statement kinds (the exporter's ``command`` label) never judged as the application's slow or
#: unbounded statements: maintenance and DDL (VACUUM, CREATE INDEX, COPY of backups...) and
#: monitoring tools' own statements.
UNJUDGED_COMMANDS: Final = ("utility", "monitoring")

#: the Prometheus job that scrapes the stackwatch exporter (provisioning/prometheus.yml).
EXPORTER_JOB: Final = "stackwatch-exporter"


@dataclass(frozen=True)
class Selectors:
    """Which scrape jobs are what, as PromQL label matchers (the monitoring mixins' ``_config``).

    Change them to your job names and regenerate the rules; nothing else in the catalog names a job.
    """

    #: the jobs that scrape `stackwatch exporter`: /metrics (compose) and /probe (docs/stack.md)
    exporter: str = f'job=~"{EXPORTER_JOB}|stackwatch-probe"'
    #: the instrumented services: every job that is not a part of the monitoring stack itself
    services: str = (f'job!~"{EXPORTER_JOB}|stackwatch-probe|prometheus|alertmanager|otel-collector'
                     '|tempo|grafana|node"')
    #: Prometheus' own scrape job (rule evaluation, notifications)
    prometheus: str = 'job="prometheus"'
    #: Alertmanager's scrape job (notification deliveries)
    alertmanager: str = 'job="alertmanager"'
    #: Grafana's scrape job (the checklist's performance dashboards: is Grafana up)
    grafana: str = 'job="grafana"'
    #: the label that tells Prometheus servers' series apart in a shared store (the mixins'
    #: ``clusterLabel``: an ``external_labels`` entry per Kubernetes cluster or region). Every
    #: aggregation and vector match of the rules keeps it, so central evaluation (Mimir, Thanos,
    #: vmalert) never merges two clusters; series without it aggregate as before.
    cluster_label: str = "cluster"
    #: show the dashboards' cluster variable (the mixins' ``showMultiCluster``); hidden by default,
    #: where one Prometheus holds one cluster (docker compose), shown in the Helm chart's dashboards
    multi_cluster: bool = False
    #: the target label that names a PostgreSQL replication cluster (a primary and its standbys);
    #: the several-primaries alert only watches targets that carry it. Not ``cluster``: that one
    #: names a whole Prometheus cluster, whose PostgreSQL servers are often unrelated primaries.
    postgres_cluster_label: str = "pg_cluster"


SELECTORS: Final = Selectors()


@dataclass(frozen=True)
class ServiceSlo:
    """Service level objectives of the services whose job matches ``jobs`` (a regex).

    Two SLIs per request: answered without a 5xx (``availability``), and answered within
    ``latency_seconds`` (``latency_target``). ``latency_seconds`` must be a bucket boundary of
    ``http_server_request_duration_seconds`` (the generator refuses others: a count of requests
    faster than a value between boundaries cannot be read from a histogram). A service is governed
    by the first entry of ``SLOS`` whose ``jobs`` matches its job.
    """

    #: regex over the job label; the default covers every instrumented service
    jobs: str = ".+"
    #: regex over http_route: routes that count in neither SLI (health probes, deliberate faults)
    excluded_routes: str = ""
    #: 99.9% of requests answered without a 5xx: 43 minutes of full outage per 30 days.
    availability: float = 0.999
    #: the checklist's p99 latency, as an objective: 99% of requests within 1 s.
    latency_seconds: float = 1.0
    latency_target: float = 0.99


#: the services' SLOs (the multi-window, multi-burn-rate alerts of the SRE workbook are built on
#: them), first match wins. The demo's GET /error fails on purpose: it is no part of its SLO.
SLOS: Final[tuple[ServiceSlo, ...]] = (ServiceSlo(jobs="demo", excluded_routes="/error"), ServiceSlo())
#: the period each error budget is spent over
SLO_PERIOD: Final = "30d"

#: fixed Grafana dashboard uids, shared by the dashboards, the alerts' dashboard links and links.
DASHBOARD_UIDS: Final[Mapping[str, str]] = MappingProxyType({
    "service": "stackwatch-service",
    "postgres": "stackwatch-postgres",
    "redis": "stackwatch-redis",
    "processes": "stackwatch-processes",
    "checklist": "stackwatch-checklist",
    "jobs": "stackwatch-jobs",
    "host": "stackwatch-host",
})

#: Grafana as `docker compose up` publishes it: alerts' ``dashboard_url`` is built on it (absolute,
#: so the link works from Alertmanager, Slack or a pager). Set yours in the overrides file
#: (``grafana_base_url``) and regenerate the rules.
GRAFANA_BASE_URL: Final = "http://localhost:3000"
#: where the repository's docs/runbooks folder is published (GitHub renders the anchors): alerts'
#: ``runbook_url`` is built on it. Absolute for the same reason; set yours (``runbook_base_url``).
RUNBOOK_BASE_URL: Final = "https://github.com/stackwatch/stackwatch/blob/main/docs/runbooks"


#: environment variable naming a TOML file of overrides (see the module docstring).
OVERRIDES_ENV: Final = "STACKWATCH_THRESHOLDS_FILE"


class ThresholdsError(ValueError):
    """An override file that cannot be applied; the message names the file and the key."""


def _checked(where: str, default: object, value: object) -> object:
    """``value`` if it has the type of ``default`` (an int is a fine float), else ThresholdsError."""
    expected = float if isinstance(default, float) else type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, expected) or isinstance(value, bool) != isinstance(default, bool):
        raise ThresholdsError(f"{where}: expected {expected.__name__}, got {value!r}")
    return value


def load_overrides(path: str | os.PathLike[str], namespace: dict[str, object]) -> dict[str, object]:
    """Read the TOML override file at ``path``; return the new values of ``namespace``'s names.

    Tables replace fields of the threshold groups, top-level keys replace the module settings;
    every unknown table, key or wrongly typed value is an error naming it.
    """
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ThresholdsError(f"{OVERRIDES_ENV}={path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ThresholdsError(f"{OVERRIDES_ENV}={path}: not valid TOML: {exc}") from None
    groups = {name.lower(): name for name, value in namespace.items()
              if name.isupper() and dataclasses.is_dataclass(value)}
    settings = {name.lower(): name for name, value in namespace.items()
                if name.isupper() and isinstance(value, (str, int, float)) and name != "OVERRIDES_ENV"}
    result: dict[str, object] = {}
    for key, value in data.items():
        where = f"{path}: {key}"
        if key in groups and isinstance(value, dict):
            group = namespace[groups[key]]
            fields = {f.name for f in dataclasses.fields(group)}  # type: ignore[arg-type]
            unknown = sorted(set(value) - fields)
            if unknown:
                raise ThresholdsError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                                      f"known: {', '.join(sorted(fields))}")
            changes = {k: _checked(f"{where}.{k}", getattr(group, k), v) for k, v in value.items()}
            result[groups[key]] = dataclasses.replace(group, **changes)  # type: ignore[type-var]
        elif key in settings:
            result[settings[key]] = _checked(where, namespace[settings[key]], value)
        else:
            raise ThresholdsError(f"{where}: unknown table or key; tables: {', '.join(sorted(groups))}; "
                                  f"keys: {', '.join(sorted(settings))}")
    return result


if os.environ.get(OVERRIDES_ENV):
    try:
        globals().update(load_overrides(os.environ[OVERRIDES_ENV], globals()))
    except ThresholdsError as exc:
        # Every entry point (the CLI, the generators) imports this module first: a clear message
        # and exit status 1 beat a traceback from deep inside an import.
        raise SystemExit(f"stackwatch: {exc}") from None
