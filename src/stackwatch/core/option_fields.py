"""Options declared on the dataclass field they fill: flag, variable, parser, default and help once.

A settings dataclass (the exporter's ``PostgresOptions``, the instrumentation's ``Settings``)
declares each knob as ``name: T = option(flag, env, help, default=..., parse=...)``. From the
fields come the :class:`~stackwatch.core.options.Option` rows (argparse, ``--help``, the README
tables) with :func:`options_of`, and the dataclass itself from resolved values with
:func:`from_values`, so a default or a parser is never written a second time::

    @dataclass(frozen=True)
    class VacuumOptions:
        max_tables: int = option("--pg-vacuum-max-tables", "STACKWATCH_PG_VACUUM_MAX_TABLES",
                                 "tables reported before the `other` rollup", default=20, parse=positive_int)

``convert`` turns the option's value into the field's (a list of ``--redis-queue`` values into
one tuple of specs, seconds into a ``ConnectionSettings``); :func:`nested` embeds a dataclass whose
fields are options themselves. Plain fields (no option) stay internal knobs.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from .options import Option, default_value, markdown_table

__all__ = ["field_options", "from_values", "nested", "option", "options_of", "settings_table"]

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

_OPTION = "stackwatch.option"
_CONVERT = "stackwatch.convert"
_NESTED = "stackwatch.nested"


def option(flag: str | None, env: str, help: str = "", *, default: Any = None,  # noqa: A002 - argparse's name
           parse: Callable[[str], Any] = str, repeat: bool = False, secret: bool = False, split: str = "\n",
           metavar: str | None = None, fallback: str | None = None, coerce: bool = False,
           convert: Callable[[Any], Any] | None = None) -> Any:
    """A dataclass field filled by one option (see :class:`~stackwatch.core.options.Option` for
    the arguments); its default is the option's, parsed and converted as a given value would be."""
    row = Option(flag, env, help, default, parse, repeat, secret, split, metavar, fallback, coerce)
    value = default_value(row)
    value = convert(value) if convert is not None else value
    metadata = {_OPTION: row, _CONVERT: convert}
    if value.__class__.__hash__ is None:  # a list: a fresh copy per instance
        return dataclasses.field(default_factory=lambda: copy.copy(value), metadata=metadata)
    return dataclasses.field(default=value, metadata=metadata)


def nested(cls: type[T]) -> T:
    """A field holding a dataclass whose own fields are options (the tier intervals in ``Common``)."""
    return dataclasses.field(default_factory=cls, metadata={_NESTED: cls})


def field_options(cls: type[DataclassInstance]) -> Iterator[tuple[str, Option]]:
    """Every option of ``cls`` as (field name, row), in declaration order, nested ones in place."""
    for spec in dataclasses.fields(cls):
        if _NESTED in spec.metadata:
            yield from field_options(spec.metadata[_NESTED])
        elif _OPTION in spec.metadata:
            yield spec.name, spec.metadata[_OPTION]


def options_of(cls: type[DataclassInstance]) -> list[Option]:
    """The option rows of ``cls``'s fields, for argparse, ``--help`` and the README tables."""
    return [row for _, row in field_options(cls)]


def settings_table(cls: type[DataclassInstance]) -> str:
    """The documentation table of a settings dataclass whose options have no flag: keyword, variable,
    default and meaning (the instrumentation's ``Settings``)."""
    names, rows = zip(*field_options(cls))
    return markdown_table(rows, names)


def from_values(cls: type[T], values: Mapping[str, Any]) -> T:
    """An instance of ``cls`` from option values by ``dest`` (as ``resolve_options`` returns them);
    a field whose option is missing from ``values`` keeps its default."""
    given: dict[str, Any] = {}
    for spec in dataclasses.fields(cls):
        if _NESTED in spec.metadata:
            given[spec.name] = from_values(spec.metadata[_NESTED], values)
        elif _OPTION in spec.metadata and spec.metadata[_OPTION].dest in values:
            convert = spec.metadata[_CONVERT]
            value = values[spec.metadata[_OPTION].dest]
            given[spec.name] = convert(value) if convert is not None else value
    return cls(**given)
