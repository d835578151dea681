"""What a check produces: one :class:`Finding` per checklist item, with evidence and a fix."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

__all__ = ["Status", "Item", "Finding", "SourceUnavailable", "SECTIONS"]

#: the checklist's sections, in its order; reports list findings by section.
SECTIONS = ("Database", "Caching", "Application", "Monitoring")


class Status(str, enum.Enum):  # noqa: UP042 - StrEnum would change how members print
    """Outcome of one item; ``UNKNOWN`` means "not checkable with what was given"."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Item:
    """One checklist line the check evaluates; ``id`` is stable for scripts and ``--format json``."""

    id: str
    section: str
    title: str

    def finding(self, status: Status, evidence: str, fix: str = "") -> Finding:
        return Finding(self, status, evidence, fix)


@dataclass(frozen=True)
class Finding:
    """The verdict on one item: what was measured (evidence) and what to do about it (fix)."""

    item: Item
    status: Status
    evidence: str
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.item.id, "section": self.item.section, "item": self.item.title,
                "status": self.status.value, "evidence": self.evidence, "fix": self.fix}


class SourceUnavailable(Exception):
    """A system the check was pointed at could not be reached (exit code 2); message is redacted."""
