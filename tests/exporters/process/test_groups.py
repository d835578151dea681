"""Process groups over real child processes with known CPU burn and memory."""

from __future__ import annotations

import os
import pickle
import pwd
import re

import psutil
import pytest

from stackwatch.exporters.collector import CollectorDisabled
from stackwatch.exporters.process.groups import (
    GroupsCollector,
    GroupTotals,
    ProcessGroup,
    parse_group,
)
from stackwatch.exporters.process.target import ProcessSource

from .helpers import MiB, registry_of, workers


def _source(*groups: ProcessGroup) -> ProcessSource:
    return ProcessSource(groups=groups)


def _value(collector: GroupsCollector, source: ProcessSource, name: str, **labels: str) -> float | None:
    return registry_of(collector.collect(source)).get_sample_value(name, labels)


def test_group_sums_cpu_memory_and_counts_of_its_processes() -> None:
    with workers() as w:
        burners = [w.start(cpu=0.5) for _ in range(2)]
        holder = w.start(mib=50)
        source = _source(parse_group(f"test={w.marker}"), parse_group("nothing=^no-such-process-name$"))
        registry = registry_of(GroupsCollector().collect(source))

        def value(name: str, **labels: str) -> float | None:
            return registry.get_sample_value(name, {"group": "test", **labels})

        assert value("process_group_processes") == 3
        cpu = value("process_group_cpu_seconds_total", mode="user") + value(  # type: ignore[operator]
            "process_group_cpu_seconds_total", mode="system")
        assert cpu >= 2 * 0.5
        assert value("process_group_resident_memory_bytes") >= 50 * MiB  # type: ignore[operator]
        assert value("process_group_virtual_memory_bytes") >= value("process_group_resident_memory_bytes")  # type: ignore[operator]
        assert value("process_group_threads") >= 3  # type: ignore[operator]
        assert value("process_group_open_fds") >= 3 * 3  # type: ignore[operator] # stdin, stdout, stderr each
        assert value("process_group_context_switches_total", ctxswitch="voluntary") > 0  # type: ignore[operator]
        assert value("process_group_access_denied") == 0
        oldest = min(psutil.Process(p.pid).create_time() for p in [*burners, holder])
        assert value("process_group_oldest_start_time_seconds") == pytest.approx(oldest)
        # a declared group with no process still has its series (0), but no oldest start time
        assert registry.get_sample_value("process_group_processes", {"group": "nothing"}) == 0
        assert registry.get_sample_value("process_group_oldest_start_time_seconds", {"group": "nothing"}) is None


def test_cpu_counter_stays_monotonic_when_processes_exit() -> None:
    collector = GroupsCollector()
    with workers() as w:
        source = _source(parse_group(f"test={w.marker}"))
        first = w.start(cpu=0.4)
        w.start(cpu=0.2)

        def cpu() -> float:
            registry = registry_of(collector.collect(source))
            return sum(registry.get_sample_value("process_group_cpu_seconds_total",  # type: ignore[misc]
                                                 {"group": "test", "mode": m}) for m in ("user", "system"))

        before = cpu()
        assert before >= 0.6
        w.stop(first)
        after_exit = cpu()
        assert after_exit >= before
        assert _value(collector, source, "process_group_processes", group="test") == 1
        w.start(cpu=0.3)  # a newcomer adds its CPU on top of the exited one's
        assert cpu() >= before + 0.3 - 1e-9  # float sums


def test_totals_keep_exited_processes_and_treat_a_reused_pid_as_a_new_process() -> None:
    totals = GroupTotals()
    assert totals.update({(100, 1.0): [2.0, 1.0, 5, 5, 10, 10]}) == [2.0, 1.0, 5, 5, 10, 10]
    # same pid, new start time: the old process exited, the new one starts from its own zero
    assert totals.update({(100, 9.0): [0.5, 0.0, 1, 0, 0, 0]}) == [2.5, 1.0, 6, 5, 10, 10]
    # a field that could not be read this poll (0) keeps the process's last value
    assert totals.update({(100, 9.0): [0.0, 0.0, 0, 0, 0, 0]}) == [2.5, 1.0, 6, 5, 10, 10]
    assert totals.update({}) == [2.5, 1.0, 6, 5, 10, 10]


def test_first_matching_group_wins_and_name_or_cmdline_match() -> None:
    with workers() as w:
        w.start()
        own_name = psutil.Process().name()  # the worker runs the same interpreter, so has this name too
        source = _source(parse_group(f"by-cmdline={w.marker}"), parse_group(f"by-name=^{re.escape(own_name)}$"))
        registry = registry_of(GroupsCollector().collect(source))
        assert registry.get_sample_value("process_group_processes", {"group": "by-cmdline"}) == 1
        # this test process matches by name; the worker matched the first group and is not counted twice
        by_name = registry.get_sample_value("process_group_processes", {"group": "by-name"})
        same_name = [p for p in psutil.process_iter(["name", "cmdline"])
                     if p.info["name"] == own_name and w.marker not in " ".join(p.info["cmdline"] or [])]
        assert by_name == len(same_name) >= 1


def test_other_users_processes_are_counted_with_access_denied() -> None:
    """As an unprivileged user, /proc/PID/io and /proc/PID/fd of root's processes are refused."""
    with workers() as w:
        w.start(cpu=0.2, mib=10)
        source = _source(parse_group(f"test={w.marker}"))
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the forked child
            try:
                user = pwd.getpwnam("nobody")
                os.setgroups([])
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)
                registry = registry_of(GroupsCollector().collect(source))
                values = {name: registry.get_sample_value(name, {"group": "test"}) for name in (
                    "process_group_processes", "process_group_access_denied", "process_group_resident_memory_bytes")}
                os.write(write, pickle.dumps(values))
            finally:
                os._exit(0)
        os.close(write)
        data = b""
        while chunk := os.read(read, 65536):
            data += chunk
        os.waitpid(child, 0)
        values = pickle.loads(data)
        assert values["process_group_processes"] == 1
        assert values["process_group_access_denied"] == 1
        assert values["process_group_resident_memory_bytes"] >= 10 * MiB


def test_no_groups_disables_the_collector() -> None:
    with pytest.raises(CollectorDisabled) as raised:
        GroupsCollector().collect(ProcessSource())
    assert raised.value.reason == "no_groups_configured"


@pytest.mark.parametrize(("text", "message"), [
    ("noequals", "expected NAME=REGEX"),
    ("name=", "expected NAME=REGEX"),
    ("bad name=x", "group name 'bad name'"),
    ("g=(unclosed", "regex '(unclosed' does not compile"),
])
def test_parse_group_rejects_bad_input(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_group(text)


def test_parse_group_splits_on_the_first_equals_sign() -> None:
    group = parse_group("web=gunicorn.*--bind=0.0.0.0")
    assert group.name == "web"
    assert group.pattern.pattern == "gunicorn.*--bind=0.0.0.0"
    assert group.matches("python", "gunicorn app:app --bind=0.0.0.0:8000")
    assert not group.matches("python", "uvicorn app:app")
