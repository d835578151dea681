"""Client connections, their limit and the connections Redis turned away (INFO clients).

``maxclients`` comes from INFO (Redis 7+) or, on older servers, from the cached
``CONFIG GET maxclients``; without either the saturation ratio is left out, not guessed.
"""

from __future__ import annotations

import redis
from prometheus_client.core import Metric

from stackwatch.core.redis.info import parse_number
from stackwatch.core.redis.source import RedisSource

from ..collector import Collector, Tier
from .fields import Field, families_from, single

__all__ = ["ClientsCollector"]

FIELDS = (
    Field("connected_clients", "redis_connected_clients", "Client connections (the exporter's included)."),
    Field("blocked_clients", "redis_blocked_clients", "Clients blocked in BLPOP, WAIT and similar."),
    Field("tracking_clients", "redis_tracking_clients", "Clients using client-side caching."),
    Field("clients_in_timeout_table", "redis_clients_in_timeout_table", "Clients in the timeout table."),
    Field("client_recent_max_input_buffer", "redis_client_recent_max_input_buffer_bytes",
          "Largest recent client input buffer."),
    Field("client_recent_max_output_buffer", "redis_client_recent_max_output_buffer_bytes",
          "Largest recent client output buffer."),
    Field("rejected_connections", "redis_rejected_connections_total",
          "Connections rejected because of maxclients.", counter=True),
    Field("cluster_connections", "redis_cluster_connections", "Connections of the cluster bus."),
    Field("tracking_total_keys", "redis_tracking_total_keys", "Keys tracked for client-side caching."),
    Field("tracking_total_items", "redis_tracking_total_items", "Items (key-client pairs) tracked."),
    Field("tracking_total_prefixes", "redis_tracking_total_prefixes", "Prefixes tracked (broadcast mode)."),
    Field("maxclients", "redis_max_clients", "The maxclients setting (INFO, Redis 7; redis_exporter 1.46+)."),
)


def max_clients(source: RedisSource) -> float | None:
    """maxclients from INFO, else from the CONFIG cache, else None."""
    value = source.info().number("maxclients")
    if value is not None:
        return value
    try:
        text = source.config().get("maxclients")
    except redis.ResponseError:
        return None
    return parse_number(text) if text else None


class ClientsCollector(Collector[RedisSource]):
    name = "clients"
    tier = Tier.FAST

    def collect(self, source: RedisSource) -> list[Metric]:
        info = source.info()
        families = families_from(info, FIELDS)
        connected, limit = info.number("connected_clients"), max_clients(source)
        if connected is not None and limit:
            families.append(single("redis_clients_saturation_ratio", "connected_clients / maxclients.",
                                   connected / limit))
        return families
