"""``pg.read_share``: does a read-heavy primary have read replicas, and do they keep up?

The checklist puts read replicas behind "read-heavy workloads (90%+ reads)". The read share is
the SELECTs among the application's statement calls over the slow tier's window (the exporter's
``pg_stat_statements_calls_total{command}``: the busiest statements, maintenance and monitoring
left out). A primary at or above the share with no standby streaming from it warns (consider a
replica); one with standbys is judged on their replay lag (``pg_stat_replication_replay_lag_seconds``)
against the replication-lag threshold. Standbys themselves are not judged. Standard library only.
"""

from __future__ import annotations

from ..thresholds import POSTGRES, SLOW_TIER_WINDOW, UNJUDGED_COMMANDS, PostgresThresholds
from .items import READ_SHARE
from .model import Finding, Status
from .promapi import Prometheus

__all__ = ["read_share_finding"]

_BY = "server"
_CALLS = "pg_stat_statements_calls_total"


def _by_server(prom: Prometheus, promql: str) -> dict[str, float]:
    return {labels.get("server", "?"): value for labels, value in prom.query(promql)}


def read_share_finding(prom: Prometheus, t: PostgresThresholds = POSTGRES) -> Finding:
    """The worst primary's verdict; ``unknown`` when Prometheus has no statement series."""
    judged = f'command!~"{"|".join(UNJUDGED_COMMANDS)}"'
    calls = _by_server(prom, f"sum by ({_BY}) (rate({_CALLS}{{{judged}}}[{SLOW_TIER_WINDOW}]))")
    if not calls:
        return READ_SHARE.finding(Status.UNKNOWN, f"no {_CALLS} series in Prometheus", "run the stackwatch "
                                  "exporter's statements collector (pg_stat_statements) and have Prometheus scrape it")
    reads = _by_server(prom, f'sum by ({_BY}) (rate({_CALLS}{{command="select"}}[{SLOW_TIER_WINDOW}]))')
    standbys = set(_by_server(prom, f"max by ({_BY}) (pg_replication_is_replica) == 1"))
    replicas = _by_server(prom, f"count by ({_BY}) (pg_stat_replication_replay_lag_seconds)")
    lags = _by_server(prom, f"max by ({_BY}) (pg_stat_replication_replay_lag_seconds)")
    lines: list[tuple[Status, str]] = []
    for server, total in sorted(calls.items()):
        if server in standbys or total <= 0:
            continue
        share = reads.get(server, 0.0) / total
        head = f"{server}: {share:.0%} of {total:.1f} statement calls/s are SELECTs"
        if server in replicas:
            lag = lags.get(server, 0.0)
            status = Status.FAIL if lag > t.replication_lag_seconds else Status.PASS
            lines.append((status, f"{head}; {replicas[server]:.0f} replica(s), replay lag up to {lag:.1f}s"))
        elif share >= t.read_heavy_share:
            lines.append((Status.WARN, f"{head}, and no replica streams from it"))
        else:
            lines.append((Status.PASS, f"{head}: not read-heavy, a primary alone serves it"))
    if not lines:
        return READ_SHARE.finding(Status.UNKNOWN, f"no statement calls on a primary over {SLOW_TIER_WINDOW}",
                                  "run the check after the application has served traffic")
    scope = (f" (over {SLOW_TIER_WINDOW}; read-heavy from {t.read_heavy_share:.0%}, replica lag threshold "
             f"{t.replication_lag_seconds:g}s)")
    evidence = "; ".join(text for _, text in lines) + scope
    statuses = {status for status, _ in lines}
    if Status.FAIL in statuses:
        return READ_SHARE.finding(Status.FAIL, evidence, "find what holds the replicas back (long queries on them "
                                  "with hot_standby_feedback, network, disk) before sending more reads to them")
    if Status.WARN in statuses:
        return READ_SHARE.finding(Status.WARN, evidence, "consider a read replica and send the reads that tolerate "
                                  "a little lag (listings, reports, dashboards) to it; writes stay on the primary")
    return READ_SHARE.finding(Status.PASS, evidence)
