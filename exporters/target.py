"""A monitored target: its collectors, their schedule, and the snapshot scrapes are served from.

Principle 5 of the design lives here: each tier of a target (fast, slow, rare) is a *lane* with
its own poller thread and its own connection, so a slow tier that takes a minute over a thousand
databases never delays the fast tier's activity and locks; all collectors of a lane run in one
tick (one shared ``INFO`` on Redis) and the lane's schedule survives reconnects. Each lane keeps
its connection between ticks (a connection opened per tick would take a slot from a saturated
server and give it back, making the saturation it reports flap); the fast lane's says whether
the target is up.
A scrape only copies the latest snapshot. Principle 6 too: a failing collector is recorded in
the ``<prefix>_scrape_collector_*`` families and a log line, never in the scrape's status.
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from prometheus_client.core import Metric

from stackwatch.core.redact import redact, redact_text

from .collector import Collector, CollectorDisabled, Intervals, Tier
from .families import gauge

__all__ = ["ConnectedTarget", "Poller", "Target"]

log = logging.getLogger("stackwatch.exporters")

S = TypeVar("S")
Opts = TypeVar("Opts")


@dataclass
class _Result:
    """What one collector run produced, until the tick publishes it."""

    name: str
    families: list[Metric] | None = None
    disabled_reason: str | None = None
    degraded: dict[str, str] = field(default_factory=dict)
    lost: BaseException | None = None
    elapsed: float = 0.0


@dataclass
class _Lane(Generic[S]):
    """One tier of a target: its collectors, its connection and its schedule."""

    tier: Tier
    collectors: list[Collector[S]]
    source: S | None = None
    next_due: float = 0.0
    failures: int = 0
    up: bool | None = None  # None until the first connection attempt
    polled: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class Target(abc.ABC, Generic[S]):
    """Base class: subclasses open connections (``open``) and classify their failures."""

    #: metric prefix of the self-observability families (``pg``, ``redis``, ``process``)
    prefix: str = ""
    #: the most seconds to wait between reconnect attempts
    max_backoff: float = 30.0

    def __init__(self, name: str, collectors: Sequence[Collector[S]], intervals: Intervals) -> None:
        self.name = name
        self.collectors = list(collectors)
        self.intervals = intervals
        self._lanes = {tier: _Lane(tier, [c for c in self.collectors if c.tier is tier])
                       for tier in Tier if any(c.tier is tier for c in self.collectors)}
        self._lock = threading.Lock()
        self._snapshot: dict[str, list[Metric]] = {}
        self._success: dict[str, float] = {}
        self._duration: dict[str, float] = {}
        self._last_success: dict[str, float] = {}
        self._disabled: dict[str, str] = {}
        self._degraded: dict[str, dict[str, str]] = {}
        #: bumped whenever what ``families()`` returns changes (lets the server reuse encodings)
        self.generation = 0
        self._error_reason = ""
        self.polled = threading.Event()

    # -- to implement -------------------------------------------------------------------
    @abc.abstractmethod
    def open(self) -> S:
        """A new live source (connection), raising when the target is unreachable."""

    def close_source(self, source: S) -> None:
        """Close a source ``open`` returned (errors are ignored: it may be dead already)."""

    def reusable(self, source: S) -> bool:
        """Whether a source kept from the previous tick can serve this one."""
        return True

    def start_tick(self, source: S) -> None:
        """Called before a lane's collectors run on ``source`` (e.g. to drop per-tick caches)."""

    def classify_error(self, error: BaseException) -> str:
        """A short fixed reason for a connection failure (exported as a label)."""
        return "error"

    def is_connection_lost(self, error: BaseException, source: S) -> bool:
        """Whether ``error`` means ``source``'s connection is gone (rather than one query failing)."""
        return False

    def lost_reason(self, error: BaseException | None) -> str:
        """The reason exported when a lane's connection is lost while polling."""
        return "connection_lost"

    # -- the poll loop ------------------------------------------------------------------
    def tiers(self) -> list[Tier]:
        """The tiers that have collectors: one lane (poller thread, connection) each."""
        return list(self._lanes)

    def refresh(self) -> float:
        """Run every lane that is due, one after the other, in the calling thread; return how
        long to wait before the next one is due (the pollers run lanes in threads instead)."""
        if not self._lanes:
            self.polled.set()
            return self.intervals.fast
        return min(self.poll(tier) for tier in self._lanes)

    def poll(self, tier: Tier) -> float:
        """Run the ``tier`` lane if it is due; return how long it may sleep before its next tick."""
        lane = self._lanes[tier]
        with lane.lock:
            wait = lane.next_due - time.monotonic()
            if wait > 0:
                return wait
            try:
                source = lane.source
                if source is None or not self.reusable(source):
                    self._close_lane(lane)
                    source = lane.source = self.open()
            except Exception as error:  # noqa: BLE001 - any failure means "down", never a crash
                return self._lane_down(lane, self.classify_error(error), error)
            self._lane_up(lane)
            start = time.monotonic()
            self.start_tick(source)
            results: list[_Result] = []
            for collector in lane.collectors:
                results.append(self._run(collector, source))
                if results[-1].lost is not None:
                    break
            self._publish(results)
            lost = results[-1].lost if results else None
            if lost is not None:
                return self._lane_down(lane, self.lost_reason(lost), lost)
            lane.next_due = start + self.intervals.of(tier)
            self._mark_polled(lane)
            return max(0.05, lane.next_due - time.monotonic())

    def _run(self, collector: Collector[S], source: S) -> _Result:
        """Run one collector (off the lock); ``lost`` holds the error when the connection went."""
        start = time.monotonic()
        result = _Result(collector.name)
        collector.take_degraded()
        try:
            result.families = collector.collect(source)
        except CollectorDisabled as disabled:
            result.families, result.disabled_reason = [], disabled.reason
        except Exception as error:  # noqa: BLE001
            result.lost = error if self.is_connection_lost(error, source) else None
            log.warning(
                "target %s: collector %s failed: %s",
                self.name, collector.name, redact_text(str(error)).strip(),
            )
        if result.families is not None:
            result.degraded = collector.take_degraded()
        result.elapsed = time.monotonic() - start
        return result

    def _publish(self, results: list[_Result]) -> None:
        """Put one tick's results into the snapshot at once: a scrape never sees families of one
        tier taken from different readings (the Redis hit ratio subtracts commandstats from
        keyspace counters of the same INFO)."""
        finished = time.time()
        news: list[tuple[str, str, str]] = []
        with self._lock:  # scrapes iterate these dicts: change them only under the lock
            self.generation += 1
            for r in results:
                if r.disabled_reason is not None:
                    self._disabled[r.name] = r.disabled_reason
                elif r.families is not None:
                    self._disabled.pop(r.name, None)
                self._duration[r.name] = r.elapsed
                self._success[r.name] = 0.0 if r.families is None else 1.0
                before = self._degraded.pop(r.name, {})
                if r.families is None:
                    self._snapshot.pop(r.name, None)
                    continue
                self._snapshot[r.name] = r.families
                self._last_success[r.name] = finished
                if r.degraded:
                    self._degraded[r.name] = r.degraded
                news += [(r.name, reason, detail) for reason, detail in r.degraded.items() if reason not in before]
        for name, reason, detail in news:  # once per episode, not once per poll
            log.warning("target %s: collector %s is incomplete (%s): %s", self.name, name, reason, redact_text(detail))

    def _lane_up(self, lane: _Lane[S]) -> None:
        lane.failures = 0
        if lane.up:
            return
        lane.up = True
        with self._lock:
            self.generation += 1
            if lane is self._primary:
                self._error_reason = ""

    def _lane_down(self, lane: _Lane[S], reason: str, error: BaseException | None) -> float:
        """Record a lane's connection failure. The primary lane's means the target is down; another
        lane's fails only that lane's collectors (a server out of connection slots keeps its
        fast tier, which holds its connection, and the saturation it measures). Either way the
        lane keeps its schedule: it retries with backoff, and runs as soon as it connects."""
        detail = redact_text(str(error)).strip() if error is not None else ""
        primary = lane is self._primary
        if primary:
            log.warning("target %s: down (%s): %s", self.name, reason, detail)
        else:
            log.warning("target %s: %s tier cannot poll (%s): %s", self.name, lane.tier.value, reason, detail)
        self._close_lane(lane)
        lane.up = False
        lane.failures += 1
        with self._lock:
            self.generation += 1
            if primary:
                self._error_reason = reason
            else:
                for collector in lane.collectors:
                    self._success[collector.name] = 0.0
                    self._snapshot.pop(collector.name, None)
                    self._degraded.pop(collector.name, None)
        self._mark_polled(lane)
        return float(min(self.max_backoff, self.intervals.fast, 0.5 * 2 ** min(lane.failures, 8)))

    def _close_lane(self, lane: _Lane[S]) -> None:
        if lane.source is not None:
            source, lane.source = lane.source, None
            try:
                self.close_source(source)
            except Exception:  # noqa: BLE001 - closing a dead connection may fail; it is gone anyway
                pass

    def _mark_polled(self, lane: _Lane[S]) -> None:
        lane.polled = True
        if all(other.polled for other in self._lanes.values()):
            self.polled.set()

    @property
    def _primary(self) -> _Lane[S] | None:
        """The most frequent tier's lane: its connection says whether the target is up."""
        return next(iter(self._lanes.values()), None)

    @property
    def up(self) -> bool:
        """Whether the primary lane's last connection attempt succeeded."""
        primary = self._primary
        return primary is not None and bool(primary.up)

    # -- what a scrape sees -------------------------------------------------------------
    def families(self) -> list[Metric]:
        """The latest snapshot plus the self-observability families. While the target is down
        the snapshot is held back and every collector reports success 0: the data is not current."""
        p = self.prefix
        up = gauge(f"{p}_up", f"Whether the last connection to the {p} target succeeded (1) or not (0).")
        success = gauge(f"{p}_scrape_collector_success", "Whether the collector's last poll succeeded.", ["collector"])
        duration = gauge(f"{p}_scrape_collector_duration_seconds", "Duration of the collector's last poll.",
                         ["collector"])
        last = gauge(f"{p}_scrape_collector_last_success_timestamp_seconds",
                     "Unix time of the collector's last successful poll.", ["collector"])
        interval = gauge(f"{p}_scrape_collector_interval_seconds",
                         "Seconds between the collector's polls (its tier's interval).", ["collector"])
        series = gauge(f"{p}_scrape_collector_series", "Series the collector contributes to the snapshot.",
                       ["collector"])
        disabled = gauge(f"{p}_scrape_collector_disabled",
                         "1 for a collector that cannot run on this target, with the reason.", ["collector", "reason"])
        degraded = gauge(f"{p}_scrape_collector_degraded",
                         "1 for a collector whose last poll succeeded with part of its data missing, with why.",
                         ["collector", "reason"])
        error = gauge(f"{p}_connection_error", "1 while the target is down, labelled by why.", ["reason"])
        for collector in self.collectors:
            interval.add_metric([collector.name], self.intervals.of(collector.tier))
        with self._lock:
            is_up = self.up
            out: list[Metric] = [m for fams in self._snapshot.values() for m in fams] if is_up else []
            up.add_metric([], 1.0 if is_up else 0.0)
            for name, value in self._success.items():
                success.add_metric([name], value if is_up else 0.0)
            for name, seconds in self._duration.items():
                duration.add_metric([name], seconds)
            for name, ts in self._last_success.items():
                last.add_metric([name], ts)
            if is_up:
                for name, fams in self._snapshot.items():
                    series.add_metric([name], sum(len(m.samples) for m in fams))
                for name, reasons in self._degraded.items():
                    for reason in sorted(reasons):
                        degraded.add_metric([name, reason], 1)
            for name, reason in self._disabled.items():
                disabled.add_metric([name, reason], 1)
            if not is_up and self._error_reason:
                error.add_metric([self._error_reason], 1)
        return out + [up, success, duration, last, interval, series, disabled, degraded, error]

    def freshness(self) -> list[Metric]:
        """The age of each collector's snapshot, computed at scrape time (never cached): a lane
        that stopped polling shows here even though its snapshot does not change."""
        age = gauge(f"{self.prefix}_scrape_collector_snapshot_age_seconds",
                    "Seconds since the collector's last successful poll (compare with "
                    f"{self.prefix}_scrape_collector_interval_seconds).", ["collector"])
        now = time.time()
        with self._lock:
            for name, ts in self._last_success.items():
                age.add_metric([name], max(0.0, now - ts))
        return [age]

    def describe_target(self) -> dict[str, Any]:
        """What the startup log and readiness endpoint say about this target (no secrets)."""
        return {"name": self.name, "prefix": self.prefix, "collectors": [c.name for c in self.collectors]}

    def close(self, tier: Tier | None = None) -> None:
        """Close the connection of one lane, or of every lane."""
        for lane in self._lanes.values():
            if tier is None or lane.tier is tier:
                with lane.lock:
                    self._close_lane(lane)


