"""PostgreSQL: is the database the bottleneck, and which statement, table or index is to blame?

Connection saturation against the alert levels, backend states and transaction hygiene,
throughput and buffer cache, the statements that take the time, missing and unused indexes,
locks, replication and checkpoints. Every series comes from ``stackwatch exporter`` and has a
``server`` label naming the database server.
"""

from __future__ import annotations

import math
from typing import Any

from grafanalib.core import Dashboard

from stackwatch.promql import database_growth_forecast
from stackwatch.thresholds import GROWTH_WINDOW, POSTGRES, SLOW_TIER_WINDOW

from ..common import (
    Grid,
    dashboard,
    label_variable,
    levels,
    no_threshold,
    q,
    selector,
    stat,
    state_mapping,
    table,
    timeseries,
    too_high,
    too_low,
)

__all__ = ["build"]

S = selector("job", "instance", "server")
#: the filesystems declared under a server's name (``--filesystem SERVER=PATH``): the process
#: target's series, whose own ``server`` label is the host's
FILESYSTEMS = selector("job", "instance") + ',filesystem=~"$server"'
WINDOW = "$__rate_interval"
#: families the exporter refreshes on its slow tier (statements, tables, checkpointer; every 300 s by
#: default) change once per poll: a rate over $__rate_interval would be 0 or NaN between polls
SLOW = SLOW_TIER_WINDOW


def _slow_log_steps() -> list[dict[str, Any]]:
    """Red when the log is off (-1), green when on, orange when its cut-off is laxer than the
    slow-statement threshold (slow statements would go unlogged)."""
    lax = math.nextafter(POSTGRES.slow_statement_mean_seconds, math.inf)
    return [{"color": "red", "value": None}, {"color": "green", "value": 0}, {"color": "orange", "value": lax}]


def _availability_and_connections(g: Grid) -> None:
    g.row("Availability and connections")
    g.add(stat("PostgreSQL up", "Can the exporter connect and query the server?",
               f"min(pg_up{{{S}}})", "none", too_low(1), mappings=state_mapping(1, "UP", "DOWN")), w=4, h=4)
    g.add(stat("Connection saturation", "Share of the non-reserved connection slots in use (recorded). "
               "Orange and red at the alert's warning and critical levels.",
               f"max(instance:pg_connections:saturation_ratio{{{S}}})", "percentunit",
               levels(POSTGRES.connection_saturation_warning, POSTGRES.connection_saturation_critical)), w=5, h=4)
    g.add(stat("Buffer cache hit ratio", "Lowest per-database share of block reads served from shared buffers.",
               f"min(pg_stat_database_cache_hit_ratio{{{S}}})", "percentunit",
               too_low(POSTGRES.buffer_cache_hit_ratio)), w=5, h=4)
    g.add(stat("Slow statements", "Statements whose mean execution time is over the slow threshold "
               "(pg_stat_statements).", f"sum(pg_stat_statements_slow_statements{{{S}}})", "short", too_high(0)),
          w=5, h=4)
    g.add(stat("Slow-query log", "log_min_duration_statement: statements slower than this are logged "
               "(-1 means the log is off).", f"max(pg_settings_log_min_duration_statement_seconds{{{S}}})", "s",
               _slow_log_steps()), w=5, h=4)

    g.add(timeseries("Connection saturation", "How close is the server to 'too many clients'? The dashed "
                     "lines are the warning and critical alert levels.", [
        (f"instance:pg_connections:saturation_ratio{{{S}}}", "{{server}}"),
    ], "percentunit", thresholds=levels(POSTGRES.connection_saturation_warning,
                                        POSTGRES.connection_saturation_critical)), w=8)
    g.add(timeseries("Backends by state", "What are the connections doing? Many idle connections point at "
                     "oversized pools; 'idle in transaction' holds locks.", [
        (f"sum by (state) (pg_stat_activity_count{{{S}}})", "{{state}}"),
        (f"max(pg_settings_max_connections{{{S}}})", "max_connections"),
    ], "short"), w=8)
    g.add(timeseries("Waiting on locks", "Backends waiting for a lock right now, and the oldest wait.", [
        (f"sum(pg_stat_activity_lock_waiting_backends{{{S}}})", "waiting backends"),
        (f"max(pg_locks_blocked_backends{{{S}}})", "blocked backends"),
    ], "short"), w=8)
    g.add(timeseries("Idle in transaction (longest)", "A session that opened a transaction and went quiet "
                     "holds its locks and stops vacuum; the dashed line is the alert threshold.", [
        (f"max by (server) (pg_stat_activity_idle_in_transaction_max_seconds{{{S}}})", "{{server}}"),
    ], "s", thresholds=too_high(POSTGRES.idle_in_transaction_seconds)), w=12)
    g.add(timeseries("Longest transaction and query by database", "Long transactions keep old row versions "
                     "alive everywhere; the dashed line is the alert threshold.", [
        (f"max by (datname) (pg_stat_activity_max_tx_duration{{{S}}})", "{{datname}} transaction"),
        (f"max by (datname) (pg_stat_activity_max_query_duration_seconds{{{S}}})", "{{datname}} query"),
    ], "s", thresholds=too_high(POSTGRES.long_transaction_seconds)), w=12)


