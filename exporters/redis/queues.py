"""``job_queue_*``: the queues :class:`~stackwatch.core.redis.queues.QueueReader` reads (the
layouts, the key walk and their costs are described there), as families.

The ``queues_max`` deepest queues are exported by name, the rest summed into the :data:`OTHER`
rollup. No job id ever becomes a label.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import Metric

from stackwatch.core.redis.queue_spec import QueueReading
from stackwatch.core.redis.queues import QueueReader
from stackwatch.core.redis.source import RedisSource

from ..collector import Collector, Tier
from ..families import gauge

__all__ = ["OTHER", "QueuesCollector"]

#: the rollup of the queues past ``queues_max``; parentheses keep it apart from any real queue name.
OTHER = "(other)"


class QueuesCollector(QueueReader, Collector[RedisSource]):
    """``job_queue_*`` for the queues named by ``--redis-queue`` (nothing without it)."""

    name = "queues"
    tier = Tier.FAST

    def collect(self, source: RedisSource) -> list[Metric]:
        if not source.options.queues:
            return []
        return self._families(self.read(source), source.options.queues_max)

    def _families(self, readings: list[QueueReading], queues_max: int) -> list[Metric]:
        depth = gauge("job_queue_depth", "Jobs in a queue by state (queued, started, failed, deferred, "
                      "scheduled, delayed...), read from Redis.", ["system", "queue", "state"])
        oldest = gauge("job_queue_oldest_age_seconds", "How long the longest-waiting queued job has waited "
                       "(where the layout records an enqueue time).", ["system", "queue"])
        lag = gauge("job_queue_consumer_lag", "Stream entries not yet delivered to a consumer group (Redis 7+).",
                    ["system", "queue", "group"])
        workers = gauge("job_queue_workers", "Workers registered for a queue (RQ) or stream consumers.",
                        ["system", "queue"])
        known = gauge("job_queue_queues", "Queues read per system, including those summed into the "
                      f"{OTHER} rollup.", ["system"])
        invalid = gauge("job_queue_invalid_keys", "Keys matched by --redis-queue that are not queues of that "
                        "system (wrong type), skipped since start.", ["system"])
        truncated = gauge("job_queue_discovery_truncated", "1 when more queues match the patterns than are read.")
        for reading in _rolled_up(readings, queues_max):
            for state, count in sorted(reading.depth.items()):
                depth.add_metric([reading.system, reading.queue, state], count)
            if reading.oldest_age_seconds is not None:
                oldest.add_metric([reading.system, reading.queue], reading.oldest_age_seconds)
            if reading.workers is not None:
                workers.add_metric([reading.system, reading.queue], reading.workers)
            for group, behind in sorted(reading.lag.items()):
                lag.add_metric([reading.system, reading.queue, group], behind)
        for system in sorted({r.system for r in readings}):
            known.add_metric([system], sum(r.system == system for r in readings))
        for system, count in sorted(self._invalid.items()):
            invalid.add_metric([system], count)
        truncated.add_metric([], 1 if self._truncated else 0)
        return [depth, oldest, lag, workers, known, invalid, truncated]


def _rolled_up(readings: Iterable[QueueReading], queues_max: int) -> list[QueueReading]:
    """The ``queues_max`` deepest queues per system as they are, the rest summed into :data:`OTHER`."""
    out: list[QueueReading] = []
    by_system: dict[str, list[QueueReading]] = {}
    for reading in readings:
        by_system.setdefault(reading.system, []).append(reading)
    for system, group in sorted(by_system.items()):
        ranked = sorted(group, key=lambda r: (-sum(r.depth.values()), r.queue))
        out.extend(ranked[:queues_max])
        if len(ranked) > queues_max:
            rest = QueueReading(system, OTHER)
            for reading in ranked[queues_max:]:
                for state, count in reading.depth.items():
                    rest.depth[state] = rest.depth.get(state, 0) + count
                if reading.oldest_age_seconds is not None:
                    rest.oldest_age_seconds = max(rest.oldest_age_seconds or 0.0, reading.oldest_age_seconds)
                if reading.workers is not None:
                    rest.workers = (rest.workers or 0) + reading.workers
            out.append(rest)
    return out
