"""One configuration mechanism: every option is declared once, on the dataclass field it fills, and
the command line, the environment, the defaults and the documentation tables all come from there."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from stackwatch.cli import build_parser
from stackwatch.core.option_fields import field_options, from_values, nested, option, options_of, settings_table
from stackwatch.core.options import markdown_table, positive_int, resolve_options
from stackwatch.core.postgres.source import PostgresOptions
from stackwatch.core.redis.source import RedisOptions
from stackwatch.exporters import main
from stackwatch.exporters.alertmanager import AlertmanagerOptions
from stackwatch.exporters.kinds import ConnectedKind
from stackwatch.exporters.process import ProcessOptions
from stackwatch.instrumentation.config import Settings

ROOT = Path(__file__).resolve().parents[2]
#: every dataclass whose fields declare the exporter's options
EXPORTER_SETTINGS = (main.ServerOptions, PostgresOptions, RedisOptions, ProcessOptions, AlertmanagerOptions)


def test_every_exporter_option_is_declared_by_exactly_one_field_or_is_a_kind_address() -> None:
    declared = [row for cls in EXPORTER_SETTINGS for row in options_of(cls)]
    addresses = [kind.address for kind in main.KINDS if isinstance(kind, ConnectedKind)]
    assert sorted(o.flag for o in main.all_options()) == sorted(o.flag for o in [*declared, *addresses])
    assert len({o.flag for o in declared}) == len(declared) and len({o.env for o in declared}) == len(declared)
    for kind in main.KINDS:  # a kind's options are its address and its settings' fields, nothing else
        if isinstance(kind, ConnectedKind):
            assert list(kind.options) == [kind.address, *options_of(kind.settings)]


@pytest.mark.parametrize("cls", [*EXPORTER_SETTINGS, Settings], ids=lambda c: c.__name__)
def test_a_default_is_written_once_the_field_default_is_the_option_default(cls: type) -> None:
    """Nothing given: the values the options resolve to build exactly the dataclass's defaults."""
    if cls is Settings:
        assert Settings.resolve({}) == Settings()
        return
    values = resolve_options(options_of(cls), build_parser().parse_args(["exporter"]), {})
    assert from_values(cls, values) == cls()


def test_a_flag_fills_its_field_through_the_declared_conversion() -> None:
    args = ["--pg-statement-timeout-ms", "1234", "--redis-timeout-seconds", "0.5", "--interval-fast", "2",
            "--disable-collector", "pg.locks", "--process-group", "db=^postgres"]
    values = resolve_options(main.all_options(), build_parser().parse_args(["exporter", *args]), {})
    assert from_values(PostgresOptions, values).connection.statement_timeout_ms == 1234
    redis = from_values(RedisOptions, values).connection
    assert (redis.socket_timeout, redis.connect_timeout) == (0.5, 0.5)
    server = from_values(main.ServerOptions, values)
    assert server.common.intervals.fast == 2.0 and server.common.disabled == frozenset({"pg.locks"})
    assert [g.name for g in from_values(ProcessOptions, values).groups] == ["db"]


def test_every_setting_is_a_field_with_one_variable() -> None:
    names = [name for name, _ in field_options(Settings)]
    assert names == [f.name for f in dataclasses.fields(Settings)]
    envs = [row.env for _, row in field_options(Settings)]
    assert len(set(envs)) == len(envs) and all(row.flag is None and row.help for _, row in field_options(Settings))


def test_the_documentation_tables_are_the_rendering_of_the_fields() -> None:
    readme = (ROOT / "README.md").read_text()
    assert markdown_table(main.all_options()) in readme
    assert settings_table(Settings) in (ROOT / "docs" / "instrumentation.md").read_text()


def test_a_new_settings_dataclass_is_declared_in_one_place() -> None:
    """What a new kind does: fields declare their options; rows, defaults and values follow."""
    @dataclasses.dataclass(frozen=True)
    class Inner:
        depth: int = option("--x-depth", "X_DEPTH", "how deep", default=3, parse=positive_int)

    @dataclasses.dataclass(frozen=True)
    class Outer:
        names: tuple[str, ...] = option("--x-name", "X_NAMES", "names", repeat=True, split=",", convert=tuple)
        inner: Inner = nested(Inner)
        internal: int = 7

    assert [o.flag for o in options_of(Outer)] == ["--x-name", "--x-depth"]
    assert Outer() == Outer(names=(), inner=Inner(depth=3), internal=7)
    assert from_values(Outer, {"x_name": ["a", "b"], "x_depth": 9}) == Outer(("a", "b"), Inner(9))
    assert from_values(Outer, {}) == Outer()  # a missing option keeps its field's default
