"""The collector contract shared by the PostgreSQL, Redis and process exporters.

A collector measures one concern (activity, locks, INFO...) of one target. It runs in its
tier's schedule, off the scrape path, and returns fresh metric families; the target keeps the
latest result as the snapshot that every scrape is served from.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from prometheus_client.core import Metric

from stackwatch.core.option_fields import option
from stackwatch.core.options import positive_float

__all__ = ["Tier", "Intervals", "Collector", "CollectorDisabled"]

S = TypeVar("S")


class Tier(enum.Enum):
    """How often a collector polls: cheap and volatile (fast) to costly and stable (rare)."""

    FAST = "fast"
    SLOW = "slow"
    RARE = "rare"


#: the longest polling interval: a week (a longer wait overflows the platform's timers)
MAX_INTERVAL = 7 * 24 * 3600.0


def interval(text: str) -> float:
    """Parser of the tier intervals: positive, finite seconds, at most :data:`MAX_INTERVAL`."""
    value = positive_float(text)
    if value > MAX_INTERVAL:
        raise ValueError(f"must be at most {MAX_INTERVAL:.0f} seconds (a week)")
    return value


@dataclass(frozen=True)
class Intervals:
    """Polling interval in seconds for each tier."""

    fast: float = option("--interval-fast", "STACKWATCH_INTERVAL_FAST", "seconds between polls of the fast tier "
                         "(activity, locks, INFO)", default=15.0, parse=interval, metavar="SECONDS")
    slow: float = option("--interval-slow", "STACKWATCH_INTERVAL_SLOW", "seconds between polls of the slow tier "
                         "(tables, indexes, sizes, statements)", default=300.0, parse=interval, metavar="SECONDS")
    rare: float = option("--interval-rare", "STACKWATCH_INTERVAL_RARE", "seconds between polls of the rare tier "
                         "(index advice)", default=3600.0, parse=interval, metavar="SECONDS")

    def of(self, tier: Tier) -> float:
        return {Tier.FAST: self.fast, Tier.SLOW: self.slow, Tier.RARE: self.rare}[tier]


class CollectorDisabled(Exception):
    """Raised by a collector that cannot run on this target; the reason is exported as a label.

    The reason must come from a small fixed vocabulary (it becomes a label value).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Collector(abc.ABC, Generic[S]):
    """One concern of one target. Instances may keep state between polls (for deltas)."""

    name: ClassVar[str]
    tier: ClassVar[Tier]
    default_enabled: ClassVar[bool] = True

    @abc.abstractmethod
    def collect(self, source: S) -> list[Metric]:
        """Query ``source`` and return fresh metric families."""

    def degrade(self, reason: str, detail: str) -> None:
        """Say, during ``collect``, that this poll's data is incomplete: ``reason`` (a word from a
        small fixed vocabulary: it becomes a label) is exported as
        ``<prefix>_scrape_collector_degraded``, ``detail`` (what is missing and how to fix it) is
        logged once when the reason appears."""
        self.__dict__.setdefault("_degraded", {})[reason] = detail

    def take_degraded(self) -> dict[str, str]:
        """The reasons given by ``degrade`` since the last call (the target reads them per poll)."""
        taken: dict[str, str] = self.__dict__.pop("_degraded", {})
        return taken
