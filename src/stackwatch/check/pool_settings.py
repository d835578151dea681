"""``app.pool_settings``: the client pools' configuration against the checklist's guidance.

``instrument_pool`` exports each pool's settings as ``db_client_connection_pool_info`` (min, max,
idle timeout, connect timeout). The seed's pool has ``max: 20, min: 5``, closes idle connections
after 30 s and errors when it cannot connect in 2 s, and sizes a pool at 20-30 connections per
app instance. A pool without a connect timeout (or a very long one) makes requests hang when the
database is unreachable instead of failing fast: that fails; more connections than the guidance
per instance only queue inside PostgreSQL: that warns.
"""

from __future__ import annotations

from stackwatch.thresholds import POSTGRES, PoolThresholds

from .items import POOL_SETTINGS
from .model import Finding, Status
from .promapi import Prometheus

__all__ = ["pool_settings_finding"]

_QUERY = ("max by (job, pool_name, min, max, idle_timeout_seconds, connect_timeout_seconds) "
          "(db_client_connection_pool_info)")
_UNKNOWN_FIX = "wrap each pool with stackwatch.instrumentation.instrument_pool and have Prometheus scrape the service"


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def pool_settings_finding(prom: Prometheus, pool: PoolThresholds) -> Finding:
    rows = prom.query(_QUERY)
    if not rows:
        return POOL_SETTINGS.finding(Status.UNKNOWN, "no db_client_connection_pool_info series", _UNKNOWN_FIX)
    hanging, oversized, listed = [], [], []
    for labels, _ in sorted(rows, key=lambda r: (r[0].get("job", ""), r[0].get("pool_name", ""))):
        name = f"{labels.get('pool_name', '')} in {labels.get('job', '?')}"
        settings = {k: labels.get(k, "") or "none" for k in ("min", "max", "idle_timeout_seconds",
                                                              "connect_timeout_seconds")}
        listed.append(f"{name}: min {settings['min']}, max {settings['max']}, idle timeout "
                      f"{settings['idle_timeout_seconds']}s, connect timeout {settings['connect_timeout_seconds']}s")
        connect, maximum = _number(labels.get("connect_timeout_seconds", "")), _number(labels.get("max", ""))
        if connect is None or connect <= 0 or connect > pool.connect_timeout_seconds:
            hanging.append(name)
        if maximum is not None and maximum > POSTGRES.pool_connections_per_instance:
            oversized.append(name)
    evidence = "; ".join(listed)
    if hanging:
        return POOL_SETTINGS.finding(
            Status.FAIL, f"{evidence} (no connect timeout up to {pool.connect_timeout_seconds:g}s: "
            f"{', '.join(hanging)})", "give the pool a connect/acquire timeout (the checklist's 2 s: psycopg_pool "
            "timeout=2, SQLAlchemy pool_timeout=2, redis-py socket_connect_timeout=2) so requests fail fast")
    if oversized:
        return POOL_SETTINGS.finding(
            Status.WARN, f"{evidence} (more than {POSTGRES.pool_connections_per_instance} connections per "
            f"instance: {', '.join(oversized)})", "size pools near 20-30 connections per app instance "
            "((cores x 2) + spindles); more only queue inside PostgreSQL")
    return POOL_SETTINGS.finding(Status.PASS, evidence)
