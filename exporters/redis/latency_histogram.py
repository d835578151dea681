"""Per-command latency histograms (``LATENCY HISTOGRAM``, Redis 7+), redis_exporter's
``redis_commands_latencies_usec{cmd}``.

Redis keeps a histogram per command with about power-of-two microsecond buckets and cumulative
counts; it is exported as it is (bounds in microseconds, as redis_exporter does), with the
command's calls as the count and its commandstats microseconds (subcommands included) as the sum.
One ``LATENCY HISTOGRAM`` per fast poll. Redis 6 has no such command and a user without
``+latency|histogram`` may not run it: the collector is then disabled with the reason
``unsupported_version`` or ``permission``, and the percentiles of ``latency.py`` remain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis
from prometheus_client.core import HistogramMetricFamily, Metric

from stackwatch.core.redis.info import command_stats, parse_number
from stackwatch.core.redis.source import RedisSource

from ..collector import Collector, CollectorDisabled, Tier

__all__ = ["LatencyHistogramCollector", "latency_histograms"]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(value: Any) -> dict[Any, Any]:
    """A RESP map as a dict, whether the client parsed it (redis-py does) or left a flat list."""
    return dict(value) if isinstance(value, Mapping) else dict(zip(value[::2], value[1::2]))


def latency_histograms(reply: Any, calls: Mapping[str, Mapping[str, str]]) -> HistogramMetricFamily:
    """``redis_commands_latencies_usec{cmd}`` from a ``LATENCY HISTOGRAM`` reply (per command:
    ``calls`` and ``histogram_usec``, bucket bound -> cumulative count) and commandstats."""
    family = HistogramMetricFamily("redis_commands_latencies_usec", "Latency histogram of each command in "
                                   "microseconds (LATENCY HISTOGRAM).", labels=["cmd"])
    for cmd_raw, details in sorted(_pairs(reply).items()):
        cmd, fields = _text(cmd_raw), {_text(k): v for k, v in _pairs(details).items()}
        buckets = [(str(float(bound)), float(count))
                   for bound, count in sorted(_pairs(fields.get("histogram_usec") or {}).items())]
        usec = sum(parse_number(stats.get("usec", "")) or 0.0 for name, stats in calls.items()
                   if name == cmd or name.startswith(cmd + "|"))
        family.add_metric([cmd], buckets + [("+Inf", float(fields.get("calls") or 0))], usec)
    return family


class LatencyHistogramCollector(Collector[RedisSource]):
    name = "latency_histogram"
    tier = Tier.FAST

    def collect(self, source: RedisSource) -> list[Metric]:
        try:
            reply = source.client.execute_command("LATENCY", "HISTOGRAM")
        except redis.exceptions.NoPermissionError:
            raise CollectorDisabled("permission") from None
        except redis.ResponseError as error:
            if "unknown" in str(error).lower():  # Redis 6: no such subcommand
                raise CollectorDisabled("unsupported_version") from None
            raise
        return [latency_histograms(reply, command_stats(source.info()))]
