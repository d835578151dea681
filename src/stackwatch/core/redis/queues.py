"""Job queues kept in Redis: depth by state, the oldest waiting job's age, stream lag, workers.

The checklist's "async processing for long tasks" only works while the queue drains. This
reader (shared by the exporter's queues collector and ``stackwatch check``) reads the raw keys
of the layouts Python teams run on Redis (RQ, Celery/kombu, arq, Dramatiq, Bull/BullMQ, plain
lists and streams) and imports none of those libraries: their redis-py pins conflict with ours
and with each other, and reading keys needs none of their code.
Payloads are parsed only where they are JSON (never unpickled).

Which keys to read comes from ``--redis-queue SYSTEM:PATTERN`` (:class:`QueueSpec`); the key a
pattern names per system is :data:`MAIN_KEY`. A pattern with glob characters is expanded with
``SCAN MATCH`` within the TTL sampler's key and time budgets (never ``KEYS``), and for RQ also from
its ``rq:queues`` set, which lists a queue even while it is empty; ``auto`` names the layouts whose
key names their library fixes (:data:`KNOWN_LAYOUTS`, literal keys only once they exist, so a
library that is not used adds no series). A queue once seen is
remembered, so a drained queue reads 0 instead of vanishing (Redis deletes empty lists). Every
queue costs a fixed handful of O(1)/O(log N) commands, pipelined into two round trips per poll
whatever the number of queues, and a queue of a million jobs costs what an empty one does.
Redis counts these reads as keyspace hits and misses (a missing key is a miss), so every read of
a key (discovery's ``EXISTS``/``SSCAN`` too; ``SCAN`` reads none) runs in a transaction that
measures them (:meth:`RedisSource.own_reads`) and the exported counters leave them out.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.exceptions import ResponseError

from .queue_spec import MAIN_KEY, QueueReading, QueueSpec
from .source import RedisSource

__all__ = ["QueueReader"]

log = logging.getLogger(__name__)

#: the set in which RQ records the key of every queue it enqueued to (kept when the queue drains)
RQ_QUEUES = "rq:queues"


def _text(value: Any) -> str:
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)


def _key(spec: QueueSpec) -> str:
    """The key (or glob) ``spec`` names: a Bull queue is found by its ``:id`` counter."""
    return f"{spec.pattern}:id" if spec.system == "bull" else spec.pattern


def _raised(reply: Any) -> Any:
    """``reply``, raised when it is an error (a reply that decides what else is read)."""
    if isinstance(reply, Exception):
        raise reply
    return reply


def _age_from_ms(ms: Any, now: float) -> float | None:
    try:
        return max(0.0, now - float(ms) / 1000.0)
    except (TypeError, ValueError):
        return None


def _age_from_iso(value: Any, now: float) -> float | None:
    try:
        return max(0.0, now - datetime.fromisoformat(_text(value).replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


class _Layout:
    """How one system keeps a queue. Every method queues commands on a pipeline; a poll runs
    ``depth`` and ``head`` for every queue in one round trip, then ``lookup`` in a second."""

    def name(self, key: str) -> str | None:
        """The queue's own name for ``key``; None for the queue's companion keys."""
        return key

    def depth(self, pipe: Any, key: str, name: str, now: float) -> tuple[str, ...]:
        """Queue one count per state; return the states (``workers`` is the worker count)."""
        pipe.llen(key)
        return ("queued",)

    def head(self, pipe: Any, key: str, now: float) -> bool:
        """Queue the command that locates the longest-waiting job; False when nothing records it."""
        return False

    def lookup(self, pipe: Any, key: str, head: Any) -> bool:
        """Queue the read of that job's enqueue time; False when ``head`` holds it already."""
        return False

    def age(self, reply: Any, now: float) -> float | None:
        """Seconds the oldest job has waited, from ``lookup``'s reply (or ``head``'s)."""
        return None

    def absorb(self, reading: QueueReading, head: Any, now: float) -> None:
        """Take what else ``head``'s reply tells (stream groups)."""


