"""Per-command latency percentiles in seconds (INFO latencystats, Redis 7+).

Redis 7 keeps a latency histogram per command and reports the percentiles listed in
``latency-tracking-info-percentiles`` (default 50, 99, 99.9). They become
``redis_command_latency_seconds{cmd,quantile}`` with Prometheus quantile labels
(``p99.9`` -> ``0.999``), and redis_exporter's summary ``redis_latency_percentiles_usec{cmd}`` in
its own form (microseconds, ``quantile="99.9"``, ``_sum``/``_count`` from commandstats; its
histogram is in ``latency_histogram.py``). Servers
without the section (Redis 6) disable the collector with the reason ``unsupported_version``; with
``latency-tracking no`` the section is empty, so are the families.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from prometheus_client.core import Metric

from stackwatch.core.redis.info import command_stats, parse_fields, parse_number
from stackwatch.core.redis.source import RedisSource

from ..collector import Collector, CollectorDisabled, Tier
from ..families import gauge

__all__ = ["LatencyCollector", "quantile_label"]

_PREFIX = "latency_percentiles_usec_"


def quantile_label(percentile: str) -> str | None:
    """``p99.9`` -> ``0.999``; None when it is not a percentile between 0 and 100."""
    try:
        value = Decimal(percentile.removeprefix("p"))
    except InvalidOperation:
        return None
    if not value.is_finite() or not 0 <= value <= 100:
        return None
    return format((value / 100).normalize(), "f")


class LatencyCollector(Collector[RedisSource]):
    name = "latency"
    tier = Tier.FAST

    def collect(self, source: RedisSource) -> list[Metric]:
        info = source.info()
        if not info.has_section("latencystats"):
            raise CollectorDisabled("unsupported_version")
        family = gauge("redis_command_latency_seconds",
                       "Latency percentile of each command since the stats were reset (latencystats).",
                       ["cmd", "quantile"])
        summary = Metric("redis_latency_percentiles_usec",
                         "Latency percentiles of each command in microseconds (redis_exporter's summary).",
                         "summary")
        calls = command_stats(info)
        for key, value in info.section("latencystats").items():
            if not key.startswith(_PREFIX):
                continue
            cmd = key[len(_PREFIX):]
            for percentile, usec in parse_fields(value).items():
                quantile, number = quantile_label(percentile), parse_number(usec)
                if quantile is not None and number is not None:
                    family.add_metric([cmd, quantile], number * 1e-6)
                    summary.add_sample(summary.name, {"cmd": cmd, "quantile": percentile.removeprefix("p")}, number)
            stats = calls.get(cmd, {})
            for suffix, field in (("_sum", "usec"), ("_count", "calls")):
                total = parse_number(stats.get(field, ""))
                if total is not None:
                    summary.add_sample(summary.name + suffix, {"cmd": cmd}, total)
        return [family, summary]
