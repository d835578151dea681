"""Child processes with known CPU burn and memory, and reading a collector's families."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

__all__ = ["MiB", "Workers", "registry_of", "workers"]

MiB = 2**20

# Burns `cpu` seconds of its own CPU time, touches `mib` MiB, says "ready", then holds.
# os.times() has the clock-tick accounting that /proc/PID/stat (and so psutil) reports.
_WORKER = """
import os, sys
cpu, mib = float(sys.argv[1]), int(sys.argv[2])
held = b"\\x01" * (mib * 2**20)
while sum(os.times()[:2]) < cpu:
    pass
print("ready", flush=True)
sys.stdin.read()
"""


class Workers:
    """Worker processes whose command line carries a unique marker (the group's regex)."""

    def __init__(self) -> None:
        self.marker = f"stackwatch-test-{uuid.uuid4().hex[:12]}"
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, cpu: float = 0.0, mib: int = 0) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-c", _WORKER, str(cpu), str(mib), self.marker],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[str]) -> None:
        """End a worker and reap it, so it is gone from the process table."""
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@contextmanager
def workers() -> Iterator[Workers]:
    w = Workers()
    try:
        yield w
    finally:
        w.stop_all()


def registry_of(families: Iterable[Metric]) -> CollectorRegistry:
    """A fresh registry serving ``families``, for ``get_sample_value``."""
    families = list(families)

    class _Fixed:
        def collect(self) -> list[Metric]:
            return families

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed())  # type: ignore[arg-type]
    return registry
