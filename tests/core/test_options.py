from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from stackwatch.core.options import (
    Option,
    OptionError,
    add_options,
    markdown_table,
    non_negative_float,
    positive_float,
    positive_int,
    ratio,
    resolve_options,
)

OPTIONS = (
    Option("--dsn", "X_DSN", "a secret", repeat=True, secret=True),
    Option("--count", "X_COUNT", "a number", default=3, parse=int),
    Option("--names", "X_NAMES", "names", repeat=True, split=","),
)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_options(parser, OPTIONS, "test")
    return parser.parse_args(argv)


def test_flag_wins_over_environment() -> None:
    values = resolve_options(OPTIONS, parse(["--count", "7"]), {"X_COUNT": "9"})
    assert values["count"] == 7


def test_environment_twin_and_defaults() -> None:
    values = resolve_options(OPTIONS, parse([]), {"X_COUNT": "9", "X_NAMES": "a, b,,c"})
    assert values == {"dsn": [], "count": 9, "names": ["a", "b", "c"]}


def test_repeatable_flag_collects_every_value() -> None:
    values = resolve_options(OPTIONS, parse(["--dsn", "one", "--dsn", "two"]), {})
    assert values["dsn"] == ["one", "two"]


def test_secret_file_variant(tmp_path: Path) -> None:
    secret = tmp_path / "dsn"
    secret.write_text("postgresql://a:b@h/db\npostgresql://c:d@h/db\n")
    values = resolve_options(OPTIONS, parse([]), {"X_DSN_FILE": str(secret)})
    assert values["dsn"] == ["postgresql://a:b@h/db", "postgresql://c:d@h/db"]


def test_unreadable_secret_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match=r"\$X_DSN_FILE: cannot read"):
        resolve_options(OPTIONS, parse([]), {"X_DSN_FILE": str(tmp_path / "missing")})


def test_bad_value_names_the_source_and_value() -> None:
    with pytest.raises(OptionError, match=r"\$X_COUNT: invalid value 'many'"):
        resolve_options(OPTIONS, parse([]), {"X_COUNT": "many"})


def test_bad_secret_value_is_not_echoed() -> None:
    def reject(text: str) -> str:
        raise ValueError("bad")

    opts = (Option("--dsn", "X_DSN", "secret", secret=True, parse=reject),)
    parser = argparse.ArgumentParser()
    add_options(parser, opts, "t")
    with pytest.raises(OptionError) as info:
        resolve_options(opts, parser.parse_args(["--dsn", "postgresql://u:hunter2@h/db"]), {})
    assert "hunter2" not in str(info.value) and "--dsn" in str(info.value)


def test_markdown_table_lists_every_flag_and_variable() -> None:
    table = markdown_table(OPTIONS)
    for opt in OPTIONS:
        assert f"`{opt.flag}`" in table and f"`{opt.env}`" in table
    assert "`X_DSN_FILE`" in table


def test_string_defaults_are_parsed_like_user_input() -> None:
    opts = (Option("--port", "X_PORT", "a port", default="9188", parse=int),)
    parser = argparse.ArgumentParser()
    add_options(parser, opts, "t")
    assert resolve_options(opts, parser.parse_args([]), {}) == {"port": 9188}


@pytest.mark.parametrize("text", [
    'targets:\n  db:\n    postgres_dsn: "postgresql://app:hunter2@db/app\n',  # unclosed quote
    "targets:\n  db:\n    postgres_dsn: postgresql://app:hunter2@db/app\n   redis_url: x\n",  # bad indent
])
def test_a_yaml_syntax_error_names_the_place_not_the_line(tmp_path: Path, text: str) -> None:
    """PyYAML quotes the offending line; in a targets file that line may hold a password."""
    from stackwatch.exporters.targets_file import load_targets_file

    path = tmp_path / "targets.yml"
    path.write_text(text)
    with pytest.raises(OptionError) as error:
        load_targets_file(str(path), ["postgres_dsn", "redis_url"])
    message = str(error.value)
    assert message.startswith(f"--targets-file: {str(path)!r} is not valid YAML at line ")
    assert "hunter2" not in message and "postgresql://" not in message


@pytest.mark.parametrize(("parse", "good", "bad"), [
    (positive_float, ["0.5", "300"], ["0", "-1", "inf", "nan", "x"]),
    (non_negative_float, ["0", "2.5"], ["-0.1", "inf", "nan", "x"]),
    (ratio, ["0", "0.25", "1"], ["1.01", "-0.5", "nan", "x"]),
    (positive_int, ["1", "10000"], ["0", "-3", "1.5", "x"]),
])
def test_one_family_of_number_parsers(parse, good: list[str], bad: list[str]) -> None:
    """The parsers the exporter, the check and the instrumentation share (issue 16: durations
    reject inf, nan, 0 and negatives)."""
    expected = [int(text) if parse is positive_int else float(text) for text in good]
    assert [parse(text) for text in good] == expected
    for text in bad:
        with pytest.raises(ValueError):
            parse(text)