def _throughput_and_cache(g: Grid) -> None:
    g.row("Throughput and cache")
    g.add(timeseries("Transactions per second", "Commits and rollbacks; a rising rollback share is "
                     "application errors or serialization failures.", [
        (f"sum by (datname) (rate(pg_stat_database_xact_commit{{{S}}}[{WINDOW}]))", "{{datname}} commit"),
        (f"sum by (datname) (rate(pg_stat_database_xact_rollback{{{S}}}[{WINDOW}]))", "{{datname}} rollback"),
    ], "ops"), w=8)
    g.add(timeseries("Buffer cache hit ratio by database", "Is the working set in memory? Below the dashed "
                     "line the database reads from disk.", [
        (f"pg_stat_database_cache_hit_ratio{{{S}}}", "{{datname}}"),
    ], "percentunit", thresholds=too_low(POSTGRES.buffer_cache_hit_ratio), min_zero=False), w=8)
    g.add(timeseries("Rows per second", "Rows read and written: reads far above fetches mean scans.", [
        (f"sum(rate(pg_stat_database_tup_returned{{{S}}}[{WINDOW}]))", "returned (scanned)"),
        (f"sum(rate(pg_stat_database_tup_fetched{{{S}}}[{WINDOW}]))", "fetched (by index)"),
        (f"sum(rate(pg_stat_database_tup_inserted{{{S}}}[{WINDOW}]))", "inserted"),
        (f"sum(rate(pg_stat_database_tup_updated{{{S}}}[{WINDOW}]))", "updated"),
        (f"sum(rate(pg_stat_database_tup_deleted{{{S}}}[{WINDOW}]))", "deleted"),
    ], "ops"), w=8)
    g.add(timeseries("Deadlocks", "Any deadlock is a lock-ordering bug in the application.", [
        (f"sum by (datname) (increase(pg_stat_database_deadlocks{{{S}}}[{WINDOW}]))", "{{datname}}"),
    ], "short", thresholds=too_high(POSTGRES.deadlocks), drawStyle="bars"), w=8)
    g.add(timeseries("Temporary files written", "Sorts and hashes that did not fit in work_mem spill to disk.", [
        (f"sum by (datname) (rate(pg_stat_database_temp_bytes{{{S}}}[{WINDOW}]))", "{{datname}}"),
    ], "Bps"), w=8)
    g.add(timeseries("Database size", "How fast is each database growing?", [
        (f"sum by (datname) (pg_database_size_bytes{{{S}}})", "{{datname}}"),
    ], "bytes"), w=8)
    days = POSTGRES.disk_full_horizon_seconds // 86_400
    g.add(timeseries("Disk: growth forecast vs free", f"Will the databases fill their disk within {days} days? "
                     f"Their growth over the next {days} days at the trend of the last {GROWTH_WINDOW}, against the "
                     "space left on the filesystem declared for the server (exporter --filesystem SERVER=PATH): "
                     "PostgresDiskFullForecast fires when the growth line passes the free one.", [
        (database_growth_forecast("server", GROWTH_WINDOW, POSTGRES.disk_full_horizon_seconds, f"{{{S}}}"),
         f"{{{{server}}}} growth in {days}d"),
        q(f'max by (filesystem) (process_filesystem_avail_bytes{{{FILESYSTEMS}}})', "{{filesystem}} free",
          empty_reason="no --filesystem declared under the server's name"),
    ], "bytes"), w=8)


