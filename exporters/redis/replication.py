"""Replication role, replicas and how far behind each replica is (INFO replication).

On a primary, every replica line gives its acknowledged offset; the gap to
``master_repl_offset`` is ``redis_replication_offset_lag_bytes{replica="ip:port"}``: bytes of
writes the replica has not confirmed. On a replica, the link to its primary is reported.
Both ``slaveN``/``replicaN`` spellings and roles are accepted (Redis, Valkey).
"""

from __future__ import annotations

import re

from prometheus_client.core import Metric

from stackwatch.core.redis.info import Info, parse_fields, parse_number
from stackwatch.core.redis.source import RedisSource

from ..collector import Collector, Tier
from ..families import gauge
from .fields import Field, families_from, single

__all__ = ["ReplicationCollector"]

FIELDS = (
    Field("connected_slaves", "redis_connected_slaves", "Replicas connected to this server."),
    Field("master_repl_offset", "redis_master_repl_offset", "Replication offset of this server."),
    Field("repl_backlog_active", "redis_repl_backlog_is_active", "Whether the replication backlog is active."),
    Field("repl_backlog_size", "redis_replication_backlog_bytes", "Size of the replication backlog."),
    Field("repl_backlog_first_byte_offset", "redis_repl_backlog_first_byte_offset",
          "Master offset of the first byte in the backlog."),
    Field("repl_backlog_histlen", "redis_repl_backlog_history_bytes", "Bytes of data in the backlog."),
    Field("second_repl_offset", "redis_second_repl_offset", "Offset up to which a previous replication id is valid."),
    Field("slave_expires_tracked_keys", "redis_slave_expires_tracked_keys",
          "Keys tracked for expiry on a writable replica."),
    Field("sync_full", "redis_replica_resyncs_full", "Full resynchronizations with replicas."),
    Field("sync_partial_ok", "redis_replica_partial_resync_accepted", "Partial resynchronizations accepted."),
    Field("sync_partial_err", "redis_replica_partial_resync_denied", "Partial resynchronizations denied."),
)

_REPLICA_LINE = re.compile(r"^(slave|replica)\d+$")
_REPLICA_LABELS = ["slave_ip", "slave_port", "slave_state"]
_MASTER_LABELS = ["master_host", "master_port"]


def _replicas(info: Info) -> list[Metric]:
    offset_bytes = gauge("redis_connected_slave_offset_bytes", "Offset acknowledged by each replica.",
                         _REPLICA_LABELS)
    lag_seconds = gauge("redis_connected_slave_lag_seconds", "Seconds since each replica's last ack.",
                        _REPLICA_LABELS)
    lag_bytes = gauge("redis_replication_offset_lag_bytes",
                      "master_repl_offset minus the replica's acknowledged offset.", ["replica"])
    primary = info.number("master_repl_offset")
    for key, value in info.section("replication").items():
        if not _REPLICA_LINE.match(key):
            continue
        fields = parse_fields(value)
        labels = [fields.get("ip", ""), fields.get("port", ""), fields.get("state", "")]
        offset, lag = parse_number(fields.get("offset", "")), parse_number(fields.get("lag", ""))
        if offset is not None:
            offset_bytes.add_metric(labels, offset)
            if primary is not None:
                lag_bytes.add_metric([f"{labels[0]}:{labels[1]}"], max(0.0, primary - offset))
        if lag is not None:
            lag_seconds.add_metric(labels, lag)
    return [offset_bytes, lag_seconds, lag_bytes]


def _primary_link(info: Info) -> list[Metric]:
    labels = [info.text("master_host") or "", info.text("master_port") or ""]
    out: list[Metric] = []
    link_up = info.text("master_link_status")
    if link_up is not None:
        family = gauge("redis_master_link_up", "Whether the link to the primary is up.", _MASTER_LABELS)
        family.add_metric(labels, float(link_up == "up"))
        out.append(family)
    for key, name, help in (
        ("master_last_io_seconds_ago", "redis_master_last_io_seconds_ago",
         "Seconds since the last I/O with the primary."),
        ("master_sync_in_progress", "redis_master_sync_in_progress",
         "Whether a full sync from the primary is running."),
        ("slave_repl_offset", "redis_slave_repl_offset", "Replication offset processed by this replica."),
        ("master_link_down_since_seconds", "redis_master_link_down_since_seconds",
         "Seconds the link to the primary has been down."),
    ):
        value = info.number(key)
        if value is not None:
            family = gauge(name, help, _MASTER_LABELS)
            family.add_metric(labels, value)
            out.append(family)
    return out


class ReplicationCollector(Collector[RedisSource]):
    name = "replication"
    tier = Tier.FAST

    def collect(self, source: RedisSource) -> list[Metric]:
        info = source.info()
        role = info.text("role") or ""
        is_replica = role in ("slave", "replica")
        families = families_from(info, FIELDS)
        families.append(single("redis_replication_is_replica", "1 on a replica, 0 on a primary.", float(is_replica)))
        families += _replicas(info)
        if is_replica:
            families += _primary_link(info)
        return families
