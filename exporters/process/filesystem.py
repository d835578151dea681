"""Free and total space of declared filesystems (``--filesystem NAME=PATH``), from statvfs.

The disk a database lives on is what its growth runs into: ``PostgresDiskFullForecast`` compares
the PostgreSQL databases' growth (``predict_linear`` of ``pg_database_size_bytes``) with the
free space of the filesystem declared under the PostgreSQL server's name (``--filesystem
main=/var/lib/postgresql``). ``avail`` is what an unprivileged writer may still use (statvfs
``f_bavail``, node_exporter's ``avail``), not the root-reserved blocks.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from prometheus_client.core import Metric

from ..collector import Collector, Tier
from ..families import gauge
from .target import ProcessSource

__all__ = ["Filesystem", "FilesystemCollector", "parse_filesystem"]

#: a PostgreSQL server's name is ``host:port/dbname`` (its ``server`` label): ``/`` belongs in it
_NAME = re.compile(r"^[A-Za-z0-9_.:/-]+$")


@dataclass(frozen=True)
class Filesystem:
    """A directory whose filesystem to watch, named as the server it holds (``main``)."""

    name: str
    path: str


def parse_filesystem(text: str) -> Filesystem:
    """``NAME=PATH`` (the first ``=`` splits); ValueError names what is wrong."""
    name, sep, path = text.partition("=")
    name = name.strip()
    if not sep or not path:
        raise ValueError("expected NAME=PATH, e.g. main=/var/lib/postgresql")
    if not _NAME.match(name):
        raise ValueError(f"filesystem name {name!r} must match {_NAME.pattern}")
    if not os.path.isabs(path):
        raise ValueError(f"path {path!r} must be absolute")
    return Filesystem(name, path)


class FilesystemCollector(Collector[ProcessSource]):
    name = "filesystem"
    tier = Tier.FAST

    def collect(self, source: ProcessSource) -> list[Metric]:
        avail = gauge("process_filesystem_avail_bytes", "Bytes an unprivileged writer may still use.",
                      ["filesystem", "path"])
        size = gauge("process_filesystem_size_bytes", "Size of the filesystem in bytes.", ["filesystem", "path"])
        for fs in source.filesystems:
            stat = os.statvfs(fs.path)  # a missing path fails the collector: visible, one log line
            avail.add_metric([fs.name, fs.path], float(stat.f_bavail * stat.f_frsize))
            size.add_metric([fs.name, fs.path], float(stat.f_blocks * stat.f_frsize))
        return [avail, size] if source.filesystems else []
