"""Running code in a fresh interpreter: for process-wide state (log record factory, OpenTelemetry
globals read at import, Sentry's global client and integrations) that a test must not share."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, *, launcher: list[str] | None = None, **env: str) -> str:
    """Run ``code`` (after ``launcher``, e.g. ``opentelemetry-instrument``) with only ``env`` set; its last output line."""
    command = [*(launcher or []), sys.executable, "-c", code]
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
                          env={"PATH": path, "PYTHONPATH": str(ROOT), **env})
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""