def _statements(g: Grid) -> None:
    g.row("Statements (pg_stat_statements)")
    statement = "queryid, datname, user"
    top = f"topk(10, sum by ({statement}) (rate(pg_stat_statements_seconds_total{{{S}}}[$__range])))"
    g.add(table("Top statements by total time", "Which statements take the database's time over the "
                "selected range? Mean time over the slow threshold is what the slow-statement alert counts.", [
        q(top),
        q(f"sum by ({statement}) (rate(pg_stat_statements_calls_total{{{S}}}[$__range])) and on ({statement}) {top}"),
        q(f"max by ({statement}) (pg_stat_statements_mean_seconds{{{S}}}) and on ({statement}) {top}"),
        q(f"sum by ({statement}) (rate(pg_stat_statements_rows_total{{{S}}}[$__range])) / "
          f"sum by ({statement}) (rate(pg_stat_statements_calls_total{{{S}}}[$__range]) > 0) "
          f"and on ({statement}) {top}"),
        q(f"max by ({statement}, query) (pg_stat_statements_query_info{{{S}}}) and on ({statement}) {top}"),
    ], "short", columns={
        "Value #A": ("busy backends", "short"),
        "Value #B": ("calls/s", "ops"),
        "Value #C": ("mean time", "s"),
        "Value #D": ("rows per call", "short"),
        "query": ("query", "string"),
    }, hidden=["Value #E"], sort_by="Value #A"), w=24, h=10)
    g.add(timeseries("Statement load by query id (top 5)", "Busy backends spent on each statement: 1.0 is one "
                     f"backend executing it all the time ({SLOW} rate: pg_stat_statements is read on the "
                     "exporter's slow tier).", [
        (f"topk(5, sum by (queryid) (rate(pg_stat_statements_seconds_total{{{S}}}[{SLOW}])))", "{{queryid}}"),
    ], "short", stacked=True), w=12)
    g.add(timeseries("Mean statement time (all statements)", "Instance-wide mean execution time; the dashed "
                     "line is the slow-statement threshold.", [
        (f"sum(rate(pg_stat_statements_instance_seconds_total{{{S}}}[{SLOW}])) / "
         f"sum(rate(pg_stat_statements_instance_calls_total{{{S}}}[{SLOW}]))", "mean"),
    ], "s", thresholds=too_high(POSTGRES.slow_statement_mean_seconds)), w=12)


def _tables_and_indexes(g: Grid) -> None:
    g.row("Tables and indexes")
    # tables aggregate "by" the identifying labels: that drops __name__, so the queries' rows merge
    table_labels = "server, datname, schemaname, relname"
    suspects = f"topk(10, max by ({table_labels}) (pg_table_missing_index_suspect_score{{{S}}}))"
    g.add(table("Missing-index suspects", "Tables read mostly by sequential scans although they are big "
                "enough for an index to pay (score >= 1 is a suspect).", [
        q(suspects),
        q(f"max by ({table_labels}) (pg_stat_user_tables_n_live_tup{{{S}}}) and on ({table_labels}) {suspects}"),
        q(f"max by ({table_labels}) (pg_stat_user_tables_seq_tup_read{{{S}}}) and on ({table_labels}) {suspects}"),
    ], "short", columns={
        "Value #A": ("suspect score", "short"),
        "Value #B": ("live rows", "short"),
        "Value #C": ("rows read by seq scans", "short"),
    }, sort_by="Value #A"), w=12, h=9)
    g.add(table("Unused indexes", "Indexes never scanned since statistics were reset: they cost writes, "
                "vacuum and cache and answer no query.", [
        q(f"sort_desc(max by ({table_labels}, indexrelname) (pg_index_unused_size_bytes{{{S}}}))",
          empty_reason="no unused index on the watched databases"),
    ], "bytes", columns={"Value": ("size", "bytes")}, sort_by="Value"), w=12, h=9)
    g.add(timeseries("Index findings by database", "Unused, invalid and duplicate indexes per database.", [
        (f"sum by (datname) (pg_indexes_unused{{{S}}})", "{{datname}} unused"),
        (f"sum by (datname) (pg_indexes_invalid{{{S}}})", "{{datname}} invalid"),
        (f"sum by (datname) (pg_indexes_duplicate{{{S}}})", "{{datname}} duplicate"),
    ], "short"), w=8)
    g.add(timeseries("Dead tuples (top 5 tables)", "Rows waiting for vacuum; growth means autovacuum "
                     "cannot keep up or a long transaction blocks it.", [
        (f"topk(5, pg_stat_user_tables_n_dead_tup{{{S}}})", "{{datname}}.{{relname}}"),
    ], "short"), w=8)
    g.add(timeseries("Sequential vs index scans", f"Scans per second over all tables ({SLOW}: the exporter reads "
                     "them on its slow tier).", [
        (f"sum(rate(pg_stat_user_tables_seq_scan{{{S}}}[{SLOW}]))", "sequential"),
        (f"sum(rate(pg_stat_user_tables_idx_scan{{{S}}}[{SLOW}]))", "index"),
    ], "ops"), w=8)


