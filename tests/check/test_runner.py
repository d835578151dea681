"""The runner's bookkeeping: one finding per item, whatever a source does (pure logic, no servers)."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator

from stackwatch.check.cli import exit_code
from stackwatch.check.model import Finding, Item, SourceUnavailable, Status
from stackwatch.check.runner import Budget, Progress, Source, run_checks

A = Item("t.a", "Caching", "first")
B = Item("t.b", "Caching", "second")
C = Item("t.c", "Database", "third")


def test_every_item_gets_exactly_one_finding_sorted_by_checklist_section() -> None:
    release = threading.Event()

    def slow(budget: Budget) -> Iterator[Finding]:
        yield A.finding(Status.PASS, "quick")
        release.wait(10)  # still running at the deadline
        yield B.finding(Status.PASS, "late")

    def broken(budget: Budget) -> Iterator[Finding]:
        raise ValueError("boom password=hunter2")
        yield  # pragma: no cover

    report = run_checks([Source("slow", (A, B), slow, ""), Source("broken", (C,), broken, ""),
                         Source("absent", (Item("t.d", "Monitoring", "fourth"),), None, "pass --thing")],
                        Budget(0.5, 5), Progress(None, 4))
    release.set()
    by_id = {f.item.id: f for f in report.findings}
    assert [f.item.id for f in report.findings] == ["t.c", "t.a", "t.b", "t.d"]
    assert by_id["t.a"].status == Status.PASS
    assert by_id["t.b"].status == Status.UNKNOWN and "deadline" in by_id["t.b"].evidence
    assert "ValueError: boom" in by_id["t.c"].evidence and "hunter2" not in by_id["t.c"].evidence
    assert by_id["t.d"].fix == "pass --thing"
    assert report.errors == [] and exit_code(report, "fail") == 0


def test_unreachable_source_is_an_error_and_exit_code_2() -> None:
    def down(budget: Budget) -> Iterator[Finding]:
        raise SourceUnavailable("cannot connect to x")
        yield  # pragma: no cover

    stream = io.StringIO()
    report = run_checks([Source("db", (A,), down, "")], Budget(5, 1), Progress(stream, 1))
    assert report.errors == ["db: cannot connect to x"]
    assert "db error: cannot connect to x" in stream.getvalue()
    assert exit_code(report, "fail") == 2


def test_fail_on_decides_whether_warnings_fail() -> None:
    def warns(budget: Budget) -> Iterator[Finding]:
        yield A.finding(Status.WARN, "meh")

    report = run_checks([Source("s", (A,), warns, "")], Budget(5, 1), Progress(None, 1))
    assert exit_code(report, "fail") == 0 and exit_code(report, "warn") == 1


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_is_one_rewritten_line_cleared_at_the_end() -> None:
    def one(budget: Budget) -> Iterator[Finding]:
        yield A.finding(Status.PASS, "ok")

    stream = _Terminal()
    run_checks([Source("cache", (A,), one, "")], Budget(5, 1), Progress(stream, 1))
    text = stream.getvalue()
    assert "\r\033[Kchecking cache: 0/1 items" in text and "checking cache: 1/1 items" in text
    assert text.endswith("\r\033[K") and "\n" not in text
