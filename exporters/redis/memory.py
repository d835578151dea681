"""Memory use, its limit, saturation and fragmentation (INFO memory).

``maxmemory 0`` means "no limit": Redis grows until the kernel's OOM killer or the container
limit stops it. A saturation ratio would be meaningless then, so it is absent and
``redis_memory_max_unlimited`` says 1 instead, which an alert can catch on its own.
"""

from __future__ import annotations

from prometheus_client.core import Metric

from ..collector import Collector, Tier
from .fields import Field, families_from, single
from .source import RedisSource

__all__ = ["MemoryCollector"]

FIELDS = (
    Field("used_memory", "redis_memory_used_bytes", "Bytes allocated by Redis."),
    Field("used_memory_rss", "redis_memory_used_rss_bytes", "Resident set size of the server process."),
    Field("used_memory_peak", "redis_memory_used_peak_bytes", "Peak of used_memory."),
    Field("used_memory_dataset", "redis_memory_used_dataset_bytes", "Bytes used by the data set."),
    Field("used_memory_overhead", "redis_memory_used_overhead_bytes", "Bytes used by internal structures."),
    Field("maxmemory", "redis_memory_max_bytes", "The maxmemory setting (0 = unlimited)."),
    Field("mem_fragmentation_ratio", "redis_mem_fragmentation_ratio", "used_memory_rss / used_memory."),
    Field("mem_fragmentation_bytes", "redis_mem_fragmentation_bytes", "used_memory_rss - used_memory."),
    Field("allocator_frag_ratio", "redis_allocator_frag_ratio", "Allocator fragmentation ratio (active/allocated)."),
    Field("active_defrag_running", "redis_active_defrag_running", "Whether active defragmentation is running."),
    Field("lazyfree_pending_objects", "redis_lazyfree_pending_objects", "Objects waiting to be freed lazily."),
)


class MemoryCollector(Collector[RedisSource]):
    name = "memory"
    tier = Tier.FAST

    def collect(self, source: RedisSource) -> list[Metric]:
        info = source.info()
        families = families_from(info, FIELDS)
        used, limit = info.number("used_memory"), info.number("maxmemory")
        if limit is not None:
            families.append(single("redis_memory_max_unlimited",
                                   "1 when maxmemory is 0 (no limit: no saturation ratio, no eviction).",
                                   float(limit == 0)))
        if used is not None and limit:
            families.append(single("redis_memory_saturation_ratio",
                                   "used_memory / maxmemory (absent when maxmemory is 0).", used / limit))
        return families
