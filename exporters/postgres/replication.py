"""Replication from both ends: per-replica lag on a primary, and the replica's own lag.

On a replica, ``now() - pg_last_xact_replay_timestamp()`` alone grows forever while the primary
is idle (nothing to replay, so the last replay time stands still); the lag is therefore 0
whenever everything received has been replayed, as postgres_exporter does. On a primary the
``*_lag`` intervals of pg_stat_replication turn NULL once a caught-up replica sees no new WAL,
which is exported as 0. A standby whose WAL receiver is gone (primary unreachable, bad
``primary_conninfo``) replays what it received and then reports a lag of 0 too, so the receiver's
state is exported on its own (``pg_stat_wal_receiver_streaming``). Four small queries: this
server's state, its WAL receiver (standbys only), its replicas, its slots (also under
postgres_exporter's ``pg_replication_slots_*`` names).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client.core import Metric

from stackwatch.core.postgres.source import PostgresSource

from ..collector import Collector, Tier
from ..families import gauge

__all__ = ["ReplicationCollector", "per_replica"]

# the current WAL position of this server, valid on a primary and on a (cascading) replica
_CURRENT_LSN = "CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END"

STATE_SQL = """
SELECT pg_is_in_recovery() AS is_replica,
       CASE WHEN NOT pg_is_in_recovery() THEN 0
            WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())
       END::float8 AS lag_seconds,
       extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS last_replay_seconds
"""

# no row at all while no WAL receiver runs (it is restarted every wal_retrieve_retry_interval)
WAL_RECEIVER_SQL = "SELECT status FROM pg_stat_wal_receiver"

REPLICAS_SQL = f"""
SELECT coalesce(application_name, '') AS application_name,
       coalesce(host(client_addr), '') AS client_addr,
       coalesce(r.state, '') AS state, coalesce(s.slot_name, '') AS slot_name,
       pg_wal_lsn_diff({_CURRENT_LSN}, '0/0')::float8 AS current_wal_lsn_bytes,
       coalesce(extract(epoch FROM write_lag), 0)::float8 AS write_lag,
       coalesce(extract(epoch FROM flush_lag), 0)::float8 AS flush_lag,
       coalesce(extract(epoch FROM replay_lag), 0)::float8 AS replay_lag,
       greatest(0, pg_wal_lsn_diff({_CURRENT_LSN}, replay_lsn))::float8 AS replay_lag_bytes
FROM pg_stat_replication AS r LEFT JOIN pg_replication_slots AS s ON s.active_pid = r.pid
"""

# a slot that never reserved WAL (restart_lsn NULL) retains nothing
SLOTS_SQL = f"""
SELECT slot_name, slot_type, coalesce(database, '') AS database, active,
       coalesce(greatest(0, pg_wal_lsn_diff({_CURRENT_LSN}, restart_lsn)), 0)::float8 AS retained_bytes,
       pg_wal_lsn_diff({_CURRENT_LSN}, '0/0')::float8 AS current_wal_lsn_bytes,
       coalesce(pg_wal_lsn_diff(confirmed_flush_lsn, '0/0'), 0)::float8 AS confirmed_flush_lsn_bytes,
       safe_wal_size, wal_status
FROM pg_replication_slots ORDER BY slot_name
"""

LAGS = ("write_lag", "flush_lag", "replay_lag", "replay_lag_bytes")


def per_replica(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, float]]:
    """Lags keyed by (application_name, client_addr); replicas sharing both keep the worst
    value, so the series stay unique (two standbys on one host with the default name)."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for row in rows:
        key = (row["application_name"], row["client_addr"])
        worst = out.setdefault(key, {lag: 0.0 for lag in LAGS})
        for lag in LAGS:
            if row[lag] is not None:
                worst[lag] = max(worst[lag], row[lag])
    return out


def peer_replica_families(rows: Iterable[dict[str, Any]]) -> list[Metric]:
    """postgres_exporter's per-replica families, keyed by its labels (replicas sharing all four
    keep the largest values, so series stay unique)."""
    labels = ["application_name", "client_addr", "state", "slot_name"]
    current = gauge("pg_stat_replication_pg_current_wal_lsn_bytes", "Current WAL position of this server in bytes.",
                    labels)
    diff = gauge("pg_stat_replication_pg_wal_lsn_diff", "WAL bytes written here and not yet replayed by the replica.",
                 labels)
    merged: dict[tuple[str, ...], tuple[float, float]] = {}
    for row in rows:
        key = tuple(row[k] for k in labels)
        before = merged.get(key, (0.0, 0.0))
        merged[key] = (max(before[0], row["current_wal_lsn_bytes"]), max(before[1], row["replay_lag_bytes"]))
    for key, (position, lag) in sorted(merged.items()):
        current.add_metric(list(key), position)
        diff.add_metric(list(key), lag)
    return [current, diff]


