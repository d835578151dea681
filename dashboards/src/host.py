"""Host: is the machine under the databases running out of disk, memory or CPU?

node_exporter's view of each host (job ``node`` in provisioning/prometheus.yml): free space per
filesystem against the alerts' levels and its trend, memory with reclaimable page cache counted
as free, CPU, load, disk and network I/O. In docker-compose.yml node_exporter reads the host's
filesystems through ``/host``; its network panels show the container's interfaces.
"""

from __future__ import annotations

from grafanalib.core import Dashboard

from stackwatch.promql import DATA_FILESYSTEMS, filesystem_avail_ratio, memory_used_ratio
from stackwatch.thresholds import HOST, PREDICTION_WINDOW, RATE_WINDOW

from ..common import Grid, dashboard, label_variable, no_threshold, selector, stat, timeseries, too_high

__all__ = ["build"]

S = selector("job", "instance")
#: the data filesystems of the selected hosts
FS = f"{DATA_FILESYSTEMS}, {S}"
WINDOW = "$__rate_interval"
CPUS = f'count without (cpu, mode) (node_cpu_seconds_total{{{S}, mode="idle"}})'


def _overview(g: Grid) -> None:
    g.row("Overview")
    g.add(stat("Uptime", "Since when has the host been running? A short uptime is a reboot.",
               f"min(node_time_seconds{{{S}}} - node_boot_time_seconds{{{S}}})", "s", no_threshold()), w=6, h=4)
    g.add(stat("CPU busy", f"Share of all CPUs' time not idle ({RATE_WINDOW}), busiest host.",
               f'max(1 - avg without (cpu, mode) (rate(node_cpu_seconds_total{{{S}, mode="idle"}}[{RATE_WINDOW}])))',
               "percentunit", no_threshold()), w=6, h=4)
    g.add(stat("Memory used", "Memory in use on the fullest host, reclaimable page cache counted as free; "
               "red at the alert's level.", f"max({memory_used_ratio(S)})", "percentunit",
               too_high(HOST.memory_used_ratio)), w=6, h=4)
    g.add(stat("Fullest filesystem", "Used share of the fullest data filesystem; red where less than the "
               "alert's free space is left.", f"max(1 - {filesystem_avail_ratio(S)})", "percentunit",
               too_high(1 - HOST.filesystem_avail_ratio)), w=6, h=4)


def _disks(g: Grid) -> None:
    g.row("Disks")
    g.add(timeseries("Filesystem space used", "Which filesystem is filling? The dashed line is where "
                     "NodeFilesystemAlmostOutOfSpace fires.", [
        (f"1 - {filesystem_avail_ratio(S)}", "{{instance}} {{mountpoint}}"),
    ], "percentunit", thresholds=too_high(1 - HOST.filesystem_avail_ratio)), w=12)
    g.add(timeseries("Free space and its trend", f"Free bytes now and where the last {PREDICTION_WINDOW}'s "
                     f"trend puts them in {HOST.filesystem_filling_hours:g}h: below 0 the filesystem fills "
                     "(NodeFilesystemSpaceFillingUp).", [
        (f"node_filesystem_avail_bytes{{{FS}}}", "{{instance}} {{mountpoint}} free"),
        (f"predict_linear(node_filesystem_avail_bytes{{{FS}}}[{PREDICTION_WINDOW}], "
         f"{HOST.filesystem_filling_hours * 3600:g})", "{{instance}} {{mountpoint}} predicted"),
    ], "bytes", min_zero=False), w=12)
    g.add(timeseries("Disk throughput", "Bytes read and written per device.", [
        (f"sum by (instance, device) (rate(node_disk_read_bytes_total{{{S}}}[{WINDOW}]))",
         "{{instance}} {{device}} read"),
        (f"sum by (instance, device) (rate(node_disk_written_bytes_total{{{S}}}[{WINDOW}]))",
         "{{instance}} {{device}} written"),
    ], "Bps"), w=12)
    g.add(timeseries("Disk busy time", "Share of the time each device had I/O in flight: near 100% the "
                     "disk is the bottleneck (checkpoints, vacuum, RDB saves).", [
        (f"rate(node_disk_io_time_seconds_total{{{S}}}[{WINDOW}])", "{{instance}} {{device}}"),
    ], "percentunit"), w=12)


