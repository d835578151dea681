"""The contract between the exporter server and each kind of target (PostgreSQL, Redis, process).

A kind declares its options and collectors, and builds targets from resolved option values
(for ``/metrics``) or from an entry of the targets file (for ``/probe?target=NAME``).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from stackwatch.core.option_fields import from_values, nested, option, options_of
from stackwatch.core.options import Option, OptionError

from .collector import Collector, Intervals
from .target import Target

__all__ = ["Common", "ConnectedKind", "ExporterKind", "select_collectors"]

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

OptionsT = TypeVar("OptionsT", bound="DataclassInstance")


def _name(text: str) -> str:
    return text.strip()


@dataclass(frozen=True)
class Common:
    """Settings every kind shares."""

    intervals: Intervals = nested(Intervals)
    enabled: frozenset[str] = option(
        "--enable-collector", "STACKWATCH_ENABLE_COLLECTORS", "turn on a collector that is off by default, "
        "as PREFIX.NAME (e.g. pg.statements); comma-separated in the environment",
        repeat=True, split=",", parse=_name, metavar="PREFIX.NAME", convert=frozenset)
    disabled: frozenset[str] = option(
        "--disable-collector", "STACKWATCH_DISABLE_COLLECTORS", "turn off a collector, as PREFIX.NAME",
        repeat=True, split=",", parse=_name, metavar="PREFIX.NAME", convert=frozenset)


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


class ConnectedKind(abc.ABC, Generic[OptionsT]):
    """A kind whose targets are servers reached at an address (a DSN, a URL): PostgreSQL, Redis.

    A kind declares only what differs: :attr:`address` (the option of its addresses; its ``dest``
    is also the key of its targets-file entries), :attr:`settings` (the dataclass of its
    collectors' knobs, whose fields declare their options), :meth:`check_address`,
    :meth:`target_name` and :meth:`new_target` (its target class); the flags, the targets file
    and ``/probe`` work the same for every such kind.
    """

    prefix: str
    title: str
    address: Option
    settings: type[OptionsT]
    collectors: Sequence[type[Collector[Any]]]

    def __init__(self) -> None:
        self.options: Sequence[Option] = (self.address, *options_of(self.settings))

    @property
    def targets_file_key(self) -> str:
        return self.address.dest

    @abc.abstractmethod
    def check_address(self, address: str) -> None:
        """Raise ValueError with a message that holds no secret when ``address`` is malformed."""

    @abc.abstractmethod
    def target_name(self, address: str) -> str:
        """A readable name of the target at ``address`` that carries no secret."""

    def kind_options(self, values: Mapping[str, Any]) -> OptionsT:
        """The collectors' knobs from resolved option values."""
        return from_values(self.settings, values)

    @abc.abstractmethod
    def new_target(self, name: str, address: str, collectors: list[Collector[Any]], common: Common,
                   options: OptionsT) -> Target[Any]:
        """The target itself (the kind's target class)."""

    def targets(self, values: Mapping[str, Any], common: Common) -> list[Target[Any]]:
        addresses = [str(a) for a in values.get(self.targets_file_key) or []]
        for address in addresses:  # checked here too, so the (redacted) reason is shown
            self._checked(address, f"{self.address.flag}/${self.address.env}")
        if not addresses:
            return []
        options = self.kind_options(values)
        return [self._target(self.target_name(a), a, common, options) for a in addresses]

    def probe_target(self, name: str, entry: Mapping[str, Any], values: Mapping[str, Any],
                     common: Common) -> Target[Any] | None:
        if self.targets_file_key not in entry:
            return None
        address = self._checked(str(entry[self.targets_file_key]), f"targets file, target {name!r}")
        return self._target(name, address, common, self.kind_options(values))

    def _checked(self, address: str, where: str) -> str:
        try:
            self.check_address(address)
        except ValueError as error:
            raise OptionError(f"{where}: {error}") from None
        return address

    def _target(self, name: str, address: str, common: Common, options: OptionsT) -> Target[Any]:
        collectors: list[Collector[Any]] = [cls() for cls in select_collectors(self, common)]
        return self.new_target(name, address, collectors, common, options)


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
