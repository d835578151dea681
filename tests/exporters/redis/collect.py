"""Run Redis collectors as the exporter does and read their samples from a fresh registry.

``real_source`` connects through the exporter's own connection code (client name, timeouts,
no retries), so a test sees exactly what a poll sees. ``canned_source`` serves a fixed INFO
text for the pure parsing tests of INFO layouts this machine has no server for (Redis 6, Valkey).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from stackwatch.core.redis import connection
from stackwatch.core.redis.info import Info, parse_info
from stackwatch.core.redis.own_lookups import Lookups, OwnLookups, lookups_of
from stackwatch.core.redis.source import RedisOptions, RedisSource

__all__ = ["canned_source", "canned_text", "poll", "real_source", "sample", "samples"]

CANNED = Path(__file__).parent / "canned"


class _Fixed:
    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


def _registry(families: Sequence[Metric]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families))  # type: ignore[arg-type]
    return registry


def sample(families: Sequence[Metric], name: str, **labels: str) -> float | None:
    """The value of ``name{labels}`` (exact label set), or None when absent."""
    return _registry(families).get_sample_value(name, labels)


def samples(families: Sequence[Metric], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample called ``name``, keyed by its sorted label pairs."""
    return {tuple(sorted(s.labels.items())): s.value
            for family in _registry(families).collect() for s in family.samples if s.name == name}


@contextmanager
def real_source(url: str, options: RedisOptions | None = None) -> Iterator[RedisSource]:
    options = options or RedisOptions()
    client = connection.connect(url, options.connection)
    try:
        yield RedisSource(client, options)
    finally:
        client.close()


def poll(source: RedisSource, collector: Any) -> list[Metric]:
    """One poll of one collector (fresh INFO, as at the start of every target poll)."""
    source.new_poll()
    return collector.collect(source)


def canned_text(name: str) -> str:
    return (CANNED / f"{name}.txt").read_text()


class _CannedSource:
    """Just enough of a RedisSource for INFO-only collectors: the parsed canned text."""

    def __init__(self, info: Info) -> None:
        self._info = info
        self.own = OwnLookups()

    def info(self) -> Info:
        return self._info

    def keyspace(self) -> Lookups | None:
        return lookups_of(self._info)

    def config(self, refresh: bool = False) -> dict[str, str]:
        return {}

    def new_poll(self) -> None:
        pass


def canned_source(name: str) -> Any:
    return _CannedSource(parse_info(canned_text(name)))
