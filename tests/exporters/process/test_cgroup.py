"""cgroup limits: parsing on canned v1/v2 layouts, then this machine's real cgroups."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stackwatch.exporters.collector import CollectorDisabled
from stackwatch.exporters.process.cgroup import (
    CgroupCollector,
    CgroupNotFound,
    locate,
    parse_mountinfo,
    parse_proc_cgroup,
    read_usage,
)
from stackwatch.exporters.process.target import ProcessSource

from .helpers import MiB, registry_of

V1_UNLIMITED = "9223372036854771712"


def _write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text + "\n")
    return directory


def _mountinfo_v2(point: Path, root: str = "/") -> str:
    return (f"22 27 0:21 / /proc rw,relatime - proc proc rw\n"
            f"30 23 0:26 {root} {point} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n")


def _mountinfo_v1(base: Path) -> str:
    return "".join(f"{32 + i} 31 0:{29 + i} / {base / c} rw,relatime - cgroup cgroup rw,{c}\n"
                   for i, c in enumerate(("cpu", "cpuacct", "memory"))) + \
        f"41 31 0:38 / {base / 'unified'} rw,relatime - cgroup2 cgroup2 rw\n"


def _collect(source: ProcessSource) -> dict[str, float | None]:
    registry = registry_of(CgroupCollector().collect(source))
    label = {"cgroup": source.cgroup or _own_label(source)}
    return {name: registry.get_sample_value(name, label) for name in (
        "process_cgroup_memory_current_bytes", "process_cgroup_memory_max_bytes", "process_cgroup_memory_limited",
        "process_cgroup_cpu_limit_cores", "process_cgroup_cpu_limited", "process_cgroup_cpu_usage_seconds_total",
        "process_cgroup_cpu_throttled_seconds_total", "process_cgroup_memory_working_set_bytes",
        "process_cgroup_oom_kills_total")}


def _own_label(source: ProcessSource) -> str:
    proc = source.proc_root / "self"
    return locate(None, (proc / "cgroup").read_text(), (proc / "mountinfo").read_text()).name


# -- parsing ---------------------------------------------------------------------------------
def test_parse_mountinfo_finds_v1_controllers_and_the_v2_mount() -> None:
    mounts = parse_mountinfo(_mountinfo_v1(Path("/sys/fs/cgroup")) +
                             "35 31 0:40 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n")
    assert [(m.version, sorted(m.controllers), str(m.point)) for m in mounts] == [
        (1, ["cpu"], "/sys/fs/cgroup/cpu"), (1, ["cpuacct"], "/sys/fs/cgroup/cpuacct"),
        (1, ["memory"], "/sys/fs/cgroup/memory"), (2, [], "/sys/fs/cgroup/unified")]
    combined = parse_mountinfo("32 31 0:29 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct\n")
    assert combined[0].root == "/docker/abc" and combined[0].controllers == {"cpu", "cpuacct"}


def test_parse_proc_cgroup_maps_controllers_and_the_unified_entry() -> None:
    paths = parse_proc_cgroup("4:memory:/a/b\n2:cpu,cpuacct:/c\n0::/user.slice/x.scope\n")
    assert paths == {"memory": "/a/b", "cpu": "/c", "cpuacct": "/c", "": "/user.slice/x.scope"}


def test_locate_v2_own_cgroup_relative_to_the_mount_root(tmp_path: Path) -> None:
    _write(tmp_path / "cg" / "app", {"memory.current": "1"})
    # a container: the mount shows the sub-tree /kubepods/pod1 at its mount point
    _write(tmp_path / "cg", {"memory.current": "2"})
    dirs = locate(None, "0::/kubepods/pod1\n", _mountinfo_v2(tmp_path / "cg", root="/kubepods/pod1"))
    assert dirs.version == 2 and dirs.memory == tmp_path / "cg"
    dirs = locate("/app", "0::/\n", _mountinfo_v2(tmp_path / "cg"))
    assert dirs.memory == tmp_path / "cg" / "app" and dirs.name == "/app"
    # a directory path under the mount point is accepted too, and named by its cgroup path
    dirs = locate(str(tmp_path / "cg" / "app"), "0::/\n", _mountinfo_v2(tmp_path / "cg"))
    assert dirs.memory == tmp_path / "cg" / "app" and dirs.name == "/app"
    with pytest.raises(CgroupNotFound, match="'/missing'"):
        locate("/missing", "0::/\n", _mountinfo_v2(tmp_path / "cg"))


def test_locate_v1_per_controller_directories(tmp_path: Path) -> None:
    for controller in ("cpu", "cpuacct", "memory"):
        (tmp_path / controller / "svc").mkdir(parents=True)
    dirs = locate(None, "4:memory:/svc\n2:cpuacct:/svc\n1:cpu:/svc\n0::/\n", _mountinfo_v1(tmp_path))
    assert (dirs.version, dirs.name) == (1, "/svc")
    assert (dirs.memory, dirs.cpu, dirs.cpuacct) == (tmp_path / "memory/svc", tmp_path / "cpu/svc",
                                                     tmp_path / "cpuacct/svc")


def test_no_cgroup_mount_is_an_error() -> None:
    with pytest.raises(CgroupNotFound, match="no cgroup filesystem"):
        locate(None, "0::/\n", "22 27 0:21 / /proc rw - proc proc rw\n")


# -- reading canned layouts ------------------------------------------------------------------
def test_v2_limits_and_usage(tmp_path: Path) -> None:
    _write(tmp_path, {"memory.current": str(300 * MiB), "memory.max": str(512 * MiB), "cpu.max": "150000 100000",
                      "cpu.stat": "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 10\n"
                                  "nr_throttled 3\nthrottled_usec 750000"})
    usage = read_usage(locate("/", "0::/\n", _mountinfo_v2(tmp_path)))
    assert (usage.memory_current, usage.memory_max, usage.memory_limited) == (300 * MiB, 512 * MiB, True)
    assert (usage.cpu_limit_cores, usage.cpu_limited) == (1.5, True)
    assert (usage.cpu_usage_seconds, usage.cpu_throttled_seconds) == (2.5, 0.75)


def test_v2_working_set_leaves_out_reclaimable_page_cache_and_oom_kills_are_counted(tmp_path: Path) -> None:
    _write(tmp_path, {"memory.current": str(300 * MiB), "memory.max": str(512 * MiB),
                      "memory.stat": f"anon {100 * MiB}\nfile {200 * MiB}\nactive_file {20 * MiB}\n"
                                     f"inactive_file {180 * MiB}",
                      "memory.events": "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2"})
    values = _collect_tree(tmp_path, "0::/\n", _mountinfo_v2(tmp_path))
    assert values["process_cgroup_memory_current_bytes"] == 300 * MiB
    assert values["process_cgroup_memory_working_set_bytes"] == 120 * MiB
    assert values["process_cgroup_oom_kills_total"] == 2


def test_v2_unlimited_has_flags_0_and_no_limit_values(tmp_path: Path) -> None:
    _write(tmp_path, {"memory.current": "4096", "memory.max": "max", "cpu.max": "max 100000",
                      "cpu.stat": "usage_usec 10\nthrottled_usec 0"})
    values = _collect_tree(tmp_path, "0::/\n", _mountinfo_v2(tmp_path))
    assert values["process_cgroup_memory_limited"] == 0 and values["process_cgroup_memory_max_bytes"] is None
    assert values["process_cgroup_cpu_limited"] == 0 and values["process_cgroup_cpu_limit_cores"] is None
    assert values["process_cgroup_memory_current_bytes"] == 4096


def test_v2_without_the_memory_controller_omits_memory_families(tmp_path: Path) -> None:
    _write(tmp_path, {"cpu.stat": "usage_usec 10"})
    usage = read_usage(locate("/", "0::/\n", _mountinfo_v2(tmp_path)))
    assert usage.memory_current is None and usage.memory_limited is None and usage.cpu_limited is None
    assert usage.cpu_usage_seconds == 10e-6


def test_v1_limits_and_usage(tmp_path: Path) -> None:
    _write(tmp_path / "memory" / "svc", {"memory.usage_in_bytes": str(20 * MiB),
                                         "memory.limit_in_bytes": str(64 * MiB)})
    _write(tmp_path / "cpu" / "svc", {"cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000",
                                      "cpu.stat": "nr_periods 5\nnr_throttled 2\nthrottled_time 1500000000"})
    _write(tmp_path / "cpuacct" / "svc", {"cpuacct.usage": "3000000000"})
    _write(tmp_path / "memory" / "svc", {"memory.stat": f"cache {8 * MiB}\ninactive_file {MiB}\n"
                                                        f"total_inactive_file {6 * MiB}",
                                         "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 1"})
    values = _collect_tree(tmp_path, "4:memory:/svc\n2:cpuacct:/svc\n1:cpu:/svc\n", _mountinfo_v1(tmp_path))
    assert values == {
        "process_cgroup_memory_current_bytes": 20 * MiB, "process_cgroup_memory_working_set_bytes": 14 * MiB,
        "process_cgroup_oom_kills_total": 1, "process_cgroup_memory_max_bytes": 64 * MiB,
        "process_cgroup_memory_limited": 1, "process_cgroup_cpu_limit_cores": 0.5,
        "process_cgroup_cpu_limited": 1, "process_cgroup_cpu_usage_seconds_total": 3.0,
        "process_cgroup_cpu_throttled_seconds_total": 1.5}


def test_v1_unlimited(tmp_path: Path) -> None:
    _write(tmp_path / "memory", {"memory.usage_in_bytes": "100", "memory.limit_in_bytes": V1_UNLIMITED})
    _write(tmp_path / "cpu", {"cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "100000", "cpu.stat": "throttled_time 0"})
    _write(tmp_path / "cpuacct", {"cpuacct.usage": "1"})
    values = _collect_tree(tmp_path, "4:memory:/\n2:cpuacct:/\n1:cpu:/\n", _mountinfo_v1(tmp_path))
    assert values["process_cgroup_memory_limited"] == 0 and values["process_cgroup_memory_max_bytes"] is None
    assert values["process_cgroup_cpu_limited"] == 0 and values["process_cgroup_cpu_limit_cores"] is None


def _collect_tree(tmp_path: Path, proc_cgroup: str, mountinfo: str) -> dict[str, float | None]:
    """Run the collector with a /proc whose self/cgroup and self/mountinfo are canned."""
    _write(tmp_path / "proc" / "self", {"cgroup": proc_cgroup.rstrip("\n"), "mountinfo": mountinfo.rstrip("\n")})
    return _collect(ProcessSource(proc_root=tmp_path / "proc"))


def test_missing_cgroup_disables_when_automatic_and_fails_when_explicit(tmp_path: Path) -> None:
    _write(tmp_path / "proc" / "self", {"cgroup": "0::/", "mountinfo": "22 27 0:21 / /proc rw - proc proc rw"})
    with pytest.raises(CollectorDisabled) as raised:
        CgroupCollector().collect(ProcessSource(proc_root=tmp_path / "proc"))
    assert raised.value.reason == "cgroup_unavailable"
    with pytest.raises(CgroupNotFound):
        CgroupCollector().collect(ProcessSource(cgroup="/system.slice/x.service", proc_root=tmp_path / "proc"))


# -- this machine ----------------------------------------------------------------------------
def test_own_cgroup_on_this_machine_reports_growing_cpu_usage() -> None:
    source = ProcessSource()
    collector = CgroupCollector()
    label = {"cgroup": _own_label(source)}
    before = registry_of(collector.collect(source))
    assert before.get_sample_value("process_cgroup_memory_current_bytes", label) > 0  # type: ignore[operator]
    assert before.get_sample_value("process_cgroup_memory_limited", label) in (0.0, 1.0)
    assert before.get_sample_value("process_cgroup_cpu_limited", label) in (0.0, 1.0)
    start = sum(os.times()[:2])
    while sum(os.times()[:2]) < start + 0.3:
        pass
    after = registry_of(collector.collect(source))
    grown = after.get_sample_value("process_cgroup_cpu_usage_seconds_total", label) - \
        before.get_sample_value("process_cgroup_cpu_usage_seconds_total", label)  # type: ignore[operator]
    assert grown >= 0.3 - 0.02  # the cgroup's ns accounting vs this process's clock ticks


@pytest.fixture
def limited_cgroup() -> Iterator[tuple[str, int]]:
    """A real child cgroup (v1 or v2, whichever holds the controllers here) with memory and CPU limits."""
    name = f"/stackwatch-test-{uuid.uuid4().hex[:8]}"
    mounts = parse_mountinfo(Path("/proc/self/mountinfo").read_text())
    v1 = {c: m for m in mounts if m.version == 1 for c in m.controllers}
    created: list[Path] = []
    try:
        if "memory" in v1 and "cpu" in v1:
            for controller in ("memory", "cpu", "cpuacct"):
                if controller in v1:
                    path = v1[controller].point / name.lstrip("/")
                    path.mkdir()
                    created.append(path)
            (v1["memory"].point / name.lstrip("/") / "memory.limit_in_bytes").write_text(str(64 * MiB))
            (v1["cpu"].point / name.lstrip("/") / "cpu.cfs_quota_us").write_text("50000")
            (v1["cpu"].point / name.lstrip("/") / "cpu.cfs_period_us").write_text("100000")
        else:
            unified = next(m for m in mounts if m.version == 2)
            path = unified.point / name.lstrip("/")
            path.mkdir()
            created.append(path)
            (path / "memory.max").write_text(str(64 * MiB))
            (path / "cpu.max").write_text("50000 100000")
    except PermissionError as error:
        for path in reversed(created):
            path.rmdir()
        pytest.skip(f"this machine does not allow creating cgroups under /sys/fs/cgroup: {error}")
    try:
        yield name, 64 * MiB
    finally:
        for path in reversed(created):
            path.rmdir()


def test_real_child_cgroup_with_limits(limited_cgroup: tuple[str, int]) -> None:
    name, memory_limit = limited_cgroup
    proc = Path("/proc/self")
    dirs = locate(name, (proc / "cgroup").read_text(), (proc / "mountinfo").read_text())
    # a worker joins the cgroup, then burns 0.5 s of CPU under a 0.5-core quota (so it is throttled)
    script = ("import os, sys\nsys.stdin.readline()\nstart = sum(os.times()[:2])\n"
              "while sum(os.times()[:2]) < start + 0.5: pass\nprint('done', flush=True)\nsys.stdin.read()")
    worker = subprocess.Popen([sys.executable, "-c", script],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert worker.stdin is not None and worker.stdout is not None
    try:
        for directory in {d for d in (dirs.memory, dirs.cpu, dirs.cpuacct) if d is not None}:
            (directory / "cgroup.procs").write_text(str(worker.pid))
        worker.stdin.write("go\n")
        worker.stdin.flush()
        assert worker.stdout.readline().strip() == "done"
        values = _collect(ProcessSource(cgroup=name))
        assert values["process_cgroup_memory_max_bytes"] == memory_limit
        assert values["process_cgroup_memory_limited"] == 1
        assert values["process_cgroup_memory_current_bytes"] > 0  # type: ignore[operator]
        assert values["process_cgroup_cpu_limit_cores"] == 0.5
        assert values["process_cgroup_cpu_limited"] == 1
        assert values["process_cgroup_cpu_usage_seconds_total"] >= 0.5 - 0.02  # type: ignore[operator]
        assert values["process_cgroup_cpu_throttled_seconds_total"] > 0  # type: ignore[operator]
    finally:
        worker.kill()
        worker.wait(10)


def test_real_oom_kill_is_counted_and_the_working_set_stays_under_usage(limited_cgroup: tuple[str, int]) -> None:
    name, memory_limit = limited_cgroup
    proc = Path("/proc/self")
    dirs = locate(name, (proc / "cgroup").read_text(), (proc / "mountinfo").read_text())
    assert _collect(ProcessSource(cgroup=name))["process_cgroup_oom_kills_total"] == 0
    # a worker joins the cgroup, then allocates three times its memory limit: the kernel kills it
    script = f"import sys\nsys.stdin.readline()\nheld = bytearray({3 * memory_limit})\nprint('survived')"
    worker = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert worker.stdin is not None
    try:
        assert dirs.memory is not None
        (dirs.memory / "cgroup.procs").write_text(str(worker.pid))
        worker.stdin.write("go\n")
        worker.stdin.flush()
        assert worker.wait(30) == -9
    finally:
        worker.kill()
        worker.wait(10)
    values = _collect(ProcessSource(cgroup=name))
    assert values["process_cgroup_oom_kills_total"] == 1
    assert 0 <= values["process_cgroup_memory_working_set_bytes"] <= values["process_cgroup_memory_current_bytes"]  # type: ignore[operator]


@given(st.text())
def test_parsers_never_raise_on_arbitrary_text(text: str) -> None:
    assert all(m.version in (1, 2) for m in parse_mountinfo(text))
    assert isinstance(parse_proc_cgroup(text), dict)


def test_mountinfo_octal_escapes() -> None:
    (mount,) = parse_mountinfo("30 23 0:26 / /mnt/my\\040cgroup\\134x rw - cgroup2 cgroup2 rw\n")
    assert str(mount.point) == "/mnt/my cgroup\\x"
