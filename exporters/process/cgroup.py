"""Resource limits of a cgroup (v2, with v1 fallback) and usage against them.

The checklist asks "CPU and memory against their limits", and "no limit set" is a finding of
its own, so every limit comes with a ``*_limited`` 0/1 flag and the limit family is absent
when there is none (a ratio against "unlimited" would be meaningless).

Which cgroup: the exporter's own (``/proc/self/cgroup``), or ``--cgroup PATH`` given either
as a cgroup path (``/system.slice/postgresql.service``, as ``/proc/PID/cgroup`` prints it) or
as a directory under a cgroup mount (``/sys/fs/cgroup/system.slice/postgresql.service``).
Paths are resolved through ``/proc/self/mountinfo``, so containers whose cgroup mount shows a
sub-tree (its ``root`` field) resolve correctly. Controllers mounted as v1 (``memory``,
``cpu``, ``cpuacct``) win over the unified v2 mount: on a hybrid host the v2 tree then holds
no memory or cpu controller.

Files read, v2: ``memory.current``, ``memory.max``, ``memory.stat`` (``inactive_file``),
``memory.events`` (``oom_kill``), ``cpu.max``, ``cpu.stat`` (``usage_usec``,
``throttled_usec``); v1: ``memory.usage_in_bytes``, ``memory.limit_in_bytes``, ``memory.stat``
(``total_inactive_file``), ``memory.oom_control`` (``oom_kill``), ``cpu.cfs_quota_us``,
``cpu.cfs_period_us``, ``cpu.stat`` (``throttled_time``, ns), ``cpuacct.usage`` (ns). The working
set is usage minus inactive file pages, as cAdvisor computes it: page cache the kernel reclaims
before it OOM-kills anything does not bring the cgroup nearer its limit. Only the cgroup's own files are read:
a tighter limit set on an ancestor is not reflected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from prometheus_client.core import Metric

from ..collector import Collector, CollectorDisabled, Tier
from ..families import counter, gauge
from .target import ProcessSource

__all__ = [
    "CgroupCollector",
    "CgroupDirs",
    "CgroupNotFound",
    "CgroupUsage",
    "Mount",
    "locate",
    "parse_mountinfo",
    "parse_proc_cgroup",
    "read_usage",
]

#: v1 reports "no memory limit" as a huge page-aligned number (PAGE_COUNTER_MAX * page size)
_V1_UNLIMITED = 2**62


class CgroupNotFound(Exception):
    """The requested cgroup has no directory under any cgroup mount."""


@dataclass(frozen=True)
class Mount:
    """One cgroup filesystem from mountinfo: which sub-tree (``root``) it shows where."""

    root: str
    point: Path
    version: int
    controllers: frozenset[str]


@dataclass(frozen=True)
class CgroupDirs:
    """Where one cgroup's files live: v2 has one directory; v1 one per controller."""

    name: str
    version: int
    memory: Path | None
    cpu: Path | None
    cpuacct: Path | None


@dataclass(frozen=True)
class CgroupUsage:
    """What was read; ``None`` means the file was absent (controller not enabled or mounted)."""

    memory_current: float | None = None
    memory_working_set: float | None = None
    memory_max: float | None = None
    oom_kills: float | None = None
    memory_limited: bool | None = None
    cpu_limit_cores: float | None = None
    cpu_limited: bool | None = None
    cpu_usage_seconds: float | None = None
    cpu_throttled_seconds: float | None = None


