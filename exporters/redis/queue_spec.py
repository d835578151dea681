"""``--redis-queue SYSTEM:PATTERN``: which Redis keys hold which job system's queues, and what one
reading of a queue holds (standard library only: ``stackwatch check`` judges readings too)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["MAIN_KEY", "SYSTEMS", "QueueReading", "QueueSpec", "parse_queue_spec"]

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


@dataclass
class QueueReading:
    """One queue's state in one poll."""

    system: str
    queue: str
    depth: dict[str, int] = field(default_factory=dict)
    oldest_age_seconds: float | None = None
    workers: int | None = None
    lag: dict[str, int] = field(default_factory=dict)
