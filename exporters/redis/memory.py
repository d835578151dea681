"""Memory use, its limit, saturation and fragmentation (INFO memory).

``maxmemory 0`` means "no limit": Redis grows until the kernel's OOM killer or the container
limit stops it. A saturation ratio would be meaningless then, so it is absent and
``redis_memory_max_unlimited`` says 1 instead, which an alert can catch on its own.
"""

from __future__ import annotations

from prometheus_client.core import Metric

from stackwatch.core.redis.source import RedisSource

from ..collector import Collector, Tier
from .fields import Field, families_from, single

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
    Field("used_memory_lua", "redis_memory_used_lua_bytes", "Bytes used by the Lua engine."),
    Field("used_memory_scripts", "redis_memory_used_scripts_bytes", "Bytes used by cached scripts."),
    Field("used_memory_startup", "redis_memory_used_startup_bytes", "Bytes used at startup."),
    Field("number_of_cached_scripts", "redis_number_of_cached_scripts", "Scripts in the script cache."),
    Field("mem_clients_normal", "redis_mem_clients_normal", "Bytes used by normal clients' buffers."),
    Field("mem_clients_slaves", "redis_mem_clients_slaves", "Bytes used by replicas' buffers."),
    Field("mem_not_counted_for_evict", "redis_mem_not_counted_for_eviction_bytes",
          "Bytes not counted for eviction (replica and AOF buffers)."),
    Field("allocator_allocated", "redis_allocator_allocated_bytes", "Bytes allocated by the allocator."),
    Field("allocator_active", "redis_allocator_active_bytes", "Bytes in the allocator's active pages."),
    Field("allocator_resident", "redis_allocator_resident_bytes", "Bytes resident in the allocator."),
    Field("allocator_frag_bytes", "redis_allocator_frag_bytes", "allocator_active - allocator_allocated."),
    Field("allocator_rss_ratio", "redis_allocator_rss_ratio", "allocator_resident / allocator_active."),
    Field("allocator_rss_bytes", "redis_allocator_rss_bytes", "allocator_resident - allocator_active."),
    # redis_exporter 1.46+ (Redis 7 fields)
    Field("used_memory_vm_eval", "redis_memory_used_vm_eval_bytes", "Bytes used by the Lua VM for EVAL scripts."),
    Field("used_memory_scripts_eval", "redis_memory_used_scripts_eval_bytes", "Bytes used by cached EVAL scripts."),
    Field("used_memory_vm_functions", "redis_memory_used_vm_functions_bytes", "Bytes used by the functions VM."),
    Field("used_memory_functions", "redis_memory_used_functions_bytes", "Bytes used by function code."),
    Field("used_memory_vm_total", "redis_memory_used_vm_total", "Bytes used by the scripting VMs."),
    Field("number_of_functions", "redis_number_of_functions", "Functions loaded."),
    Field("number_of_libraries", "redis_number_of_libraries", "Function libraries loaded."),
    Field("mem_cluster_links", "redis_mem_cluster_links_bytes", "Bytes used by cluster bus links."),
    Field("mem_aof_buffer", "redis_mem_aof_buffer_bytes", "Bytes of the AOF buffers."),
    Field("mem_replication_backlog", "redis_mem_replication_backlog_bytes", "Bytes of the replication backlog."),
    Field("mem_total_replication_buffers", "redis_mem_total_replication_buffers_bytes",
          "Bytes of all replication buffers."),
    Field("lazyfreed_objects", "redis_lazyfreed_objects", "Objects freed lazily."),
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
