"""Calls, time and failures per command (INFO commandstats).

Labels use Redis's own command names, ``client|setname`` for subcommands on Redis 7, as
redis_exporter does; the command table bounds the label values.
"""

from __future__ import annotations

from prometheus_client.core import Metric

from stackwatch.core.redis.info import command_stats, parse_number
from stackwatch.core.redis.source import RedisSource

from ..collector import Collector, Tier
from ..families import counter

__all__ = ["CommandsCollector"]

# commandstats field -> (family, help, scale)
_FAMILIES = {
    "calls": ("redis_commands_total", "Calls per command.", 1.0),
    "usec": ("redis_commands_duration_seconds_total", "Seconds spent executing each command.", 1e-6),
    "rejected_calls": ("redis_commands_rejected_calls_total", "Calls rejected before execution (Redis 6.2+).", 1.0),
    "failed_calls": ("redis_commands_failed_calls_total", "Calls that failed during execution (Redis 6.2+).", 1.0),
}


class CommandsCollector(Collector[RedisSource]):
    name = "commands"
    tier = Tier.FAST

    def collect(self, source: RedisSource) -> list[Metric]:
        families = {field: counter(name, help, ["cmd"]) for field, (name, help, _) in _FAMILIES.items()}
        for cmd, stats in command_stats(source.info()).items():
            for field, family in families.items():
                value = parse_number(stats.get(field, ""))
                if value is not None:
                    family.add_metric([cmd], value * _FAMILIES[field][2])
        return [family for family in families.values() if family.samples]