class _Rq(_Layout):
    """RQ: ``rq:queue:<name>`` (RPUSH, so the head waited longest), registries, ``rq:workers:<name>``."""

    _REGISTRIES = (("started", "wip"), ("failed", "failed"), ("deferred", "deferred"), ("scheduled", "scheduled"))

    def name(self, key: str) -> str | None:
        return key.removeprefix("rq:queue:")

    def depth(self, pipe: Any, key: str, name: str, now: float) -> tuple[str, ...]:
        pipe.llen(key)
        for _, registry in self._REGISTRIES:
            pipe.zcard(f"rq:{registry}:{name}")
        pipe.scard(f"rq:workers:{name}")
        return ("queued", *(state for state, _ in self._REGISTRIES), "workers")

    def head(self, pipe: Any, key: str, now: float) -> bool:
        pipe.lindex(key, 0)
        return True

    def lookup(self, pipe: Any, key: str, head: Any) -> bool:
        pipe.hget(f"rq:job:{_text(head)}", "enqueued_at")
        return True

    def age(self, reply: Any, now: float) -> float | None:
        return _age_from_iso(reply, now) if reply else None


class _Dramatiq(_Layout):
    """Dramatiq: ``dramatiq:<name>`` lists message ids (RPUSH), payloads in ``.msgs`` with a
    ``message_timestamp``; delayed messages in ``.DQ``, dead letters in ``.XQ``."""

    def name(self, key: str) -> str | None:
        name = key.split(":", 1)[-1]
        return None if "." in name or name.startswith("__") else name

    def depth(self, pipe: Any, key: str, name: str, now: float) -> tuple[str, ...]:
        pipe.llen(key)
        pipe.hlen(f"{key}.DQ.msgs")
        pipe.hlen(f"{key}.XQ.msgs")
        return ("queued", "delayed", "failed")

    def head(self, pipe: Any, key: str, now: float) -> bool:
        pipe.lindex(key, 0)
        return True

    def lookup(self, pipe: Any, key: str, head: Any) -> bool:
        pipe.hget(f"{key}.msgs", head)
        return True

    def age(self, reply: Any, now: float) -> float | None:
        try:
            return _age_from_ms(json.loads(reply)["message_timestamp"], now) if reply else None
        except (ValueError, KeyError, TypeError):
            return None


class _Arq(_Layout):
    """arq: one sorted set scored by when each job may run (its enqueue time unless deferred);
    payloads are pickled, so they are never read."""

    def depth(self, pipe: Any, key: str, name: str, now: float) -> tuple[str, ...]:
        pipe.zcount(key, "-inf", int(now * 1000))
        pipe.zcount(key, f"({int(now * 1000)}", "+inf")
        return ("queued", "deferred")

    def head(self, pipe: Any, key: str, now: float) -> bool:
        pipe.zrange(key, 0, 0, withscores=True)
        return True

    def age(self, reply: Any, now: float) -> float | None:
        return _age_from_ms(reply[0][1], now) if reply else None


class _Bull(_Layout):
    """Bull/BullMQ: found by ``<prefix>:<name>:id``; ``:wait`` gets LPUSH and is taken from the
    tail, job hashes ``<prefix>:<name>:<id>`` hold a ``timestamp`` in ms."""

    _LISTS = (("queued", "wait"), ("started", "active"), ("paused", "paused"))
    _ZSETS = (("delayed", "delayed"), ("failed", "failed"), ("completed", "completed"), ("prioritized", "prioritized"))

    def name(self, key: str) -> str | None:
        head, _, tail = key.rpartition(":")
        return head.split(":", 1)[-1] if tail == "id" and ":" in head else None

    def depth(self, pipe: Any, key: str, name: str, now: float) -> tuple[str, ...]:
        base = key.removesuffix(":id")
        for _, suffix in self._LISTS:
            pipe.llen(f"{base}:{suffix}")
        for _, suffix in self._ZSETS:
            pipe.zcard(f"{base}:{suffix}")
        return tuple(state for state, _ in (*self._LISTS, *self._ZSETS))

    def head(self, pipe: Any, key: str, now: float) -> bool:
        pipe.lindex(f"{key.removesuffix(':id')}:wait", -1)
        return True

    def lookup(self, pipe: Any, key: str, head: Any) -> bool:
        pipe.hget(f"{key.removesuffix(':id')}:{_text(head)}", "timestamp")
        return True

    def age(self, reply: Any, now: float) -> float | None:
        return _age_from_ms(reply, now) if reply else None


