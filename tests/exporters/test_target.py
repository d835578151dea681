"""The target framework: tiers, snapshot, failure containment. The source is a plain object:
what is tested is the scheduling, not a server."""

from __future__ import annotations

import threading

from prometheus_client.core import Metric

from stackwatch.exporters.collector import Collector, CollectorDisabled, Intervals, Tier
from stackwatch.exporters.families import gauge
from stackwatch.exporters.target import Poller, Target


class Source:
    def __init__(self) -> None:
        self.reachable = True
        self.calls: dict[str, int] = {}
        self.ticks = 0


class Counting(Collector[Source]):
    name = "counting"
    tier = Tier.FAST

    def collect(self, source: Source) -> list[Metric]:
        source.calls[self.name] = source.calls.get(self.name, 0) + 1
        family = gauge("t_polls", "polls so far")
        family.add_metric([], source.calls[self.name])
        return [family]


class Slow(Counting):
    name = "slow"
    tier = Tier.SLOW


class Broken(Collector[Source]):
    name = "broken"
    tier = Tier.FAST

    def collect(self, source: Source) -> list[Metric]:
        raise RuntimeError("query failed: password=hunter2")


class Unavailable(Collector[Source]):
    name = "unavailable"
    tier = Tier.FAST

    def collect(self, source: Source) -> list[Metric]:
        raise CollectorDisabled("extension_missing")


class InMemoryTarget(Target[Source]):
    prefix = "t"

    def __init__(self, collectors: list[Collector[Source]], intervals: Intervals) -> None:
        super().__init__("t1", collectors, intervals)
        self.source = Source()
        self.connects = 0

    def open(self) -> Source:
        self.connects += 1
        if not self.source.reachable:
            raise ConnectionError("unreachable")
        return self.source

    def start_tick(self, source: Source) -> None:
        source.ticks += 1

    def classify_error(self, error: BaseException) -> str:
        return "unreachable"


def samples(target: Target[Source]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for m in target.families() for s in m.samples}


def test_scrapes_read_the_snapshot_without_polling() -> None:
    target = InMemoryTarget([Counting()], Intervals(fast=60))
    target.refresh()
    for _ in range(50):
        target.families()
    assert target.source.calls == {"counting": 1}
    assert samples(target)[("t_polls", ())] == 1
    assert samples(target)[("t_up", ())] == 1


def test_tiers_poll_on_their_own_schedule() -> None:
    target = InMemoryTarget([Counting(), Slow()], Intervals(fast=0.01, slow=3600))
    target.refresh()
    threading.Event().wait(0.02)
    target.refresh()
    assert target.source.calls == {"counting": 2, "slow": 1}


def test_failing_collector_is_contained_and_visible(caplog) -> None:
    target = InMemoryTarget([Counting(), Broken(), Unavailable()], Intervals())
    target.refresh()
    got = samples(target)
    assert got[("t_scrape_collector_success", (("collector", "broken"),))] == 0
    assert got[("t_scrape_collector_success", (("collector", "counting"),))] == 1
    assert got[("t_scrape_collector_disabled", (("collector", "unavailable"), ("reason", "extension_missing")))] == 1
    assert got[("t_scrape_collector_series", (("collector", "counting"),))] == 1
    assert got[("t_up", ())] == 1
    assert "hunter2" not in caplog.text and "broken failed" in caplog.text


def test_unreachable_target_reports_down_then_recovers() -> None:
    target = InMemoryTarget([Counting()], Intervals(fast=0.01))
    target.source.reachable = False
    delay = target.refresh()
    assert 0 < delay <= 0.01
    got = samples(target)
    assert got[("t_up", ())] == 0
    assert got[("t_connection_error", (("reason", "unreachable"),))] == 1
    assert ("t_polls", ()) not in got
    target.source.reachable = True
    target.refresh()
    got = samples(target)
    assert got[("t_up", ())] == 1 and got[("t_polls", ())] == 1
    assert not any(name == "t_connection_error" for name, _ in got)


def test_poller_thread_stops_on_event() -> None:
    target = InMemoryTarget([Counting()], Intervals(fast=0.01))
    stop = threading.Event()
    poller = Poller(target, Tier.FAST, stop)
    poller.start()
    assert target.polled.wait(5)
    stop.set()
    poller.join(5)
    assert not poller.is_alive()
    assert target.source.calls["counting"] >= 1


class Reading(Collector[Source]):
    """Reports which tick (which shared reading, e.g. Redis's one INFO) it was given."""

    name = "reading_a"
    tier = Tier.FAST

    def __init__(self, name: str, seconds: float = 0.0) -> None:
        self.name, self.seconds = name, seconds

    def collect(self, source: Source) -> list[Metric]:
        family = gauge(f"t_{self.name}_reading", "which tick this poll was part of")
        family.add_metric([], source.ticks)
        threading.Event().wait(self.seconds)
        return [family]


def test_a_tiers_collectors_share_one_reading_and_reach_the_snapshot_together() -> None:
    """Two collectors of the fast tier must keep reading the same INFO poll after poll (the Redis
    hit ratio subtracts one from the other), and a scrape must never see one of them updated and
    not the other."""
    target = InMemoryTarget([Reading("a", seconds=0.1), Reading("b")], Intervals(fast=0.2))
    torn: list[tuple[float, float]] = []
    stop = threading.Event()

    def scrape() -> None:
        while not stop.is_set():
            values = {name: value for (name, _), value in samples(target).items() if name.endswith("_reading")}
            if len(values) == 2 and len(set(values.values())) != 1:
                torn.append((values["t_a_reading"], values["t_b_reading"]))

    scraper = threading.Thread(target=scrape, daemon=True)
    scraper.start()
    for _ in range(6):
        threading.Event().wait(target.refresh())
    stop.set()
    scraper.join(5)
    readings = samples(target)
    assert readings[("t_a_reading", ())] == readings[("t_b_reading", ())]
    assert target.source.ticks == 6, target.source.ticks  # one tick per refresh, both collectors in each
    assert torn == []
