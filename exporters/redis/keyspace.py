"""Keys per database, keys with a TTL and their average TTL (INFO keyspace).

``db0`` is always reported, with zeros on an empty server, so dashboards show 0 rather
than "no data"; other databases appear once they hold keys.
"""

from __future__ import annotations

from prometheus_client.core import Metric

from stackwatch.core.redis.info import parse_fields, parse_number
from stackwatch.core.redis.source import RedisSource

from ..collector import Collector, Tier
from ..families import gauge

__all__ = ["KeyspaceCollector"]

# keyspace field -> (family, help, scale)
_FAMILIES = {
    "keys": ("redis_db_keys", "Keys in the database.", 1.0),
    "expires": ("redis_db_keys_expiring", "Keys with a TTL in the database.", 1.0),
    "avg_ttl": ("redis_db_avg_ttl_seconds", "Average TTL of the keys that have one.", 1e-3),
}


class KeyspaceCollector(Collector[RedisSource]):
    name = "keyspace"
    tier = Tier.FAST

    def collect(self, source: RedisSource) -> list[Metric]:
        families = {field: gauge(name, help, ["db"]) for field, (name, help, _) in _FAMILIES.items()}
        databases = {db: parse_fields(value) for db, value in source.info().section("keyspace").items()
                     if db.startswith("db") and db[2:].isdigit()}
        databases.setdefault("db0", {"keys": "0", "expires": "0", "avg_ttl": "0"})
        for db, stats in sorted(databases.items(), key=lambda item: int(item[0][2:])):
            for field, family in families.items():
                value = parse_number(stats.get(field, ""))
                if value is not None:
                    family.add_metric([db], value * _FAMILIES[field][2])
        return list(families.values())
