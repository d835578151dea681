"""The process exporter: declared process groups, cgroup resource limits and filesystems of this host.

Enabled by ``--process-group NAME=REGEX`` (repeatable), ``--cgroup PATH`` and/or
``--filesystem NAME=PATH`` (repeatable); the target is
the local host (``server`` label = hostname). ``groups.py`` explains how counters stay
monotonic while processes come and go; ``cgroup.py`` how the cgroup is found.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stackwatch.core.option_fields import from_values, option, options_of
from stackwatch.core.options import Option, OptionError

from ..collector import Collector
from ..kinds import Common, select_collectors
from ..target import Target
from .cgroup import CgroupCollector
from .filesystem import Filesystem, FilesystemCollector, parse_filesystem
from .groups import GroupsCollector, ProcessGroup, parse_group
from .target import ProcessSource, ProcessTarget

__all__ = ["COLLECTORS", "KIND", "ProcessGroup", "ProcessOptions", "ProcessSource", "ProcessTarget"]

#: Every process collector and whether it runs by default (``default_enabled`` on the class).
COLLECTORS: Sequence[type[Collector[ProcessSource]]] = (
    GroupsCollector,
    CgroupCollector,
    FilesystemCollector,
)

@dataclass(frozen=True)
class ProcessOptions:
    """What the process kind watches; no option given, no process target."""

    groups: tuple[ProcessGroup, ...] = option(
        "--process-group", "STACKWATCH_PROCESS_GROUPS",
        "a process group NAME=REGEX: processes whose name or command line the regex matches "
        "(re.search; the first matching group wins); one per line in the environment",
        repeat=True, parse=parse_group, metavar="NAME=REGEX", convert=tuple)
    cgroup: str | None = option(
        "--cgroup", "STACKWATCH_CGROUP",
        "cgroup whose memory/CPU limits and usage to export, as a cgroup path (/system.slice/x.service) "
        "or a directory under /sys/fs/cgroup; `self` = the exporter's own cgroup", metavar="PATH")
    filesystems: tuple[Filesystem, ...] = option(
        "--filesystem", "STACKWATCH_FILESYSTEMS",
        "a filesystem to watch, NAME=PATH: free and total bytes of the filesystem holding PATH; name it as "
        "the PostgreSQL server whose data it holds (its `server` label) for the disk-full forecast; one per "
        "line in the environment", repeat=True, parse=parse_filesystem, metavar="NAME=PATH", convert=tuple)


class _ProcessKind:
    prefix = "process"
    title = "processes and resource limits"
    options: Sequence[Option] = options_of(ProcessOptions)
    collectors = COLLECTORS
    targets_file_key: str | None = None

    def targets(self, values: Mapping[str, Any], common: Common) -> list[Target[Any]]:
        options = from_values(ProcessOptions, values)
        if not options.groups and not options.cgroup and not options.filesystems:
            return []
        names = [g.name for g in options.groups]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise OptionError(f"--process-group: group name(s) declared twice: {', '.join(duplicates)}")
        source = ProcessSource(groups=options.groups, cgroup=None if options.cgroup == "self" else options.cgroup,
                               filesystems=options.filesystems)
        collectors = [cls() for cls in select_collectors(self, common)]
        return [ProcessTarget(collectors, common.intervals, source)]

    def probe_target(self, name: str, entry: Mapping[str, Any], values: Mapping[str, Any],
                     common: Common) -> Target[Any] | None:
        """Processes are local: they have no targets-file entries."""
        return None


KIND = _ProcessKind()