class _Stream(_Layout):
    """A stream read by consumer groups: backlog is the most-lagging group's lag (Redis 7+, where the
    server can tell), pending entries are started, consumers are workers, and the entry after the
    furthest-behind group's last delivered id is the oldest undelivered (its id carries its time)."""

    def depth(self, pipe: Any, key: str, name: str, now: float) -> tuple[str, ...]:
        pipe.xlen(key)
        return ("entries",)

    def head(self, pipe: Any, key: str, now: float) -> bool:
        pipe.xinfo_groups(key)
        return True

    def absorb(self, reading: QueueReading, head: Any, now: float) -> None:
        groups = head or []
        reading.workers = sum(int(g.get("consumers") or 0) for g in groups)
        reading.depth["started"] = sum(int(g.get("pending") or 0) for g in groups)
        for group in groups:
            if group.get("lag") is not None:
                reading.lag[_text(group["name"])] = int(group["lag"])
        reading.depth["queued"] = max(reading.lag.values(), default=0)

    def lookup(self, pipe: Any, key: str, head: Any) -> bool:
        if not head:
            return False
        behind = min(head, key=lambda g: tuple(int(p) for p in _text(g["last-delivered-id"]).split("-")))
        pipe.xrange(key, min=f"({_text(behind['last-delivered-id'])}", count=1)  # its next undelivered entry
        return True

    def age(self, reply: Any, now: float) -> float | None:
        return _age_from_ms(_text(reply[0][0]).split("-")[0], now) if reply else None


LAYOUTS: dict[str, _Layout] = {"rq": _Rq(), "celery": _Layout(), "arq": _Arq(), "dramatiq": _Dramatiq(),
                               "bull": _Bull(), "list": _Layout(), "stream": _Stream()}


@dataclass
class _Queue:
    spec: QueueSpec
    key: str
    name: str