def peer_slot_families(rows: Iterable[dict[str, Any]]) -> list[Metric]:
    """The slots under postgres_exporter's names (``database`` is '' for a physical slot): its
    ``pg_replication_slots_*``, and the per-type families also under the ``pg_replication_slot_*``
    names that 0.15 to 0.19 used before 0.20 renamed them."""
    rows = list(rows)
    by_database, by_type = ["slot_name", "database"], ["slot_name", "slot_type"]
    active = gauge("pg_replication_slots_active", "1 when the slot is in use.", by_database)
    diff = gauge("pg_replication_slots_pg_wal_lsn_diff",
                 "WAL bytes between the current position and the slot's restart_lsn.", by_database)
    for row in rows:
        slot = [row["slot_name"], row["database"]]
        active.add_metric(slot, 1.0 if row["active"] else 0.0)
        diff.add_metric(slot, row["retained_bytes"])
    families: list[Metric] = [active, diff]
    for prefix in ("pg_replication_slots_", "pg_replication_slot_"):
        current = gauge(prefix + "slot_current_wal_lsn", "Current WAL position in bytes.", by_type)
        flushed = gauge(prefix + "slot_confirmed_flush_lsn",
                        "Last position a logical slot's consumer confirmed, in bytes (0 for a physical slot).",
                        by_type)
        is_active = gauge(prefix + "slot_is_active", "1 when the slot is in use.", by_type)
        safe = gauge(prefix + "safe_wal_size_bytes", "WAL bytes that can still be written before the slot is "
                     "lost (absent without max_slot_wal_keep_size).", by_type)
        status = gauge(prefix + "wal_status", "Value 1; whether the WAL the slot claims is still there "
                       "(reserved, extended, unreserved, lost).", by_type + ["wal_status"])
        for row in rows:
            typed = [row["slot_name"], row["slot_type"]]
            current.add_metric(typed, row["current_wal_lsn_bytes"])
            flushed.add_metric(typed, row["confirmed_flush_lsn_bytes"])
            is_active.add_metric(typed, 1.0 if row["active"] else 0.0)
            if row["safe_wal_size"] is not None:
                safe.add_metric(typed, row["safe_wal_size"])
            if row["wal_status"] is not None:
                status.add_metric(typed + [row["wal_status"]], 1.0)
        families += [current, flushed, is_active, safe, status]
    return families


class ReplicationCollector(Collector[PostgresSource]):
    name = "replication"
    tier = Tier.FAST

    def collect(self, source: PostgresSource) -> list[Metric]:
        state = source.rows(STATE_SQL)[0]
        is_replica = gauge("pg_replication_is_replica", "1 when the server is a standby (in recovery).")
        is_replica.add_metric([], 1.0 if state["is_replica"] else 0.0)
        lag = gauge("pg_replication_lag_seconds", "Replay lag of this standby; 0 when it has replayed all it "
                    "received (and on a primary); absent before anything was replayed.")
        if state["lag_seconds"] is not None:  # NULL: nothing replayed since the standby started
            lag.add_metric([], max(0.0, state["lag_seconds"]))
        last_replay = gauge("pg_replication_last_replay_seconds", "Seconds since the last replayed transaction "
                            "(grows while the primary is idle); absent on a primary and before any replay.")
        if state["last_replay_seconds"] is not None:
            last_replay.add_metric([], max(0.0, state["last_replay_seconds"]))
        families: list[Metric] = [is_replica, lag, last_replay]
        if state["is_replica"]:
            receiver = gauge("pg_stat_wal_receiver_streaming",
                             "1 while this standby's WAL receiver streams from its upstream, 0 when it does not "
                             "(no receiver process, or starting up, stopping, waiting).")
            streaming = any(row["status"] == "streaming" for row in source.rows(WAL_RECEIVER_SQL))
            receiver.add_metric([], 1.0 if streaming else 0.0)
            families.append(receiver)
        labels = ["application_name", "client_addr"]
        lag_families = {
            "write_lag": gauge("pg_stat_replication_write_lag_seconds",
                               "Time until the replica wrote recent WAL (0 when caught up and idle).", labels),
            "flush_lag": gauge("pg_stat_replication_flush_lag_seconds",
                               "Time until the replica flushed recent WAL (0 when caught up and idle).", labels),
            "replay_lag": gauge("pg_stat_replication_replay_lag_seconds",
                                "Time until the replica replayed recent WAL (0 when caught up and idle).", labels),
            "replay_lag_bytes": gauge("pg_stat_replication_replay_lag_bytes",
                                      "WAL bytes written here and not yet replayed by the replica.", labels),
        }
        replicas = source.rows(REPLICAS_SQL)
        for key, lags in sorted(per_replica(replicas).items()):
            for column, family in lag_families.items():
                family.add_metric(list(key), lags[column])
        families += list(lag_families.values()) + peer_replica_families(replicas)
        slots = gauge("pg_replication_slot_retained_wal_bytes",
                      "WAL kept on disk for the replication slot (from its restart_lsn).", ["slot_name", "active"])
        rows = source.rows(SLOTS_SQL)
        for row in rows:
            slots.add_metric([row["slot_name"], "true" if row["active"] else "false"], row["retained_bytes"])
        return families + [slots] + peer_slot_families(rows)