class Poller(threading.Thread):
    """Runs one lane (tier) of a target until stopped."""

    def __init__(self, target: Target[Any], tier: Tier, stop: threading.Event) -> None:
        super().__init__(name=f"poll-{target.name}-{tier.value}", daemon=True)
        self.target = target
        self.tier = tier
        self.stop = stop

    def run(self) -> None:
        delay = 0.0
        while not self.stop.wait(delay):
            try:
                delay = self.target.poll(self.tier)
            except Exception:  # noqa: BLE001 - the poller must outlive any bug in a collector
                log.exception("target %s: %s tier poll failed", self.target.name, self.tier.value)
                delay = self.target.intervals.of(self.tier)
        self.target.close(self.tier)


class ConnectedTarget(Target[S], Generic[S, Opts]):
    """A target reached at one address that may carry a password (a DSN, a URL), with its kind's
    options: a subclass declares only what differs (``address_key``, :meth:`check_address`,
    ``open``). The address is checked before any thread starts and never shown unredacted."""

    #: what the address is called in the startup log and readiness output (``dsn``, ``url``)
    address_key: str = "address"

    def __init__(self, name: str, address: str, collectors: Sequence[Collector[S]], intervals: Intervals,
                 options: Opts) -> None:
        self.check_address(address)  # fail fast on a malformed address
        super().__init__(name, collectors, intervals)
        self.address = address
        self.options = options

    @staticmethod
    @abc.abstractmethod
    def check_address(address: str) -> None:
        """Raise (with a message holding no secret) when ``address`` is malformed."""

    def describe_target(self) -> dict[str, Any]:
        return {**super().describe_target(), self.address_key: redact(self.address)}
