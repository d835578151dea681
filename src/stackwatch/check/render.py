"""The report as a terminal table (colored on a TTY), JSON for machines, Markdown for tickets.

Every text of the report goes through :func:`scrub` before a renderer escapes or wraps it, and
the rendered text once more, so no secret given to the check -- a DSN or URL password, even
one a server echoed back in an error -- reaches any output.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import textwrap
from collections import Counter
from collections.abc import Sequence

from stackwatch.core.redact import redact_text
from stackwatch.core.text import markdown_cell

from .model import Status
from .runner import Report

__all__ = ["render", "scrub", "FORMATS"]

FORMATS = ("table", "json", "markdown")

_COLORS = {Status.PASS: "32", Status.WARN: "33", Status.FAIL: "31", Status.UNKNOWN: "90"}


def scrub(text: str, secrets: Sequence[str]) -> str:
    """``text`` with URL/DSN passwords and every literal secret replaced."""
    text = redact_text(text)
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _summary(report: Report) -> dict[str, int]:
    counts = Counter(f.status.value for f in report.findings)
    return {status.value: counts.get(status.value, 0) for status in Status}


def _table(report: Report, color: bool) -> str:
    width = max(60, shutil.get_terminal_size((100, 24)).columns)
    status_w = 7
    item_w = min(42, max(len(f.item.id) for f in report.findings) if report.findings else 10)
    text_w = max(30, width - status_w - item_w - 4)
    lines: list[str] = []
    section = None
    for finding in report.findings:
        if finding.item.section != section:
            section = finding.item.section
            lines.append(("" if not lines else "\n") + (f"\033[1m{section}\033[0m" if color else section))
        label = finding.status.value.upper().ljust(status_w)
        if color:
            label = f"\033[{_COLORS[finding.status]}m{label}\033[0m"
        body = textwrap.wrap(f"{finding.item.title}: {finding.evidence}", text_w) or [""]
        if finding.fix:
            body += textwrap.wrap("fix: " + finding.fix, text_w, initial_indent="  ", subsequent_indent="    ")
        lines.append(f"{label} {finding.item.id.ljust(item_w)} {body[0]}")
        lines += [" " * (status_w + item_w + 2) + rest for rest in body[1:]]
    counts = _summary(report)
    lines.append("\n" + ", ".join(f"{n} {s}" for s, n in counts.items()))
    lines += [f"error: {e}" for e in report.errors]
    return "\n".join(lines) + "\n"


def _markdown(report: Report) -> str:
    icon = {Status.PASS: "✅ pass", Status.WARN: "⚠️ warn", Status.FAIL: "❌ fail", Status.UNKNOWN: "❔ unknown"}
    lines = ["## stackwatch check", "", ", ".join(f"{n} {s}" for s, n in _summary(report).items()), ""]
    for error in report.errors:  # each its own blockquote: a table right after one would be swallowed
        lines += [f"> **error:** {markdown_cell(error)}", ""]
    lines += ["| status | section | item | evidence | fix |", "|---|---|---|---|---|"]
    for f in report.findings:
        lines.append(f"| {icon[f.status]} | {f.item.section} | `{f.item.id}` {markdown_cell(f.item.title)} | "
                     f"{markdown_cell(f.evidence)} | {markdown_cell(f.fix)} |")
    return "\n".join(lines) + "\n"


def _json(report: Report, exit_code: int) -> str:
    return json.dumps({"summary": _summary(report), "exit_code": exit_code, "errors": report.errors,
                       "findings": [f.as_dict() for f in report.findings]}, indent=2) + "\n"


def _scrubbed(report: Report, secrets: Sequence[str]) -> Report:
    """The report with every text scrubbed, before any format escapes (JSON, Markdown) or wraps
    (table) it: a secret cut or escaped into pieces would no longer match."""
    return Report([dataclasses.replace(f, evidence=scrub(f.evidence, secrets), fix=scrub(f.fix, secrets))
                   for f in report.findings], [scrub(e, secrets) for e in report.errors])


def render(report: Report, fmt: str, secrets: Sequence[str], exit_code: int, color: bool = False) -> str:
    """The report in ``fmt`` (one of :data:`FORMATS`), scrubbed of ``secrets``."""
    report = _scrubbed(report, secrets)
    if fmt == "json":
        text = _json(report, exit_code)
    elif fmt == "markdown":
        text = _markdown(report)
    else:
        text = _table(report, color)
    return scrub(text, secrets)
