"""Key lookups the exporter makes itself, which Redis counts in ``keyspace_hits``/``keyspace_misses``.

Left in, they would make the cache's hit ratio describe the exporter: a queue reader polling
keys that do not exist (the empty registries of an RQ queue) drowns a quiet cache in misses
and fires ``RedisHitRatioLow`` while the cache is healthy. Two kinds, two treatments:

* the TTL sampler's ``PTTL`` calls (:attr:`OwnLookups.ttl`) stay in the counters: the hit ratios
  leave out every TTL lookup from commandstats, whoever sent it (``stackwatch check``, another
  exporter), so tallying ours is only for information;
* the queue reader's reads (:attr:`OwnLookups.queues`) use commands applications use too (LLEN,
  HGET...), so they are measured by Redis itself -- ``INFO stats`` first and last in the same
  ``MULTI``/``EXEC`` as the reads, where no other client's command can fall in between -- and
  taken out of the exported counters.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from .info import Info

__all__ = ["Lookups", "MeasuredLookups", "OwnLookups", "lookups_of"]


@dataclass(frozen=True)
class Lookups:
    """Key lookups as Redis counts them: hits (the key existed) and misses."""

    hits: int = 0
    misses: int = 0

    def __add__(self, other: Lookups) -> Lookups:
        return Lookups(self.hits + other.hits, self.misses + other.misses)

    def __sub__(self, other: Lookups) -> Lookups:
        return Lookups(self.hits - other.hits, self.misses - other.misses)

    def below(self, other: Lookups) -> bool:
        """Whether either counter is lower than ``other``'s (the server restarted or ran
        ``CONFIG RESETSTAT`` in between)."""
        return self.hits < other.hits or self.misses < other.misses


def lookups_of(info: Info) -> Lookups | None:
    """``keyspace_hits`` and ``keyspace_misses`` of an INFO reply, None when it lacks them."""
    hits, misses = info.number("keyspace_hits"), info.number("keyspace_misses")
    return None if hits is None or misses is None else Lookups(int(hits), int(misses))


@dataclass
class MeasuredLookups:
    """Lookups measured batch by batch as the difference of the server's counters around each
    batch; remembers which of them the server's counters still hold (none after a reset)."""

    #: since the exporter started (an exported counter: never goes down)
    total: Lookups = field(default_factory=Lookups)
    #: inside the server's counters now: since they last went down
    current: Lookups = field(default_factory=Lookups)
    #: the server's counters right after the last batch
    server: Lookups = field(default_factory=Lookups)

    def add(self, before: Lookups, after: Lookups) -> None:
        """Tally one batch, ``before`` and ``after`` read in the same transaction as it."""
        if before.below(self.server):
            self.current = Lookups()
        batch = after - before
        self.total, self.current, self.server = self.total + batch, self.current + batch, after

    def left_out(self, counters: Lookups) -> Lookups:
        """The server's ``counters`` without these lookups; they must have been read after the
        last batch (counters read before it would hold only part of it)."""
        return counters if counters.below(self.server) else counters - self.current

    def snapshot(self) -> MeasuredLookups:
        return copy.copy(self)


@dataclass
class OwnLookups:
    """The exporter's own lookups of one target, kept by the target across reconnects (each
    lane's connection shares it: the TTL sampler runs in the slow lane, the queue reader and the
    counters it is taken out of in the fast one)."""

    ttl: Lookups = field(default_factory=Lookups)
    queues: MeasuredLookups = field(default_factory=MeasuredLookups)