class QueueReader:
    """Reads the queues ``source.options.queues`` names; remembers the queues it has seen, the keys it
    rejected and whether discovery was truncated (the exporter's collector exports them)."""

    def __init__(self) -> None:
        self._known: dict[str, _Queue] = {}  # key -> queue, remembered so drained queues read 0
        self._cursors: dict[QueueSpec, int] = {}  # glob walks resume where the last poll stopped
        self._warned: set[str] = set()
        self._invalid: dict[str, int] = {}
        self._truncated = False

    def read(self, source: RedisSource) -> list[QueueReading]:
        """Every queue ``source.options.queues`` names, as of now (``stackwatch check`` uses this too)."""
        limit = source.options.queues_max * 20
        present = self._present(source, [_key(spec) for spec in source.options.queues
                                         if spec.auto and not spec.is_glob and _key(spec) not in self._known])
        for spec in source.options.queues:
            self._discover(source, spec, limit, present)
        return self._read(source, list(self._known.values()), time.time())

    def _remember(self, spec: QueueSpec, key: str, limit: int) -> None:
        name = LAYOUTS[spec.system].name(key)
        if name is None or key in self._known:
            return
        if len(self._known) >= limit:
            self._truncated = True
            self._warn(f"limit:{spec}", "more than %d queues match --redis-queue patterns; the rest are not read",
                       limit)
            return
        self._known[key] = _Queue(spec, key, name)

    @staticmethod
    def _present(source: RedisSource, keys: list[str]) -> set[str]:
        """Which of ``keys`` exist, in one measured round trip."""
        if not keys:
            return set()
        pipe = source.own_reads()
        for key in keys:
            pipe.exists(key)
        replies = source.execute_own(pipe)
        return {key for key, reply in zip(keys, replies, strict=True) if _raised(reply)}

    def _discover(self, source: RedisSource, spec: QueueSpec, limit: int, present: set[str]) -> None:
        """Add the keys ``spec`` names: literal keys as they are (``auto`` ones once in ``present``),
        globs by a SCAN walk that resumes across polls within the TTL sampler's key and time budgets."""
        pattern = _key(spec)
        if not spec.is_glob:
            if not spec.auto or pattern in self._known or pattern in present:
                self._remember(spec, pattern, limit)
            return
        if spec.system == "rq":  # RQ lists every queue it ever used: found even while it is empty
            set_cursor = 0
            while True:
                pipe = source.own_reads()
                pipe.sscan(RQ_QUEUES, set_cursor, match=pattern, count=source.options.ttl_scan_count)
                set_cursor, members = _raised(source.execute_own(pipe)[0])
                for key in members:
                    self._remember(spec, _text(key), limit)
                if set_cursor == 0 or len(self._known) >= limit:
                    break
        options = source.options
        deadline = time.monotonic() + options.ttl_sample_seconds
        cursor, scanned = self._cursors.get(spec, 0), 0
        while True:
            cursor, keys = source.client.scan(cursor, match=pattern, count=options.ttl_scan_count)
            scanned += options.ttl_scan_count
            for key in keys:
                self._remember(spec, _text(key), limit)
            if cursor == 0 or scanned >= options.ttl_sample_keys or time.monotonic() > deadline:
                break
        self._cursors[spec] = cursor

    def _read(self, source: RedisSource, queues: Sequence[_Queue], now: float) -> list[QueueReading]:
        """Two measured round trips for all queues: counts and heads, then the oldest jobs."""
        if not queues:
            return []
        pipe = source.own_reads()
        plans = []
        for queue in queues:
            layout = LAYOUTS[queue.spec.system]
            states = layout.depth(pipe, queue.key, queue.name, now)
            plans.append((queue, layout, states, layout.head(pipe, queue.key, now)))
        replies = iter(source.execute_own(pipe))
        second = source.own_reads()
        pending: list[tuple[QueueReading, _Layout, Any]] = []
        readings = []
        for queue, layout, states, has_head in plans:
            counts = [next(replies) for _ in states]
            head = next(replies) if has_head else None
            if isinstance(head, ResponseError) and "no such key" in str(head):
                head = None  # a stream that does not exist (yet): nothing waits
            errors = [r for r in (*counts, head) if isinstance(r, Exception)]
            if errors:
                self._reject(queue, errors[0])
                continue
            reading = QueueReading(queue.spec.system, queue.name)
            for state, count in zip(states, counts, strict=True):
                if state == "workers":
                    reading.workers = int(count)
                else:
                    reading.depth[state] = int(count)
            layout.absorb(reading, head, now)
            readings.append(reading)
            if has_head and head:
                if layout.lookup(second, queue.key, head):
                    pending.append((reading, layout, queue))
                else:
                    reading.oldest_age_seconds = self._age(layout, head, now, queue)
        for (reading, layout, queue), reply in zip(pending, source.execute_own(second) if pending else [], strict=True):
            reading.oldest_age_seconds = None if isinstance(reply, Exception) else self._age(layout, reply, now, queue)
        return readings

    def _age(self, layout: _Layout, reply: Any, now: float, queue: _Queue) -> float | None:
        age = layout.age(reply, now)
        if age is None and reply:
            self._warn(f"payload:{queue.key}", "queue %s (%s): the oldest job records no readable enqueue time; "
                       "its age is not exported", queue.name, queue.spec.system)
        return age

    def _reject(self, queue: _Queue, error: Exception) -> None:
        """A key of the wrong type (or one Redis refuses to read) is dropped, counted and logged once."""
        del self._known[queue.key]
        self._invalid[queue.spec.system] = self._invalid.get(queue.spec.system, 0) + 1
        reason = "wrong type" if "WRONGTYPE" in str(error) else str(error)
        self._warn(f"reject:{queue.key}", "--redis-queue %s:%s matches key %r, which is not a %s queue (%s; expected "
                   "%s); skipped", queue.spec.system, queue.spec.pattern, queue.key, queue.spec.system, reason,
                   MAIN_KEY[queue.spec.system])

    def _warn(self, once: str, message: str, *args: Any) -> None:
        if once not in self._warned:
            self._warned.add(once)
            log.warning(message, *args)