def _locks_replication_checkpoints(g: Grid) -> None:
    g.row("Locks, replication, checkpoints")
    g.add(timeseries("Locks by mode", "Lock counts by mode; ungranted locks are waits.", [
        (f'sum by (mode) (pg_locks_count{{{S}}})', "{{mode}}"),
        (f'sum(pg_locks_count{{{selector("job", "instance", "server", granted="false")}}}) or vector(0)',
         "not granted"),
    ], "short"), w=8)
    g.add(timeseries("Replication lag", "How far behind is each replica? On a primary without replicas "
                     "this stays at 0; the dashed line is the alert threshold.", [
        (f"max by (server) (pg_replication_lag_seconds{{{S}}}) or "
         f"max by (server) (pg_replication_is_replica{{{S}}}) * 0", "{{server}} (replica view)"),
        q(f"max by (server, application_name) (pg_stat_replication_replay_lag_seconds{{{S}}})",
          "{{application_name}} (primary view)", empty_reason="no replica is streaming from the primary"),
    ], "s", thresholds=too_high(POSTGRES.replication_lag_seconds)), w=8)
    g.add(timeseries("WAL retained by replication slots", "A slot whose consumer is gone keeps WAL forever "
                     "and fills the disk.", [
        (f"sum by (server, slot_name) (pg_replication_slot_retained_wal_bytes{{{S}}}) or "
         f"max by (server) (pg_replication_is_replica{{{S}}}) * 0", "{{server}} {{slot_name}}"),
    ], "bytes"), w=8)
    g.add(timeseries("Checkpoints", "Requested checkpoints (WAL filled up before the timeout) mean "
                     "max_wal_size is too small for the write load.", [
        (f"sum(rate(pg_stat_bgwriter_checkpoints_timed_total{{{S}}}[{SLOW}]))", "timed"),
        (f"sum(rate(pg_stat_bgwriter_checkpoints_req_total{{{S}}}[{SLOW}]))", "requested"),
    ], "ops"), w=12)
    g.add(timeseries("Buffers written", "Who writes dirty buffers: the checkpointer, the background writer, "
                     "or backends themselves (bad: they wait on it).", [
        (f"sum(rate(pg_stat_bgwriter_buffers_checkpoint_total{{{S}}}[{SLOW}]))", "checkpointer"),
        (f"sum(rate(pg_stat_bgwriter_buffers_clean_total{{{S}}}[{SLOW}]))", "background writer"),
        (f"sum(rate(pg_stat_bgwriter_buffers_backend_total{{{S}}}[{SLOW}]))", "backends"),
    ], "ops"), w=12)


