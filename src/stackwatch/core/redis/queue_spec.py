"""``--redis-queue SYSTEM:PATTERN``: which Redis keys hold which job system's queues, and what one
reading of a queue holds (standard library only: ``stackwatch check`` judges readings too)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["AUTO", "KNOWN_LAYOUTS", "MAIN_KEY", "SYSTEMS", "QueueReading", "QueueSpec", "parse_queue_option",
           "parse_queue_spec", "queue_specs"]

#: what ``PATTERN`` names for each system: the key that identifies one queue.
MAIN_KEY = {
    "rq": "rq:queue:<name> (list)",
    "celery": "<name> (the kombu list, e.g. celery)",
    "arq": "<name> (the sorted set, e.g. arq:queue)",
    "dramatiq": "dramatiq:<name> (list)",
    "bull": "bull:<name> (the queue's key prefix; its :wait list, :active... are read)",
    "list": "<name> (any list used as a queue)",
    "stream": "<name> (a stream with consumer groups)",
}
SYSTEMS = tuple(MAIN_KEY)
_GLOB = frozenset("*?[")


@dataclass(frozen=True)
class QueueSpec:
    """One ``--redis-queue SYSTEM:PATTERN``."""

    system: str
    pattern: str
    #: found by ``auto``: a literal key counts only once it exists (no series for absent libraries)
    auto: bool = False

    @property
    def is_glob(self) -> bool:
        return any(c in _GLOB for c in self.pattern)


def parse_queue_spec(text: str) -> QueueSpec:
    """``SYSTEM:PATTERN`` -> :class:`QueueSpec`; the error names what is wrong."""
    system, sep, pattern = text.strip().partition(":")
    if not sep or not pattern:
        raise ValueError("expected SYSTEM:PATTERN, e.g. rq:rq:queue:*")
    if system not in MAIN_KEY:
        raise ValueError(f"unknown system {system!r}; one of {', '.join(SYSTEMS)}")
    return QueueSpec(system, pattern)


#: ``--redis-queue auto``: the layouts whose key names their library fixes
AUTO = "auto"
KNOWN_LAYOUTS = tuple(QueueSpec(s.system, s.pattern, auto=True) for s in map(parse_queue_spec, (
    "rq:rq:queue:*", "arq:arq:queue", "dramatiq:dramatiq:*", "bull:bull:*", "celery:celery")))


def parse_queue_option(text: str) -> tuple[QueueSpec, ...]:
    """One ``--redis-queue`` value: ``auto`` (:data:`KNOWN_LAYOUTS`) or ``SYSTEM:PATTERN``."""
    return KNOWN_LAYOUTS if text.strip() == AUTO else (parse_queue_spec(text),)


def queue_specs(values: Iterable[tuple[QueueSpec, ...]] | None) -> tuple[QueueSpec, ...]:
    """The specs of every ``--redis-queue`` value, in order, each once."""
    return tuple(dict.fromkeys(spec for specs in values or () for spec in specs))


@dataclass
class QueueReading:
    """One queue's state in one poll."""

    system: str
    queue: str
    depth: dict[str, int] = field(default_factory=dict)
    oldest_age_seconds: float | None = None
    workers: int | None = None
    lag: dict[str, int] = field(default_factory=dict)
