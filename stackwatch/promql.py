"""PromQL fragments shared by the alert rules and ``stackwatch check``.

Standard library only: imported at runtime by the CLI.
"""

from __future__ import annotations

__all__ = ["n_plus_one_detections", "pool_wait_mean", "redis_lookup_rate"]


def redis_lookup_rate(kind: str, by: str | None, window: str, selector: str = "") -> str:
    """Per-second Redis key lookups of ``kind`` (``hits`` or ``misses``) made by clients.

    Redis counts the exporter's TTL sampler (one PTTL per sampled key) as keyspace hits and
    misses; the exporter reports those as ``redis_exporter_keyspace_<kind>_total`` so that a
    quiet cache's hit rate is not flattered by the sampler. Without that series (another
    exporter) the raw rate is used as it is. ``by=None`` sums everything; ``selector`` (``{...}``)
    narrows both series.
    """
    total = "sum" if by is None else f"sum by ({by})"
    raw = f"{total} (rate(redis_keyspace_{kind}_total{selector}[{window}]))"
    own = f"{total} (rate(redis_exporter_keyspace_{kind}_total{selector}[{window}]))"
    return f"({raw} - ({own} or {raw} * 0))"


def n_plus_one_detections(window: str, by: str | None = None, selector: str = "") -> str:
    """N+1 detections (``db_client_n_plus_one_total``) in the last ``window``, summed ``by``.

    The instrumentation creates a route's counter with its first detection, so a series born
    inside the window starts at its first value and ``increase()`` alone sees nothing of it
    (or only what came after). Series that existed a window ago count their increase; younger
    ones count their whole value.
    """
    series = f"db_client_n_plus_one_total{selector}"
    total = "sum" if by is None else f"sum by ({by})"
    return f"{total} ((increase({series}[{window}]) and {series} offset {window}) or {series})"


def pool_wait_mean(by: str, window: str, selector: str = "") -> str:
    """Mean seconds a caller waited for a connection from a client pool over ``window``, ``by``.

    Pools that handed out no connection in the window are left out (not NaN).
    """
    family = "db_client_connection_wait_time_seconds"
    return (f"sum by ({by}) (rate({family}_sum{selector}[{window}]))"
            f" / sum by ({by}) (rate({family}_count{selector}[{window}]) > 0)")
