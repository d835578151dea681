"""The local host as an exporter target: nothing to connect to, so it is always up.

``process_up`` stays 1; failures show per collector (``process_scrape_collector_*``), e.g. a
``--cgroup`` path that does not exist.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..collector import Collector, Intervals
from ..target import Target

if TYPE_CHECKING:
    from .filesystem import Filesystem
    from .groups import ProcessGroup

__all__ = ["ProcessSource", "ProcessTarget"]


@dataclass(frozen=True)
class ProcessSource:
    """What the process collectors read: the declared groups, the cgroup, the filesystems, and
    where /proc is."""

    groups: Sequence[ProcessGroup] = ()
    cgroup: str | None = None
    filesystems: Sequence[Filesystem] = ()
    proc_root: Path = field(default=Path("/proc"))


class ProcessTarget(Target[ProcessSource]):
    prefix = "process"

    def __init__(self, collectors: Sequence[Collector[ProcessSource]], intervals: Intervals,
                 source: ProcessSource, name: str | None = None) -> None:
        super().__init__(name or socket.gethostname(), collectors, intervals)
        self.source = source

    def open(self) -> ProcessSource:
        """Nothing to connect to: the source is the local /proc and /sys."""
        return self.source

    def describe_target(self) -> dict[str, Any]:
        return {**super().describe_target(), "groups": [g.name for g in self.source.groups],
                "cgroup": self.source.cgroup or "self", "filesystems": [f.name for f in self.source.filesystems]}
