"""The few settings the checklist needs, read with ``CONFIG GET`` key by key (never ``CONFIG GET *``).

Managed services often rename or forbid ``CONFIG``; the collector is then disabled with the
reason ``config_unavailable`` and the INFO-based collectors carry on (``maxmemory`` and
``maxclients`` are in INFO too).
"""

from __future__ import annotations

import redis
from prometheus_client.core import Metric

from stackwatch.core.redis.info import parse_number
from stackwatch.core.redis.source import RedisSource

from ..collector import Collector, CollectorDisabled, Tier
from ..families import gauge
from ..families import info as info_family
from .fields import single

__all__ = ["ConfigCollector", "output_buffer_limits"]

# CONFIG key -> (family, help, scale)
_NUMBERS = {
    "maxmemory": ("redis_config_maxmemory", "The maxmemory setting in bytes (0 = unlimited).", 1.0),
    "maxclients": ("redis_config_maxclients", "The maxclients setting.", 1.0),
    "slowlog-log-slower-than": ("redis_config_slowlog_log_slower_than_seconds",
                                "Commands slower than this enter the slow log (negative = off).", 1e-6),
    "slowlog-max-len": ("redis_config_slowlog_max_len", "Entries the slow log keeps.", 1.0),
    "io-threads": ("redis_config_io_threads", "The io-threads setting.", 1.0),
}


def output_buffer_limits(value: str) -> list[Metric]:
    """redis_exporter's families of ``client-output-buffer-limit`` (``normal 0 0 0 slave 268435456
    67108864 60 pubsub ...``: per client class a hard and a soft limit in bytes, and how long the
    soft one may be exceeded)."""
    labels = ["class", "limit"]
    limits = gauge("redis_config_client_output_buffer_limit_bytes",
                   "Output buffer limit of each client class (0 = none).", labels)
    seconds = gauge("redis_config_client_output_buffer_limit_overcome_seconds",
                    "How long a client may stay over the soft limit before it is disconnected.", labels)
    words = value.split()
    for i in range(0, len(words) - 3, 4):
        hard, soft, overcome = (parse_number(w) for w in words[i + 1:i + 4])
        for family, kind, number in ((limits, "hard", hard), (limits, "soft", soft), (seconds, "soft", overcome)):
            if number is not None:
                family.add_metric([words[i], kind], number)
    return [limits, seconds]


class ConfigCollector(Collector[RedisSource]):
    name = "config"
    tier = Tier.SLOW

    def collect(self, source: RedisSource) -> list[Metric]:
        try:
            config = source.config(refresh=True)
        except redis.ResponseError as error:
            if isinstance(error, redis.exceptions.NoPermissionError) or "unknown command" in str(error).lower():
                raise CollectorDisabled("config_unavailable") from None
            raise
        families: list[Metric] = []
        for key, (name, help, scale) in _NUMBERS.items():
            value = parse_number(config.get(key, ""))
            if value is not None:
                families.append(single(name, help, value * scale))
        policy = config.get("maxmemory-policy")
        if policy is not None:
            family = info_family("redis_config_maxmemory_policy", "The eviction policy (maxmemory-policy).",
                                 ["policy"])
            family.add_metric([policy], {})
            families.append(family)
        if "client-output-buffer-limit" in config:
            families += output_buffer_limits(config["client-output-buffer-limit"])
        return families