def _server_and_settings(g: Grid) -> None:
    g.row("Server and settings")
    g.add(stat("Version", "Which PostgreSQL version runs on each server (pg_static)?",
               q(f"max by (short_version) (pg_static{{{S}}})", "{{short_version}}"), "none", no_threshold(),
               textMode="name"), w=4, h=8)
    g.add(stat("Uptime", "Since when has the server been running? A short uptime is a restart (a crash, an "
               "OOM kill of a backend, a failover): caches are cold.",
               f"min(time() - pg_postmaster_start_time_seconds{{{S}}})", "s", no_threshold()), w=4, h=8)
    setting = "max by (server) (pg_settings_{}{{" + S + "}})"
    g.add(table("Settings", "The settings the checklist's findings depend on, per server: connection slots, "
                "memory, timeouts (0 means none) and the slow-query log (-1 means off).", [
        q(setting.format("max_connections")),
        q(setting.format("superuser_reserved_connections")),
        q(setting.format("shared_buffers_bytes")),
        q(setting.format("work_mem_bytes")),
        q(setting.format("effective_cache_size_bytes")),
        q(setting.format("statement_timeout_seconds")),
        q(setting.format("idle_in_transaction_session_timeout_seconds")),
        q(setting.format("log_min_duration_statement_seconds")),
    ], "short", columns={
        "Value #A": ("max_connections", "short"),
        "Value #B": ("superuser reserved", "short"),
        "Value #C": ("shared_buffers", "bytes"),
        "Value #D": ("work_mem", "bytes"),
        "Value #E": ("effective_cache_size", "bytes"),
        "Value #F": ("statement_timeout", "s"),
        "Value #G": ("idle_in_transaction timeout", "s"),
        "Value #H": ("log_min_duration_statement", "s"),
    }), w=16, h=8)


def _vacuum_and_wraparound(g: Grid) -> None:
    g.row("Vacuum and wraparound")
    g.add(timeseries("Transaction ID age by database", "How close is each database to transaction ID "
                     "wraparound? Autovacuum freezes from 200 million; past the dashed line "
                     "PostgresXidWraparound fires, and at 2^31 writes stop.", [
        (f"max by (server, datname) (pg_database_datfrozenxid_age{{{S}}})", "{{server}} {{datname}}"),
    ], "short", thresholds=too_high(POSTGRES.xid_age)), w=8)
    g.add(timeseries("Longest without vacuum (top 5 tables)", "Time since each table was last vacuumed "
                     "(by hand or autovacuum); a table with dead rows past the dashed line is what "
                     "PostgresVacuumBehind looks for.", [
        (f"topk(5, max by (server, datname, schemaname, relname) "
         f"(pg_stat_user_tables_last_vacuum_age_seconds{{{S}}}))", "{{datname}}.{{relname}}"),
    ], "s", thresholds=too_high(POSTGRES.vacuum_age_seconds)), w=8)
    g.add(timeseries("Longest without analyze (top 5 tables)", "Time since each table's statistics were "
                     "refreshed: stale statistics mislead the planner into bad plans.", [
        (f"topk(5, max by (server, datname, schemaname, relname) "
         f"(pg_stat_user_tables_last_analyze_age_seconds{{{S}}}))", "{{datname}}.{{relname}}"),
    ], "s"), w=8)
    g.add(timeseries("Recovery conflicts by cause", "Queries a standby canceled to replay WAL (0 on a "
                     "primary): snapshot conflicts mean long queries on the replica meet vacuum's cleanup "
                     "(hot_standby_feedback, max_standby_streaming_delay).", [
        (f"sum(rate(pg_stat_database_conflicts_confl_{cause}{{{S}}}[{WINDOW}]))", cause)
        for cause in ("snapshot", "lock", "bufferpin", "deadlock", "tablespace")
    ], "ops"), w=24)


def build() -> Dashboard:
    g = Grid()
    _availability_and_connections(g)
    _server_and_settings(g)
    _throughput_and_cache(g)
    _statements(g)
    _tables_and_indexes(g)
    _locks_replication_checkpoints(g)
    _vacuum_and_wraparound(g)
    return dashboard("postgres", __doc__.split("\n")[0], g, [
        label_variable("job", "job", "pg_up"),
        label_variable("instance", "instance", "pg_up", parents=["job"]),
        label_variable("server", "server", "pg_up", parents=["job", "instance"]),
    ])