def _cpu_and_memory(g: Grid) -> None:
    g.row("CPU and memory")
    g.add(timeseries("CPU by mode", "Cores busy by mode; iowait is time waiting for the disk, steal time "
                     "taken by the hypervisor.", [
        (f'sum by (instance, mode) (rate(node_cpu_seconds_total{{{S}, mode!="idle"}}[{WINDOW}]))',
         "{{instance}} {{mode}}"),
    ], "short", stacked=True), w=8)
    g.add(timeseries("Load average against cores", "Runnable and uninterruptible tasks; above the core "
                     "count work queues for the CPU or the disk.", [
        (f"node_load1{{{S}}}", "{{instance}} load 1m"),
        (f"node_load15{{{S}}}", "{{instance}} load 15m"),
        (CPUS, "{{instance}} cores"),
    ], "short"), w=8)
    g.add(timeseries("Memory", "Total, available (free plus reclaimable cache) and page cache: available "
                     "shrinking towards 0 is pressure, a large cache is healthy.", [
        (f"node_memory_MemTotal_bytes{{{S}}}", "{{instance}} total"),
        (f"node_memory_MemAvailable_bytes{{{S}}}", "{{instance}} available"),
        (f"node_memory_Cached_bytes{{{S}}}", "{{instance}} page cache"),
    ], "bytes"), w=8)
    g.add(timeseries("Memory used", "Share of memory in use, reclaimable cache counted as free; the dashed "
                     "line is NodeMemoryHighUtilization's level.", [
        (memory_used_ratio(S), "{{instance}}"),
    ], "percentunit", thresholds=too_high(HOST.memory_used_ratio)), w=12)
    g.add(timeseries("OOM kills", "Processes the kernel's OOM killer ended, whole host.", [
        (f"increase(node_vmstat_oom_kill{{{S}}}[{WINDOW}])", "{{instance}}"),
    ], "short", thresholds=too_high(0), drawStyle="bars"), w=12)


def _network(g: Grid) -> None:
    g.row("Network")
    g.add(timeseries("Network traffic", "Bytes received and sent per interface.", [
        (f'sum by (instance, device) (rate(node_network_receive_bytes_total{{{S}, device!="lo"}}[{WINDOW}]))',
         "{{instance}} {{device}} in"),
        (f'sum by (instance, device) (rate(node_network_transmit_bytes_total{{{S}, device!="lo"}}[{WINDOW}]))',
         "{{instance}} {{device}} out"),
    ], "Bps"), w=12)
    g.add(timeseries("Network errors and drops", "Packets lost on an interface: retransmits and timeouts "
                     "for every client behind it.", [
        (f"sum by (instance) (rate(node_network_receive_errs_total{{{S}}}[{WINDOW}]) + "
         f"rate(node_network_transmit_errs_total{{{S}}}[{WINDOW}]))", "{{instance}} errors"),
        (f"sum by (instance) (rate(node_network_receive_drop_total{{{S}}}[{WINDOW}]) + "
         f"rate(node_network_transmit_drop_total{{{S}}}[{WINDOW}]))", "{{instance}} drops"),
    ], "pps"), w=12)


def build() -> Dashboard:
    g = Grid()
    _overview(g)
    _disks(g)
    _cpu_and_memory(g)
    _network(g)
    return dashboard("host", __doc__.split("\n")[0], g, [
        label_variable("job", "job", "node_uname_info"),
        label_variable("instance", "instance", "node_uname_info", parents=["job"]),
    ])
