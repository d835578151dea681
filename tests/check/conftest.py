"""Helpers for the ``stackwatch check`` tests: run the command in-process and read its JSON."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import pytest

from stackwatch.check import cli as check_cli
from stackwatch.cli import build_parser


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def report(self) -> dict[str, Any]:
        return json.loads(self.out)

    def finding(self, item_id: str) -> dict[str, Any]:
        return next(f for f in self.report["findings"] if f["id"] == item_id)

    def status(self, item_id: str) -> str:
        return str(self.finding(item_id)["status"])


def run_check(*argv: str) -> Outcome:
    """``stackwatch check ARGV`` in-process, output captured (argv should include --format)."""
    args = build_parser().parse_args(["check", *argv])
    out, err = io.StringIO(), io.StringIO()
    code = check_cli.run(args, stdout=out, stderr=err)
    return Outcome(code, out.getvalue(), err.getvalue())


@pytest.fixture
def check() -> Any:
    """``check(*argv)`` -> :class:`Outcome` of ``stackwatch check --format json ARGV``."""
    return lambda *argv: run_check("--format", "json", *argv)
