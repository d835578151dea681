"""Process groups: user-declared ``NAME=REGEX`` sets of processes, summed per group.

Series stay bounded because only the groups the user declared are labels (never a pid).
Each poll walks the process table once with psutil; a process joins the first group whose
regex matches (``re.search``) its name or its command line, so the groups never double-count.

Counters (CPU seconds, context switches, I/O bytes) must never go down, yet processes exit.
As process-exporter does, each group keeps the last values seen for every live process,
keyed by ``(pid, create_time)`` so a reused pid is a new process, plus an accumulator of the
final values of processes that have left (exited, or stopped matching). A group's counter is
``accumulator + sum(live processes)``; a process that starts and exits between two polls
is never seen, so its CPU is not counted (the poll interval bounds that loss).

Other users' processes may refuse some reads (``/proc/PID/io`` and ``/proc/PID/fd`` need
ptrace access): the process is still counted with what could be read, and
``process_group_access_denied{group}`` says how many processes were read only in part.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import psutil
from prometheus_client.core import Metric

from ..collector import Collector, CollectorDisabled, Tier
from ..families import counter, gauge
from .target import ProcessSource

__all__ = ["GroupTotals", "GroupsCollector", "ProcessGroup", "parse_group"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]*$")
T = TypeVar("T")


@dataclass(frozen=True)
class ProcessGroup:
    """A named regex; a process belongs to the group when the regex finds its name or command line."""

    name: str
    pattern: re.Pattern[str]

    def matches(self, name: str, cmdline: str) -> bool:
        return bool(self.pattern.search(name) or (cmdline and self.pattern.search(cmdline)))


def parse_group(text: str) -> ProcessGroup:
    """``NAME=REGEX`` (the first ``=`` splits); ValueError names what is wrong."""
    name, sep, regex = text.partition("=")
    name = name.strip()
    if not sep or not regex:
        raise ValueError("expected NAME=REGEX, e.g. postgres=^postgres")
    if not _NAME.match(name):
        raise ValueError(f"group name {name!r} must match {_NAME.pattern}")
    try:
        return ProcessGroup(name, re.compile(regex))
    except re.error as error:
        raise ValueError(f"regex {regex!r} does not compile: {error}") from None


# counter fields kept per live process: (user, system, voluntary, involuntary, read, write)
_FIELDS = 6


@dataclass
class GroupTotals:
    """One group's state across polls: live processes' last counters and the exited accumulator."""

    exited: list[float] = field(default_factory=lambda: [0.0] * _FIELDS)
    live: dict[tuple[int, float], list[float]] = field(default_factory=dict)

    def update(self, seen: dict[tuple[int, float], list[float]]) -> list[float]:
        """Fold this poll's processes in; returns the group's monotonic counters."""
        for key, last in self.live.items():
            if key not in seen:
                self.exited = [a + b for a, b in zip(self.exited, last)]
        merged: dict[tuple[int, float], list[float]] = {}
        for key, values in seen.items():
            previous = self.live.get(key)
            # a field that could not be read this time (access denied) keeps its last value
            merged[key] = values if previous is None else [max(a, b) for a, b in zip(previous, values)]
        self.live = merged
        return [sum(column) for column in zip(self.exited, *merged.values())]


@dataclass
class _Gauges:
    count: int = 0
    rss: float = 0.0
    vms: float = 0.0
    threads: float = 0.0
    fds: float = 0.0
    denied: int = 0
    oldest: float | None = None


class GroupsCollector(Collector[ProcessSource]):
    """Per-group count, CPU, memory, threads, fds, context switches, I/O and oldest start."""

    name = "groups"
    tier = Tier.FAST

    def __init__(self) -> None:
        self._totals: dict[str, GroupTotals] = {}

    def collect(self, source: ProcessSource) -> list[Metric]:
        if not source.groups:
            raise CollectorDisabled("no_groups_configured")
        gauges = {g.name: _Gauges() for g in source.groups}
        seen: dict[str, dict[tuple[int, float], list[float]]] = {g.name: {} for g in source.groups}
        for proc in psutil.process_iter(["name", "cmdline", "create_time"], ad_value=None):
            group = _group_of(source.groups, proc.info)
            if group is None or proc.info["create_time"] is None:
                continue
            try:
                _read(proc, gauges[group.name], seen[group.name])
            except psutil.NoSuchProcess:  # exited (or became a zombie) while being read
                continue
        counters = {g.name: self._totals.setdefault(g.name, GroupTotals()).update(seen[g.name])
                    for g in source.groups}
        return _families(gauges, counters)


def _group_of(groups: Sequence[ProcessGroup], info: dict[str, object]) -> ProcessGroup | None:
    name = str(info.get("name") or "")
    cmdline = info.get("cmdline")
    line = " ".join(cmdline) if isinstance(cmdline, list) else ""
    return next((g for g in groups if g.matches(name, line)), None)


def _read(proc: psutil.Process, gauges: _Gauges, seen: dict[tuple[int, float], list[float]]) -> None:
    """Add one process to its group; raises NoSuchProcess when it vanished."""
    denied = False

    def attempt(read: Callable[[], T]) -> T | None:
        nonlocal denied
        try:
            return read()
        except psutil.AccessDenied:
            denied = True
            return None

    with proc.oneshot():
        cpu = attempt(proc.cpu_times)
        memory = attempt(proc.memory_info)
        threads = attempt(proc.num_threads)
        fds = attempt(proc.num_fds)
        ctx = attempt(proc.num_ctx_switches)
        io = attempt(proc.io_counters)
    created = float(proc.info["create_time"])
    gauges.count += 1
    gauges.denied += denied
    gauges.oldest = created if gauges.oldest is None else min(gauges.oldest, created)
    if memory is not None:
        gauges.rss += memory.rss
        gauges.vms += memory.vms
    gauges.threads += threads or 0
    gauges.fds += fds or 0
    seen[(proc.pid, created)] = [
        cpu.user if cpu else 0.0, cpu.system if cpu else 0.0,
        float(ctx.voluntary) if ctx else 0.0, float(ctx.involuntary) if ctx else 0.0,
        float(io.read_bytes) if io else 0.0, float(io.write_bytes) if io else 0.0,
    ]


def _families(gauges: dict[str, _Gauges], counters: dict[str, list[float]]) -> list[Metric]:
    count = gauge("process_group_processes", "Processes in the group.", ["group"])
    cpu = counter("process_group_cpu_seconds_total",
                  "CPU seconds used by the group's processes, including those that exited.", ["group", "mode"])
    rss = gauge("process_group_resident_memory_bytes", "Resident memory of the group's processes.", ["group"])
    vms = gauge("process_group_virtual_memory_bytes", "Virtual memory of the group's processes.", ["group"])
    threads = gauge("process_group_threads", "Threads of the group's processes.", ["group"])
    fds = gauge("process_group_open_fds", "Open file descriptors of the group's processes.", ["group"])
    ctx = counter("process_group_context_switches_total", "Context switches of the group's processes.",
                  ["group", "ctxswitch"])
    io = counter("process_group_io_bytes_total", "Bytes the group's processes read from or wrote to storage "
                 "(read_bytes/write_bytes of /proc/PID/io).", ["group", "direction"])
    oldest = gauge("process_group_oldest_start_time_seconds",
                   "Unix start time of the group's oldest process (absent when the group is empty).", ["group"])
    denied = gauge("process_group_access_denied",
                   "Processes of the group the exporter could read only in part (permission denied).", ["group"])
    for name, g in gauges.items():
        user, system, voluntary, involuntary, read, write = counters[name]
        count.add_metric([name], g.count)
        cpu.add_metric([name, "user"], user)
        cpu.add_metric([name, "system"], system)
        rss.add_metric([name], g.rss)
        vms.add_metric([name], g.vms)
        threads.add_metric([name], g.threads)
        fds.add_metric([name], g.fds)
        ctx.add_metric([name, "voluntary"], voluntary)
        ctx.add_metric([name, "involuntary"], involuntary)
        io.add_metric([name, "read"], read)
        io.add_metric([name, "write"], write)
        denied.add_metric([name], g.denied)
        if g.oldest is not None:
            oldest.add_metric([name], g.oldest)
    return [count, cpu, rss, vms, threads, fds, ctx, io, oldest, denied]
