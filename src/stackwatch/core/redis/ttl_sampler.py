"""TTL hygiene: which key prefixes hold keys that never expire, estimated from a bounded sample.

A cache whose keys have no TTL grows until ``maxmemory`` evicts at random (or, with
``noeviction``, until writes fail). Counting them exactly would mean visiting every key, so
the sampler walks the keyspace with ``SCAN`` (never ``KEYS``, which blocks the server) and
checks each key with ``PTTL``, pipelined one SCAN batch at a time, and stops at whichever
comes first: the end of the keyspace, ``ttl_sample_keys`` keys, or ``ttl_sample_seconds``.
Its cost per run is at most ``ttl_sample_keys`` PTTL calls plus one SCAN per batch plus one
DBSIZE; it runs in the slow tier, off the scrape path.

Keys are grouped by prefix (the text before the first delimiter, ``:`` by default; keys without
it fall in ``(none)``); the ``ttl_prefixes_max`` prefixes with the most sampled keys are
reported and the rest are summed into ``(other)``. A real prefix spelled like one of these two
groups is shown with the delimiter after it (``(other):``): no real prefix contains the
delimiter, so no real prefix can merge into a group. Estimated counts scale the sample up by
``DBSIZE / keys sampled``. The walk covers the URL's database (``/0`` by default).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import cast

import redis

from stackwatch.core.redis.own_lookups import Lookups, OwnLookups

__all__ = ["NO_PREFIX", "OTHER", "TtlSample", "prefix_of", "sample_ttls"]


NO_PREFIX = "(none)"
OTHER = "(other)"
_MAX_LABEL = 64


@dataclass
class TtlSample:
    """What one walk saw: per prefix, [keys sampled, keys without a TTL]."""

    dbsize: int = 0
    checked: int = 0
    truncated: bool = False
    prefixes: dict[str, list[int]] = field(default_factory=dict)

    @property
    def sampled(self) -> int:
        return sum(counts[0] for counts in self.prefixes.values())

    def bounded(self, limit: int) -> dict[str, list[int]]:
        """The ``limit`` biggest prefixes, the rest summed into ``(other)``."""
        ranked = sorted(self.prefixes.items(), key=lambda item: (-item[1][0], item[0]))
        out = {name: list(counts) for name, counts in ranked[:limit]}
        for _, (sampled, without) in ranked[limit:]:
            rest = out.setdefault(OTHER, [0, 0])
            rest[0] += sampled
            rest[1] += without
        return out


def prefix_of(key: bytes, delimiter: bytes) -> str:
    """The label for ``key``'s prefix (decoded safely, length-capped)."""
    head, sep, _ = key.partition(delimiter)
    if not sep:
        return NO_PREFIX
    name = head.decode("utf-8", "backslashreplace")[:_MAX_LABEL]
    return name + sep.decode("utf-8", "backslashreplace") if name in (NO_PREFIX, OTHER) else name


def sample_ttls(client: redis.Redis, max_keys: int, max_seconds: float, scan_count: int = 1000,
                delimiter: str = ":", own: OwnLookups | None = None) -> TtlSample:
    """Walk the current database with SCAN + pipelined PTTL within both budgets.

    Each PTTL counts as a keyspace hit (or a miss for a vanished key) in INFO; ``own.ttl`` tallies them.
    """
    deadline = time.monotonic() + max_seconds
    tally = own if own is not None else OwnLookups()
    sep = delimiter.encode()
    sample = TtlSample(dbsize=int(client.dbsize()))
    seen: set[bytes] = set()
    cursor = 0
    while True:
        cursor, batch = client.scan(cursor=cursor, count=max(1, min(scan_count, max_keys - len(seen))))
        keys = cast(list[bytes], batch)  # the exporter's client never decodes replies
        fresh = [k for k in dict.fromkeys(keys) if k not in seen]
        room = max_keys - len(seen)
        if len(fresh) > room:
            fresh, sample.truncated = fresh[:room], True
        if fresh:
            pipe = client.pipeline(transaction=False)
            for key in fresh:
                pipe.pttl(key)
            ttls = pipe.execute()
            vanished = sum(ttl == -2 for ttl in ttls)  # deleted or expired between SCAN and PTTL
            tally.ttl += Lookups(len(ttls) - vanished, vanished)
            for key, ttl in zip(fresh, ttls):
                seen.add(key)
                if ttl == -2:
                    continue
                counts = sample.prefixes.setdefault(prefix_of(key, sep), [0, 0])
                counts[0] += 1
                counts[1] += ttl == -1
        if int(cursor) == 0:
            break
        if len(seen) >= max_keys or time.monotonic() >= deadline:
            sample.truncated = True
            break
    sample.checked = len(seen)
    return sample
