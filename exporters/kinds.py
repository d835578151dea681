"""The contract between the exporter server and each kind of target (PostgreSQL, Redis, process).

A kind declares its options and collectors, and builds targets from resolved option values
(for ``/metrics``) or from an entry of the targets file (for ``/probe?target=NAME``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from stackwatch.core.options import Option, OptionError

from .collector import Collector, Intervals
from .target import Target

__all__ = ["Common", "ExporterKind", "select_collectors"]


@dataclass(frozen=True)
class Common:
    """Settings every kind shares."""

    intervals: Intervals = field(default_factory=Intervals)
    enabled: frozenset[str] = frozenset()
    disabled: frozenset[str] = frozenset()


class ExporterKind(Protocol):
    """What ``exporters/<kind>/__init__.py`` provides as ``KIND``."""

    prefix: str
    title: str
    options: Sequence[Option]
    collectors: Sequence[type[Collector[Any]]]

    #: the key of this kind's targets-file entries (``postgres_dsn``), None when it has none
    @property
    def targets_file_key(self) -> str | None: ...

    def targets(self, values: Mapping[str, Any], common: Common) -> list[Target[Any]]:
        """Targets configured by flags/environment."""

    def probe_target(self, name: str, entry: Mapping[str, Any], values: Mapping[str, Any],
                     common: Common) -> Target[Any] | None:
        """A target from a targets-file entry (other settings from ``values``), or None when
        the entry is for another kind."""


def select_collectors(kind: ExporterKind, common: Common) -> list[type[Collector[Any]]]:
    """The kind's collectors after ``--enable-collector``/``--disable-collector`` (``<prefix>.<name>``)."""
    chosen = []
    for cls in kind.collectors:
        qualified = f"{kind.prefix}.{cls.name}"
        if qualified in common.disabled:
            continue
        if cls.default_enabled or qualified in common.enabled:
            chosen.append(cls)
    return chosen


def known_collectors(kinds: Sequence[ExporterKind]) -> set[str]:
    return {f"{k.prefix}.{c.name}" for k in kinds for c in k.collectors}


def check_collector_names(kinds: Sequence[ExporterKind], common: Common) -> None:
    """Reject unknown names in the enable/disable lists, listing the known ones."""
    known = known_collectors(kinds)
    unknown = sorted((common.enabled | common.disabled) - known)
    if unknown:
        raise OptionError(f"--enable-collector/--disable-collector: unknown collector(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(known))}")
