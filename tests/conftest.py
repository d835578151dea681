"""Shared fixtures are plugins in tests/fixtures/, one file per server kind.

Under ``CI=true`` a skipped test fails the run: every server a test needs is installed by the
test command, so a skip can only hide a missing install step. Under pytest-xdist the check runs
in the controller, whose terminal reporter counts every worker's reports (a worker's own exit
status is not what the run exits with).
"""

from __future__ import annotations

import pytest

from tests.fixtures.procs import IN_CI

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.redis",
    "tests.fixtures.prometheus",
    "tests.fixtures.otlp",
    "tests.fixtures.sentry",
    "tests.fixtures.uvicorn",
]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller judges the run
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if IN_CI and skipped and exitstatus == 0:
        reporter.write_line(f"CI=true: {skipped} test(s) skipped; failing the run", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
