"""The process kind as the exporter builds it from flags: when the target exists, what it runs,
and how failures show (never as a crash)."""

from __future__ import annotations

from typing import Any

from stackwatch.cli import build_parser
from stackwatch.core.options import resolve_options
from stackwatch.exporters import main
from stackwatch.exporters.process import ProcessTarget

from .helpers import registry_of


def _targets(*args: str) -> list[ProcessTarget]:
    values = resolve_options(main.all_options(), build_parser().parse_args(["exporter", *args]), {})
    return [t for t in main.build(values).targets if isinstance(t, ProcessTarget)]


def _poll(target: ProcessTarget) -> Any:
    target.refresh()
    return registry_of(target.families())


def test_no_process_flags_no_process_target() -> None:
    assert _targets() == []


def test_cgroup_only_runs_the_cgroup_collector_and_reports_groups_disabled() -> None:
    (target,) = _targets("--cgroup", "self")
    assert target.source.cgroup is None  # `self` means the exporter's own cgroup
    registry = _poll(target)
    assert registry.get_sample_value("process_up") == 1
    assert registry.get_sample_value("process_scrape_collector_success", {"collector": "cgroup"}) == 1
    assert registry.get_sample_value("process_scrape_collector_disabled",
                                     {"collector": "groups", "reason": "no_groups_configured"}) == 1
    assert target.describe_target()["cgroup"] == "self"


def test_missing_explicit_cgroup_fails_only_its_collector() -> None:
    (target,) = _targets("--cgroup", "/no/such/cgroup", "--process-group", "py=python")
    registry = _poll(target)
    assert registry.get_sample_value("process_up") == 1
    assert registry.get_sample_value("process_scrape_collector_success", {"collector": "cgroup"}) == 0
    assert registry.get_sample_value("process_scrape_collector_success", {"collector": "groups"}) == 1
    assert registry.get_sample_value("process_group_processes", {"group": "py"}) >= 1  # type: ignore[operator]


def test_collectors_can_be_disabled_by_name() -> None:
    (target,) = _targets("--process-group", "py=python", "--disable-collector", "process.cgroup")
    assert [c.name for c in target.collectors] == ["groups", "filesystem"]
    assert target.describe_target()["groups"] == ["py"]
