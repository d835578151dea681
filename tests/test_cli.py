"""No error path of the command line prints a secret: argparse's own errors, every option's bad
value from a flag, the environment or a ``_FILE``, for both subcommands."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackwatch import cli
from stackwatch.check.cli import OPTIONS as CHECK_OPTIONS
from stackwatch.core.options import Option
from stackwatch.exporters.main import all_options

SECRET = "Zq-hunter2-pw"
#: a password in every form a user may paste: URL DSN, key=value DSN, Redis URL, HTTP basic auth
VALUES = [
    f"postgresql://app:{SECRET}@127.0.0.1:1/db",
    f"host=127.0.0.1 port=1 password={SECRET}",
    f"redis://:{SECRET}@127.0.0.1:1/0",
    f"http://u:{SECRET}@127.0.0.1:1/",
]
OPTIONS = {"exporter": all_options(), "check": list(CHECK_OPTIONS)}


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port already bound: an exporter whose options all parse stops at --listen."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for option in (*OPTIONS["exporter"], *OPTIONS["check"]):
        monkeypatch.delenv(option.env, raising=False)
        monkeypatch.delenv(option.env + "_FILE", raising=False)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit code and everything printed on stdout and stderr."""
    try:
        code = cli.main(argv)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def stop_args(command: str, option: Option | None, busy_port: int) -> list[str]:
    """What makes a run whose options are all valid end before it serves or waits long."""
    if command == "check":
        return ["--deadline", "3", "--timeout", "1", "--quiet", "yes"] if option is None or \
            option.flag not in ("--deadline", "--timeout", "--quiet") else []
    return [] if option is not None and option.flag == "--listen" else ["--listen", f"127.0.0.1:{busy_port}"]


@pytest.mark.parametrize("command", ["exporter", "check"])
@pytest.mark.parametrize("value", VALUES)
def test_argparse_errors_hide_every_value(command: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([command, "--postgres-dsnn", value], [command, "--postgres-dsnn=" + value],
                 [command, value], [value], [command, "--p=" + value], ["--version=" + value],
                 [command, "--help=" + value], [command, "-h" + value], [command, "--postgres-dsn"]):
        code, printed = run(argv, capsys)
        assert code == 2, (argv, printed)
        assert SECRET not in printed, (argv, printed)
        assert "error:" in printed, (argv, printed)
    _, printed = run([command, "--postgres-dsnn=" + value], capsys)
    assert "--postgres-dsnn=<hidden>" in printed  # the mistyped flag is still named


@pytest.mark.parametrize("command", ["exporter", "check"])
def test_bad_values_of_every_option_never_show_the_password(
        command: str, busy_port: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    named = 0
    for option in OPTIONS[command]:
        for value in VALUES:
            _, printed = run([command, option.flag, value, *stop_args(command, option, busy_port)], capsys)
            assert SECRET not in printed, (option.flag, value, printed)
            named += f"{option.flag}: invalid value" in printed
            with monkeypatch.context() as env:
                env.setenv(option.env, value)
                _, printed = run([command, *stop_args(command, option, busy_port)], capsys)
                assert SECRET not in printed, (option.env, value, printed)
            if option.secret:
                path = tmp_path / "secret"
                path.write_text(value.replace("127.0.0.1:1", "127.0.0.1:notaport") + "\n")
                with monkeypatch.context() as env:
                    env.setenv(option.env + "_FILE", str(path))
                    _, printed = run([command, *stop_args(command, option, busy_port)], capsys)
                    assert SECRET not in printed, (option.env + "_FILE", value, printed)
    assert named >= len(OPTIONS[command]), "the bad values were rejected, naming their flag"
