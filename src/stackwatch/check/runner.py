"""Run the configured sources concurrently under one deadline and collect one finding per item.

Each source (PostgreSQL, Redis, Prometheus, the app) runs in its own daemon thread, so a slow
one (Redis's INFO window, a query at its statement timeout) does not hold up the others, and the
deadline is enforced by no longer waiting: items not evaluated in time come back ``unknown``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from stackwatch.core.redact import redact_text

from .model import SECTIONS, Finding, Item, SourceUnavailable, Status

__all__ = ["Budget", "Source", "Report", "Progress", "run_checks"]


class Budget:
    """The whole check's deadline and the per-query/request timeout, clipped to what is left."""

    def __init__(self, deadline: float, timeout: float) -> None:
        self.end = time.monotonic() + deadline
        self.timeout = timeout

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def seconds(self, cap: float | None = None) -> float:
        """A timeout for the next query or request: the configured one, never past the deadline."""
        return max(0.05, min(self.timeout if cap is None else cap, self.remaining()))

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0


@dataclass(frozen=True)
class Source:
    """A system to check: its items, and how to check them (``None`` when it was not given)."""

    name: str
    items: Sequence[Item]
    run: Callable[[Budget], Iterable[Finding]] | None
    missing: str  # what would let it check, e.g. "pass --redis-url"


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # unreachable sources (exit code 2)

    def worst(self) -> Status | None:
        statuses = {f.status for f in self.findings}
        for status in (Status.FAIL, Status.WARN):
            if status in statuses:
                return status
        return None


class Progress:
    """Progress on stderr: one rewritten line on a terminal, a line per finished source otherwise."""

    def __init__(self, stream: TextIO | None, total: int) -> None:
        self.stream = stream
        self.tty = bool(stream is not None and stream.isatty())
        self.total = total
        self.done = 0
        self.running: list[str] = []
        self.lock = threading.Lock()

    def _line(self) -> None:
        if self.stream is not None and self.tty:
            running = ", ".join(self.running) or "done"
            self.stream.write(f"\r\033[Kchecking {running}: {self.done}/{self.total} items")
            self.stream.flush()

    def start(self, name: str) -> None:
        with self.lock:
            self.running.append(name)
            self._line()

    def item(self) -> None:
        with self.lock:
            self.done += 1
            self._line()

    def finish(self, name: str, seconds: float, error: str | None) -> None:
        with self.lock:
            self.running.remove(name)
            if self.stream is not None and not self.tty:
                outcome = f"error: {error}" if error else "done"
                self.stream.write(f"stackwatch check: {name} {outcome} ({seconds:.1f}s)\n")
                self.stream.flush()
            self._line()

    def close(self) -> None:
        """Clear the progress line; sources still running past the deadline stay silent."""
        with self.lock:
            if self.stream is not None and self.tty:
                self.stream.write("\r\033[K")
                self.stream.flush()
            self.stream = None


class _Worker(threading.Thread):
    def __init__(self, source: Source, budget: Budget, progress: Progress) -> None:
        super().__init__(name=f"check-{source.name}", daemon=True)
        self.source, self.budget, self.progress = source, budget, progress
        self.findings: dict[str, Finding] = {}
        self.lock = threading.Lock()
        self.error: str | None = None
        self.unavailable = False

    def run(self) -> None:
        began = time.monotonic()
        self.progress.start(self.source.name)
        assert self.source.run is not None
        try:
            for finding in self.source.run(self.budget):
                with self.lock:
                    self.findings.setdefault(finding.item.id, finding)
                self.progress.item()
        except SourceUnavailable as error:
            self.error, self.unavailable = redact_text(str(error)), True
        except Exception as error:  # noqa: BLE001 - one broken source must not hide the others
            self.error = redact_text(f"{type(error).__name__}: {error}")
        self.progress.finish(self.source.name, time.monotonic() - began, self.error)

    def snapshot(self) -> dict[str, Finding]:
        with self.lock:
            return dict(self.findings)


def run_checks(sources: Sequence[Source], budget: Budget, progress: Progress) -> Report:
    """One finding per item of every source, in declaration order."""
    workers = [_Worker(s, budget, progress) for s in sources if s.run is not None]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(budget.remaining())
    progress.close()
    report = Report()
    by_source = {w.source.name: w for w in workers}
    for source in sources:
        found = by_source[source.name].snapshot() if source.name in by_source else {}
        for item in source.items:
            if item.id in found:
                report.findings.append(found[item.id])
            else:
                report.findings.append(_missing(item, source, by_source.get(source.name)))
        failed = by_source.get(source.name)
        if failed is not None and failed.unavailable:
            report.errors.append(f"{source.name}: {failed.error}")
    report.findings.sort(key=lambda f: SECTIONS.index(f.item.section))  # stable: keeps item order
    return report


def _missing(item: Item, source: Source, worker: _Worker | None) -> Finding:
    """The ``unknown`` finding of an item its source did not evaluate, saying why."""
    if worker is None:
        return item.finding(Status.UNKNOWN, "not checked", source.missing)
    if worker.unavailable:
        return item.finding(Status.UNKNOWN, f"not checked: {worker.error}",
                            f"fix the {source.name} connection and run again")
    if worker.error:
        return item.finding(Status.UNKNOWN, f"not checked: {worker.error}", "")
    if worker.is_alive():
        return item.finding(Status.UNKNOWN, "not checked before the deadline",
                            "raise --deadline (or --timeout if one query is slow)")
    return item.finding(Status.UNKNOWN, "not evaluated", "")
