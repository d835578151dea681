"""Slow log entries per command over the polling window (``SLOWLOG GET`` / ``SLOWLOG LEN``).

The collector remembers the newest entry id it has seen and counts only entries after it,
so ``redis_slowlog_entries{cmd}`` is "new slow commands since the previous poll" however long
the log is. The first poll only sets that baseline. Entry ids restart with the server, which
is noticed by INFO's ``run_id`` changing; every entry still in the log then counts as new.
Command labels match ``redis_commands_total`` (``config|get`` style when commandstats has it).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from prometheus_client.core import Metric

from stackwatch.core.redis.info import command_stats
from stackwatch.core.redis.source import RedisSource

from ..collector import Collector, Tier
from ..families import gauge
from .fields import single

__all__ = ["SlowlogCollector", "command_label"]


def command_label(command: bytes | str, known: set[str]) -> str:
    """``CONFIG GET maxmemory`` -> ``config|get`` when that name is known, else ``config``."""
    text = command.decode("utf-8", "replace") if isinstance(command, bytes) else command
    words = text.lower().split()
    if not words:
        return "unknown"
    if len(words) > 1 and f"{words[0]}|{words[1]}" in known:
        return f"{words[0]}|{words[1]}"
    return words[0]


class SlowlogCollector(Collector[RedisSource]):
    name = "slowlog"
    tier = Tier.FAST

    def __init__(self) -> None:
        self._last_id: int | None = None
        self._run_id: str | None = None

    def _new_entries(self, entries: list[dict[str, Any]], run_id: str | None) -> list[dict[str, Any]]:
        newest = max((int(e["id"]) for e in entries), default=None)
        if self._last_id is None:
            new: list[dict[str, Any]] = []
        elif run_id != self._run_id:
            new = entries
        else:
            new = [e for e in entries if int(e["id"]) > self._last_id]
        if newest is not None or run_id != self._run_id:
            self._last_id = -1 if newest is None else newest
        self._run_id = run_id
        return new

    def collect(self, source: RedisSource) -> list[Metric]:
        info = source.info()
        entries = source.client.slowlog_get(source.options.slowlog_fetch)
        length = source.client.slowlog_len()
        known = set(command_stats(info))
        new = self._new_entries(entries, info.text("run_id"))
        counts = Counter(command_label(e.get("command", b""), known) for e in new)
        window = gauge("redis_slowlog_entries", "Slow log entries added since the previous poll, per command.",
                       ["cmd"])
        for cmd, count in sorted(counts.items()):
            window.add_metric([cmd], count)
        families: list[Metric] = [window, single("redis_slowlog_length", "Entries in the slow log.", length)]
        newest = max(entries, key=lambda e: int(e["id"]), default={"id": 0, "duration": 0})
        families.append(single("redis_slowlog_last_id", "Id of the newest slow log entry (0 when empty).",
                               int(newest["id"])))
        families.append(single("redis_last_slow_execution_duration_seconds",
                               "Duration of the newest slow log entry (0 when empty).", int(newest["duration"]) * 1e-6))
        return families