_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """The cgroup mounts listed in ``/proc/PID/mountinfo``."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 3:
            continue
        fstype, options = tail[0], tail[2].split(",")
        if fstype == "cgroup2":
            mounts.append(Mount(_unescape(fields[3]), Path(_unescape(fields[4])), 2, frozenset()))
        elif fstype == "cgroup":
            controllers = frozenset(o for o in options if o in ("memory", "cpu", "cpuacct"))
            if controllers:
                mounts.append(Mount(_unescape(fields[3]), Path(_unescape(fields[4])), 1, controllers))
    return mounts


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """Cgroup path by controller from ``/proc/PID/cgroup``; the v2 entry is under ``""``."""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(",") if parts[1] else [""]:
            paths[controller] = parts[2]
    return paths


def _dir_of(mount: Mount, cgroup: str) -> Path:
    """The directory of ``cgroup`` in ``mount`` (paths outside the mount's root map to its top)."""
    root = PurePosixPath(mount.root)
    path = PurePosixPath("/" + cgroup.lstrip("/"))
    try:
        relative = path.relative_to(root)
    except ValueError:
        relative = PurePosixPath(path.relative_to("/"))
    return mount.point / relative


def _as_cgroup_path(given: str, mounts: list[Mount]) -> str:
    """A filesystem path under a mount point becomes the cgroup path it stands for."""
    path = PurePosixPath(given)
    for mount in sorted(mounts, key=lambda m: len(str(m.point)), reverse=True):
        try:
            relative = path.relative_to(PurePosixPath(mount.point))
        except ValueError:
            continue
        return str(PurePosixPath(mount.root) / relative)
    return given


def locate(given: str | None, proc_cgroup: str, mountinfo: str) -> CgroupDirs:
    """The directories of cgroup ``given`` (or of the process whose files are passed)."""
    mounts = parse_mountinfo(mountinfo)
    own = parse_proc_cgroup(proc_cgroup)
    wanted = _as_cgroup_path(given, mounts) if given else None
    v1 = {c: m for m in mounts if m.version == 1 for c in m.controllers}
    found = _locate_v1(v1, wanted, own) if "memory" in v1 or "cpu" in v1 else _locate_v2(mounts, wanted, own)
    if not any(d is not None and d.is_dir() for d in (found.memory, found.cpu, found.cpuacct)):
        raise CgroupNotFound(f"cgroup {found.name!r} has no directory under the cgroup mounts")
    return found


def _locate_v1(v1: dict[str, Mount], wanted: str | None, own: dict[str, str]) -> CgroupDirs:
    """cgroup v1: one hierarchy per controller, each with the process's own path in it."""
    dirs = {c: _dir_of(m, wanted if wanted is not None else own.get(c, "/")) for c, m in v1.items()}
    name = wanted if wanted is not None else own.get("memory", own.get("cpu", "/"))
    return CgroupDirs(name, 1, dirs.get("memory"), dirs.get("cpu"), dirs.get("cpuacct"))


def _locate_v2(mounts: list[Mount], wanted: str | None, own: dict[str, str]) -> CgroupDirs:
    """cgroup v2: one unified hierarchy for every controller."""
    unified = next((m for m in mounts if m.version == 2), None)
    if unified is None:
        raise CgroupNotFound("no cgroup filesystem is mounted (see /proc/self/mountinfo)")
    name = wanted if wanted is not None else own.get("", "/")
    directory = _dir_of(unified, name)
    return CgroupDirs(name, 2, directory, directory, None)


def _read(directory: Path | None, filename: str) -> str | None:
    if directory is None:
        return None
    try:
        return (directory / filename).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _stat(text: str | None) -> dict[str, float]:
    if text is None:
        return {}
    pairs = (line.split() for line in text.splitlines())
    return {p[0]: float(p[1]) for p in pairs if len(p) == 2}


def _working_set(current: str | None, inactive_file: float | None) -> float | None:
    if current is None or inactive_file is None:
        return None
    return max(0.0, float(current) - inactive_file)


def read_usage(dirs: CgroupDirs) -> CgroupUsage:
    """Current usage and limits of the cgroup in base units (bytes, seconds, cores)."""
    return _read_v2(dirs) if dirs.version == 2 else _read_v1(dirs)


def _read_v2(dirs: CgroupDirs) -> CgroupUsage:
    current, limit = _read(dirs.memory, "memory.current"), _read(dirs.memory, "memory.max")
    memory_stat = _stat(_read(dirs.memory, "memory.stat"))
    cpu_max = _read(dirs.cpu, "cpu.max")
    stat = _stat(_read(dirs.cpu, "cpu.stat"))
    cores: float | None = None
    if cpu_max is not None:
        quota, _, period = cpu_max.partition(" ")
        cores = None if quota == "max" else float(quota) / float(period or 100000)
    return CgroupUsage(
        memory_current=None if current is None else float(current),
        memory_working_set=_working_set(current, memory_stat.get("inactive_file")),
        memory_max=None if limit in (None, "max") else float(limit),
        oom_kills=_stat(_read(dirs.memory, "memory.events")).get("oom_kill"),
        memory_limited=None if limit is None else limit != "max",
        cpu_limit_cores=cores,
        cpu_limited=None if cpu_max is None else cores is not None,
        cpu_usage_seconds=stat["usage_usec"] / 1e6 if "usage_usec" in stat else None,
        cpu_throttled_seconds=stat["throttled_usec"] / 1e6 if "throttled_usec" in stat else None,
    )


def _read_v1(dirs: CgroupDirs) -> CgroupUsage:
    current, limit = _read(dirs.memory, "memory.usage_in_bytes"), _read(dirs.memory, "memory.limit_in_bytes")
    quota, period = _read(dirs.cpu, "cpu.cfs_quota_us"), _read(dirs.cpu, "cpu.cfs_period_us")
    usage = _read(dirs.cpuacct, "cpuacct.usage")
    memory_stat = _stat(_read(dirs.memory, "memory.stat"))
    stat = _stat(_read(dirs.cpu, "cpu.stat"))
    limited_memory = None if limit is None else float(limit) < _V1_UNLIMITED
    cores = None
    if quota is not None and period is not None and float(quota) > 0:
        cores = float(quota) / float(period)
    return CgroupUsage(
        memory_current=None if current is None else float(current),
        memory_working_set=_working_set(current, memory_stat.get("total_inactive_file")),
        memory_max=float(limit) if limit is not None and limited_memory else None,
        oom_kills=_stat(_read(dirs.memory, "memory.oom_control")).get("oom_kill"),
        memory_limited=limited_memory,
        cpu_limit_cores=cores,
        cpu_limited=None if quota is None else cores is not None,
        cpu_usage_seconds=None if usage is None else float(usage) / 1e9,
        cpu_throttled_seconds=stat["throttled_time"] / 1e9 if "throttled_time" in stat else None,
    )


class CgroupCollector(Collector[ProcessSource]):
    """Memory and CPU usage of one cgroup against its limits."""

    name = "cgroup"
    tier = Tier.FAST

    def __init__(self) -> None:
        self._dirs: CgroupDirs | None = None

    def collect(self, source: ProcessSource) -> list[Metric]:
        if self._dirs is None:
            proc = source.proc_root / "self"
            try:
                self._dirs = locate(source.cgroup, (proc / "cgroup").read_text(), (proc / "mountinfo").read_text())
            except (CgroupNotFound, FileNotFoundError):
                if source.cgroup:
                    raise  # an explicit --cgroup that is missing is an error worth a log line
                raise CollectorDisabled("cgroup_unavailable") from None
        return _families(self._dirs.name, read_usage(self._dirs))


def _families(name: str, usage: CgroupUsage) -> list[Metric]:
    out: list[Metric] = []

    def add(family: Metric, value: float | bool | None) -> None:
        if value is not None:
            family.add_metric([name], float(value))  # type: ignore[attr-defined]
            out.append(family)

    add(gauge("process_cgroup_memory_current_bytes", "Memory charged to the cgroup.", ["cgroup"]),
        usage.memory_current)
    add(gauge("process_cgroup_memory_working_set_bytes",
              "Memory charged to the cgroup minus inactive file pages the kernel can reclaim.", ["cgroup"]),
        usage.memory_working_set)
    add(counter("process_cgroup_oom_kills_total", "Processes of the cgroup killed by the OOM killer.", ["cgroup"]),
        usage.oom_kills)
    add(gauge("process_cgroup_memory_max_bytes", "Memory limit of the cgroup (absent when unlimited).",
              ["cgroup"]), usage.memory_max)
    add(gauge("process_cgroup_memory_limited", "1 when the cgroup has a memory limit, 0 when none is set.",
              ["cgroup"]), usage.memory_limited)
    add(gauge("process_cgroup_cpu_limit_cores", "CPU quota of the cgroup in cores (absent when unlimited).",
              ["cgroup"]), usage.cpu_limit_cores)
    add(gauge("process_cgroup_cpu_limited", "1 when the cgroup has a CPU quota, 0 when none is set.",
              ["cgroup"]), usage.cpu_limited)
    add(counter("process_cgroup_cpu_usage_seconds_total", "CPU time used by the cgroup.", ["cgroup"]),
        usage.cpu_usage_seconds)
    add(counter("process_cgroup_cpu_throttled_seconds_total",
                "Time the cgroup's tasks were throttled by its CPU quota.", ["cgroup"]),
        usage.cpu_throttled_seconds)
    return out
