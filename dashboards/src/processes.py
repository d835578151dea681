"""Processes: how much CPU and memory do the watched processes use, against their limits?

Per process group (from the exporter's process collector) and per cgroup: CPU against the
CPU quota, memory against memory.max, throttling, threads, file descriptors and I/O. A
missing limit shows as "no limit": the checklist asks for resource limits to be set.
"""

from __future__ import annotations

from grafanalib.core import Dashboard

from stackwatch.thresholds import PROCESS, RATE_WINDOW

from ..common import Grid, dashboard, label_variable, q, selector, stat, state_mapping, timeseries, too_high, too_low

__all__ = ["build"]

S = selector("job", "instance")
G = selector("job", "instance", "group")
WINDOW = "$__rate_interval"
NO_CPU_LIMIT = "no cgroup has a CPU limit (quota)"
NO_MEMORY_LIMIT = "no cgroup has a memory limit (memory.max)"


def _limits(g: Grid) -> None:
    g.row("Limits")
    g.add(stat("CPU limit set", "Do all watched cgroups have a CPU quota?", f"min(process_cgroup_cpu_limited{{{S}}})",
               "none", too_low(1), mappings=state_mapping(1, "limited", "NO LIMIT")), w=6, h=4)
    g.add(stat("Memory limit set", "Do all watched cgroups have memory.max?",
               f"min(process_cgroup_memory_limited{{{S}}})", "none", too_low(1),
               mappings=state_mapping(1, "limited", "NO LIMIT")), w=6, h=4)
    g.add(stat("CPU used of limit", "Busiest cgroup's CPU use over its quota.",
               q(f"max(rate(process_cgroup_cpu_usage_seconds_total{{{S}}}[{RATE_WINDOW}]) / "
                 f"process_cgroup_cpu_limit_cores{{{S}}})", empty_reason=NO_CPU_LIMIT),
               "percentunit", too_high(PROCESS.cpu_limit_ratio), no_value="no limit"), w=6, h=4)
    g.add(stat("Memory used of limit", "Fullest cgroup's memory over memory.max.",
               q(f"max(process_cgroup_memory_current_bytes{{{S}}} / process_cgroup_memory_max_bytes{{{S}}})",
                 empty_reason=NO_MEMORY_LIMIT),
               "percentunit", too_high(PROCESS.memory_limit_ratio), no_value="no limit"), w=6, h=4)


def _cpu(g: Grid) -> None:
    g.row("CPU")
    g.add(timeseries("CPU by process group", "Cores used by each group (user + system).", [
        (f"sum by (group) (rate(process_group_cpu_seconds_total{{{G}}}[{WINDOW}]))", "{{group}}"),
    ], "short", stacked=True), w=8)
    g.add(timeseries("cgroup CPU: used vs limit", "Cores used by each cgroup and its quota in cores.", [
        (f"sum by (cgroup) (rate(process_cgroup_cpu_usage_seconds_total{{{S}}}[{WINDOW}]))", "{{cgroup}} used"),
        q(f"max by (cgroup) (process_cgroup_cpu_limit_cores{{{S}}})", "{{cgroup}} limit", empty_reason=NO_CPU_LIMIT),
    ], "short"), w=8)
    g.add(timeseries("cgroup CPU used of limit", "Past the dashed line the kernel starts throttling bursts, "
                     "which shows up as latency.", [
        q(f"sum by (cgroup) (rate(process_cgroup_cpu_usage_seconds_total{{{S}}}[{WINDOW}])) / "
          f"max by (cgroup) (process_cgroup_cpu_limit_cores{{{S}}})", "{{cgroup}}", empty_reason=NO_CPU_LIMIT),
    ], "percentunit", thresholds=too_high(PROCESS.cpu_limit_ratio)), w=8)
    g.add(timeseries("CPU throttling", "Time the cgroup wanted to run but its quota was used up.", [
        (f"sum by (cgroup) (rate(process_cgroup_cpu_throttled_seconds_total{{{S}}}[{WINDOW}]))", "{{cgroup}}"),
    ], "percentunit"), w=12)
    g.add(timeseries("Context switches", "Involuntary switches mean the group is preempted for CPU.", [
        (f"sum by (group, ctxswitch) (rate(process_group_context_switches_total{{{G}}}[{WINDOW}]))",
         "{{group}} {{ctxswitch}}"),
    ], "ops"), w=12)


def _memory(g: Grid) -> None:
    g.row("Memory")
    g.add(timeseries("Resident memory by process group", "Memory the processes actually hold in RAM.", [
        (f"sum by (group) (process_group_resident_memory_bytes{{{G}}})", "{{group}}"),
    ], "bytes", stacked=True), w=8)
    g.add(timeseries("cgroup memory: used vs limit", "Memory charged to each cgroup and its memory.max.", [
        (f"sum by (cgroup) (process_cgroup_memory_current_bytes{{{S}}})", "{{cgroup}} used"),
        q(f"max by (cgroup) (process_cgroup_memory_max_bytes{{{S}}})", "{{cgroup}} limit",
          empty_reason=NO_MEMORY_LIMIT),
    ], "bytes"), w=8)
    g.add(timeseries("cgroup memory used of limit", "Past the dashed line the OOM killer is one allocation "
                     "spike away.", [
        q(f"sum by (cgroup) (process_cgroup_memory_current_bytes{{{S}}}) / "
          f"max by (cgroup) (process_cgroup_memory_max_bytes{{{S}}})", "{{cgroup}}", empty_reason=NO_MEMORY_LIMIT),
    ], "percentunit", thresholds=too_high(PROCESS.memory_limit_ratio)), w=8)


def _processes_threads_files_io(g: Grid) -> None:
    g.row("Processes, threads, files, I/O")
    g.add(timeseries("Processes and threads", "Processes and threads per group.", [
        (f"sum by (group) (process_group_processes{{{G}}})", "{{group}} processes"),
        (f"sum by (group) (process_group_threads{{{G}}})", "{{group}} threads"),
    ], "short"), w=8)
    g.add(timeseries("Open file descriptors", "Sockets and files held open per group.", [
        (f"sum by (group) (process_group_open_fds{{{G}}})", "{{group}}"),
    ], "short"), w=8)
    g.add(timeseries("Disk I/O", "Bytes read and written per group.", [
        (f"sum by (group, direction) (rate(process_group_io_bytes_total{{{G}}}[{WINDOW}]))",
         "{{group}} {{direction}}"),
    ], "Bps"), w=8)


def build() -> Dashboard:
    g = Grid()
    _limits(g)
    _cpu(g)
    _memory(g)
    _processes_threads_files_io(g)
    return dashboard("processes", __doc__.split("\n")[0], g, [
        label_variable("job", "job", "process_group_processes"),
        label_variable("instance", "instance", "process_group_processes", parents=["job"]),
        label_variable("group", "group", "process_group_processes", parents=["job", "instance"]),
    ])
