"""Key lookups without the TTL lookups, which Redis counts as hits: the exporter's windowed hit
ratio and ``stackwatch check`` leave them out alike, as the recording rules do."""

from __future__ import annotations

from stackwatch.core.redis.info import Info, command_stats, parse_number
from stackwatch.promql import TTL_COMMANDS

__all__ = ["client_lookups", "ttl_lookups"]


def ttl_lookups(info: Info) -> float:
    """``PTTL`` + ``TTL`` calls since the server started (commandstats of the same INFO)."""
    stats = command_stats(info)
    return sum(parse_number(stats.get(cmd, {}).get("calls", "")) or 0.0 for cmd in TTL_COMMANDS)


def client_lookups(hits: float, misses: float, ttl: float) -> tuple[float, float] | None:
    """Hits and misses of a window without its ``ttl`` TTL lookups, or None when counters went
    down (a restart) or no other lookup happened. Every TTL lookup is taken off the hits: the
    few that missed (a key gone between SCAN and PTTL) then lower the ratio, never raise it."""
    if hits < 0 or misses < 0 or ttl < 0:
        return None
    hits = max(0.0, hits - ttl)
    return (hits, misses) if hits + misses > 0 else None
