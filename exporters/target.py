"""A monitored target: its collectors, their schedule, and the snapshot scrapes are served from.

Principle 5 of the design lives here: collectors run in tiers on the target's own poller
thread (so there is one refresh in flight per target, however many scrapers), and a scrape
only copies the latest snapshot. Principle 6 too: a failing collector is recorded in the
``<prefix>_scrape_collector_*`` families and a log line, never in the scrape's status.
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from prometheus_client.core import Metric

from .collector import Collector, CollectorDisabled, Intervals
from .families import gauge
from .redact import redact_text

__all__ = ["Target", "Poller"]

log = logging.getLogger("stackwatch.exporters")

S = TypeVar("S")


@dataclass
class _Result:
    """What one collector run produced, until the refresh publishes it."""

    name: str
    families: list[Metric] | None = None
    disabled_reason: str | None = None
    lost: bool = False
    elapsed: float = 0.0


class Target(abc.ABC, Generic[S]):
    """Base class: subclasses provide the connection (``connect``) and classify its failures."""

    #: metric prefix of the self-observability families (``pg``, ``redis``, ``process``)
    prefix: str = ""
    #: the most seconds to wait between reconnect attempts
    max_backoff: float = 30.0

    def __init__(self, name: str, collectors: Sequence[Collector[S]], intervals: Intervals) -> None:
        self.name = name
        self.collectors = list(collectors)
        self.intervals = intervals
        self._lock = threading.Lock()
        self._snapshot: dict[str, list[Metric]] = {}
        self._success: dict[str, float] = {}
        self._duration: dict[str, float] = {}
        self._last_success: dict[str, float] = {}
        self._disabled: dict[str, str] = {}
        self._next_due: dict[str, float] = {c.name: 0.0 for c in self.collectors}
        self._up = 0.0
        #: bumped whenever what ``families()`` returns changes (lets the server reuse encodings)
        self.generation = 0
        self._error_reason = ""
        self._failures = 0
        self.polled = threading.Event()

    # -- to implement -------------------------------------------------------------------
    @abc.abstractmethod
    def connect(self) -> S:
        """Return a live source (reusing the long-lived connection), raising when unreachable."""

    @abc.abstractmethod
    def disconnect(self) -> None:
        """Drop the connection so the next ``connect`` starts afresh."""

    def classify_error(self, error: BaseException) -> str:
        """A short fixed reason for a connection failure (exported as a label)."""
        return "error"

    def is_connection_lost(self, error: BaseException) -> bool:
        """Whether ``error`` means the connection is gone (rather than one query failing)."""
        return False

    # -- the poll loop ------------------------------------------------------------------
    def refresh(self) -> float:
        """Run every due collector; return how long the poller may sleep before the next one.

        Collectors due together share one ``connect()`` (one INFO for Redis) and their results
        reach the snapshot together, so a scrape never sees families of one tier taken from
        different readings (the Redis hit ratio subtracts commandstats from keyspace counters:
        from two readings a burst of commands in between would skew it). Each collector's next
        run is due one interval after this refresh began, so a tier's collectors stay together.
        """
        now = time.monotonic()
        due = [c for c in self.collectors if self._next_due[c.name] <= now]
        if due:
            try:
                source = self.connect()
            except Exception as error:  # noqa: BLE001 - any failure means "down", never a crash
                return self._mark_down(error)
            with self._lock:
                self._up, self._error_reason = 1.0, ""
            self._failures = 0
            results = []
            for collector in due:
                results.append(self._run(collector, source))
                self._next_due[collector.name] = now + self.intervals.of(collector.tier)
                if results[-1].lost:
                    break
            self._publish(results)
            if results[-1].lost:
                return self._mark_down(None)
        self.polled.set()
        if not self.collectors:
            return self.intervals.fast
        return max(0.05, min(self._next_due.values()) - time.monotonic())

    def _run(self, collector: Collector[S], source: S) -> _Result:
        """Run one collector (off the lock); ``lost`` when the connection went with it."""
        start = time.monotonic()
        result = _Result(collector.name)
        try:
            result.families = collector.collect(source)
        except CollectorDisabled as disabled:
            result.families, result.disabled_reason = [], disabled.reason
        except Exception as error:  # noqa: BLE001
            result.lost = self.is_connection_lost(error)
            log.warning(
                "target %s: collector %s failed: %s",
                self.name, collector.name, redact_text(str(error)).strip(),
            )
        result.elapsed = time.monotonic() - start
        return result

    def _publish(self, results: list[_Result]) -> None:
        """Put one refresh's results into the snapshot at once."""
        finished = time.time()
        with self._lock:  # scrapes iterate these dicts: change them only under the lock
            self.generation += 1
            for r in results:
                if r.disabled_reason is not None:
                    self._disabled[r.name] = r.disabled_reason
                elif r.families is not None:
                    self._disabled.pop(r.name, None)
                self._duration[r.name] = r.elapsed
                self._success[r.name] = 0.0 if r.families is None else 1.0
                if r.families is None:
                    self._snapshot.pop(r.name, None)
                else:
                    self._snapshot[r.name] = r.families
                    self._last_success[r.name] = finished

    def _mark_down(self, error: BaseException | None) -> float:
        reason = "connection_lost" if error is None else self.classify_error(error)
        if error is not None:
            log.warning("target %s: down (%s): %s", self.name, reason, redact_text(str(error)).strip())
        self.disconnect()
        with self._lock:
            self.generation += 1
            self._up, self._error_reason = 0.0, reason
            self._snapshot.clear()
        for name in self._next_due:
            self._next_due[name] = 0.0
        self._failures += 1
        self.polled.set()
        return float(min(self.max_backoff, self.intervals.fast, 0.5 * 2 ** min(self._failures, 8)))

    # -- what a scrape sees -------------------------------------------------------------
    def families(self) -> list[Metric]:
        """The latest snapshot plus the self-observability families."""
        p = self.prefix
        up = gauge(f"{p}_up", f"Whether the last connection to the {p} target succeeded (1) or not (0).")
        success = gauge(f"{p}_scrape_collector_success", "Whether the collector's last poll succeeded.", ["collector"])
        duration = gauge(f"{p}_scrape_collector_duration_seconds", "Duration of the collector's last poll.", ["collector"])
        last = gauge(f"{p}_scrape_collector_last_success_timestamp_seconds",
                     "Unix time of the collector's last successful poll.", ["collector"])
        series = gauge(f"{p}_scrape_collector_series", "Series the collector contributes to the snapshot.", ["collector"])
        disabled = gauge(f"{p}_scrape_collector_disabled",
                         "1 for a collector that cannot run on this target, with the reason.", ["collector", "reason"])
        error = gauge(f"{p}_connection_error", "1 while the target is down, labelled by why.", ["reason"])
        with self._lock:
            out: list[Metric] = [m for fams in self._snapshot.values() for m in fams]
            up.add_metric([], self._up)
            for name, value in self._success.items():
                success.add_metric([name], value)
                duration.add_metric([name], self._duration[name])
            for name, ts in self._last_success.items():
                last.add_metric([name], ts)
            for name, fams in self._snapshot.items():
                series.add_metric([name], sum(len(m.samples) for m in fams))
            for name, reason in self._disabled.items():
                disabled.add_metric([name, reason], 1)
            if self._up == 0 and self._error_reason:
                error.add_metric([self._error_reason], 1)
        return out + [up, success, duration, last, series, disabled, error]

    def describe_target(self) -> dict[str, Any]:
        """What the startup log and readiness endpoint say about this target (no secrets)."""
        return {"name": self.name, "prefix": self.prefix, "collectors": [c.name for c in self.collectors]}

    def close(self) -> None:
        self.disconnect()


class Poller(threading.Thread):
    """Runs one target's ``refresh`` loop until stopped."""

    def __init__(self, target: Target[Any], stop: threading.Event) -> None:
        super().__init__(name=f"poll-{target.name}", daemon=True)
        self.target = target
        self.stop = stop

    def run(self) -> None:
        delay = 0.0
        while not self.stop.wait(delay):
            try:
                delay = self.target.refresh()
            except Exception:  # noqa: BLE001 - the poller must outlive any bug in a collector
                log.exception("target %s: refresh failed", self.target.name)
                delay = self.target.intervals.fast
        self.target.close()
