"""``stackwatch exporter`` as a user meets it: --help, environment twins, bad input, startup log,
SIGTERM. The last tests run the real command in a subprocess."""

from __future__ import annotations

import io
import logging
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stackwatch.cli import build_parser, main
from stackwatch.core.options import Option, resolve_options
from stackwatch.exporters import main as exporter_main

from ..fixtures.postgres import MONITOR_PASSWORD, PostgresServer
from ..fixtures.procs import wait_until
from .pki import bcrypt_hash, make_pki

# values tried in turn until one parses, so the twin test covers options added later too
CANDIDATES = ["127.0.0.1:9199", "7", "info", "pg.settings", "g=^x", "postgresql://u:pw@127.0.0.1:5432/db",
              "redis://127.0.0.1:6379/0", "/tmp/some/path", "rq:rq:queue:*", "data=/tmp"]


def _sample(opt: Option) -> str:
    for candidate in CANDIDATES:
        try:
            opt.parse(candidate)
            return candidate
        except (ValueError, TypeError):
            continue
    raise AssertionError(f"no sample value parses for {opt.flag}: extend CANDIDATES in {__file__}")


def _namespace(*args: str) -> Any:
    return build_parser().parse_args(["exporter", *args])


def _resolve(args: list[str], environ: dict[str, str]) -> dict[str, Any]:
    return resolve_options(exporter_main.all_options(), _namespace(*args), environ)


# -- --help ----------------------------------------------------------------------------------
def test_help_lists_every_flag_with_its_environment_twin(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["exporter", "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for opt in exporter_main.all_options():
        assert opt.flag in text
        assert f"${opt.env}" in text, f"{opt.flag} does not name ${opt.env} in --help"
        if opt.secret:
            assert f"${opt.env}_FILE" in text
    for title in ("server:", "PostgreSQL:", "processes and resource limits:"):
        assert title in text
    assert "%%" not in text and "None" not in text


# -- environment twins -----------------------------------------------------------------------
@pytest.mark.parametrize("opt", exporter_main.all_options(), ids=lambda o: o.flag)
def test_every_flag_has_an_environment_twin(opt: Option, tmp_path: Path) -> None:
    value = _sample(opt)
    from_flag = _resolve([opt.flag, value], {})[opt.dest]
    assert from_flag == _resolve([], {opt.env: value})[opt.dest]
    if opt.secret:
        secret_file = tmp_path / "secret"
        secret_file.write_text(value + "\n")
        assert from_flag == _resolve([], {f"{opt.env}_FILE": str(secret_file)})[opt.dest]
    # the flag wins over the environment
    other = [c for c in CANDIDATES if c != value and _parses(opt, c)]
    if other:
        assert _resolve([opt.flag, value], {opt.env: other[0]})[opt.dest] == from_flag


def _parses(opt: Option, text: str) -> bool:
    try:
        opt.parse(text)
        return True
    except (ValueError, TypeError):
        return False


def test_process_groups_from_the_environment_are_one_per_line() -> None:
    values = _resolve([], {"STACKWATCH_PROCESS_GROUPS": "db=^postgres\nweb=gunicorn|uvicorn, app\n\n"})
    assert [(g.name, g.pattern.pattern) for g in values["process_group"]] == [
        ("db", "^postgres"), ("web", "gunicorn|uvicorn, app")]


def test_web_config_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    assert _resolve([], {"STACKWATCH_WEB_CONFIG_FILE": str(path)})["web_config_file"] == str(path)


# -- bad input: exit 2, the option named, never the password ---------------------------------
def _run(args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
         environ: dict[str, str] | None = None) -> str:
    for key in [k for k in os.environ if k.startswith("STACKWATCH_")]:
        monkeypatch.delenv(key)
    for key, value in (environ or {}).items():
        monkeypatch.setenv(key, value)
    assert main(["exporter", *args]) == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(("args", "environ", "expected"), [
    (["--process-group", "g=(unclosed"], {}, ["--process-group", "'(unclosed' does not compile"]),
    ([], {"STACKWATCH_PROCESS_GROUPS": "ok=^x\ng=[z-a]"}, ["$STACKWATCH_PROCESS_GROUPS", "'[z-a]' does not compile"]),
    (["--process-group", "no-regex"], {}, ["--process-group", "expected NAME=REGEX"]),
    (["--process-group", "a=x", "--process-group", "a=y"], {}, ["--process-group", "declared twice: a"]),
    (["--interval-fast", "-1"], {}, ["--interval-fast", "positive"]),
    (["--listen", "nowhere"], {}, ["--listen", "HOST:PORT"]),
    (["--log-level", "loud"], {}, ["--log-level"]),
    (["--enable-collector", "process.nope"], {}, ["--enable-collector", "process.nope", "process.groups"]),
    (["--web.config.file", "/nonexistent/web.yml"], {}, ["--web.config.file: cannot read"]),
    ([], {"STACKWATCH_POSTGRES_DSN_FILE": "/nonexistent/dsn"}, ["$STACKWATCH_POSTGRES_DSN_FILE"]),
    (["--alertmanager-url", "ftp://u:hunter2@127.0.0.1:9093"], {},
     ["--alertmanager-url", "scheme must be http:// or https://", "u:***@"]),
    (["--redis-url", "redis://127.0.0.1:6399/1", "--redis-url", "redis://:pw@127.0.0.1:6399/1"], {},
     ["--redis-url", "more than one target named 127.0.0.1:6399/1"]),
    ([], {"STACKWATCH_POSTGRES_DSN": "postgresql://a@127.0.0.1:5499/db\npostgresql://b:pw@127.0.0.1:5499/db"},
     ["--postgres-dsn", "more than one target named 127.0.0.1:5499/db"]),
])
def test_bad_values_exit_2_naming_the_option(args: list[str], environ: dict[str, str], expected: list[str],
                                             capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    err = _run(args, capsys, monkeypatch, environ)
    assert err.startswith("stackwatch exporter: ")
    for part in expected:
        assert part in err


@pytest.mark.parametrize("flag", ["--interval-fast", "--interval-slow", "--interval-rare"])
@pytest.mark.parametrize("bad", ["inf", "nan", "0", "-1", "-inf", "Infinity", "1e12"])
def test_every_interval_rejects_what_is_not_a_finite_positive_duration(
        flag: str, bad: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    expected = "must be at most 604800 seconds" if bad == "1e12" else "must be a positive, finite number"
    err = _run([f"{flag}={bad}"], capsys, monkeypatch)  # -inf alone would read as a flag
    assert f"{flag}: invalid value {bad!r}: {expected}" in err
    variable = "STACKWATCH_" + flag.lstrip("-").replace("-", "_").upper()
    err = _run([], capsys, monkeypatch, {variable: bad})
    assert f"${variable}: invalid value {bad!r}: {expected}" in err


@pytest.mark.parametrize(("dsn", "reason"), [
    ("postgresql://u:hunter2@h/db?bogus=1", 'invalid URI query parameter: "bogus"'),
    ("host=h password=hunter2 bogus", 'missing "=" after "bogus"'),
    # libpq quotes the token it cannot decode: here the password itself
    ("postgresql://u:hunter2%zz@h/db", 'invalid percent-encoded token: "***"'),
    ("postgresql://u@h/db?password=hunter2%zz", 'invalid percent-encoded token: "***"'),
])
def test_bad_dsn_says_why_but_never_shows_the_password(dsn: str, reason: str, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    err = _run(["--postgres-dsn", dsn], capsys, monkeypatch)
    assert "--postgres-dsn" in err and reason in err and "hunter2" not in err
    err = _run([], capsys, monkeypatch, {"STACKWATCH_POSTGRES_DSN": dsn})
    assert "$STACKWATCH_POSTGRES_DSN" in err and reason in err and "hunter2" not in err


def test_bad_dsn_in_the_targets_file_never_shows_the_password(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    targets = tmp_path / "targets.yml"
    targets.write_text("targets:\n  orders:\n    postgres_dsn: postgresql://u:hunter2%zz@h/db\n")
    err = _run(["--targets-file", str(targets)], capsys, monkeypatch)
    assert "target 'orders'" in err and "percent-encoded" in err and "hunter2" not in err


@pytest.mark.parametrize(("entries", "expected"), [
    ("  orders:\n    postgres_dsn: {dsn}\n    sslmode: require\n",
     "target 'orders': unknown key 'sslmode' (known: alertmanager_url, alertmanager_url_file, postgres_dsn, "
     "postgres_dsn_file, redis_url, redis_url_file)"),
    ("  orders:\n    postgress_dsn: {dsn}\n", "target 'orders': unknown key 'postgress_dsn'"),
    ("  orders:\n    postgres_dsn: {dsn}\n    redis_url: redis://:hunter2@127.0.0.1:1/0\n",
     "target 'orders': postgres_dsn and redis_url; an entry is one target"),
    ("  orders:\n    postgres_dsn: {dsn}\n    postgres_dsn_file: /run/secrets/dsn\n",
     "target 'orders': postgres_dsn and postgres_dsn_file both given"),
    ("  orders: {{}}\n", "target 'orders': no target key; an entry is one target"),
    ("  orders:\n    postgres_dsn: {dsn}\n  orders:\n    redis_url: redis://127.0.0.1:1/0\n",
     "is not valid YAML at line 4, column 3: duplicate key 'orders'"),
    ("  orders:\n    postgres_dsn: {dsn}\n    postgres_dsn: {dsn}\n",
     "is not valid YAML at line 4, column 5: duplicate key 'postgres_dsn'"),
    ("  orders:\n    postgres_dsn: {dsn}\nother_targets: {{}}\n", "unknown top-level key 'other_targets'"),
])
def test_targets_file_mistakes_are_errors_naming_the_entry_and_the_key(
        entries: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """These were silently ignored: a target or a setting dropped without a word (and the
    exporter served; here it would stop at the busy --listen port instead)."""
    targets = tmp_path / "targets.yml"
    targets.write_text("targets:\n" + entries.format(dsn="postgresql://u:hunter2@127.0.0.1:1/db"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        err = _run(["--targets-file", str(targets), "--listen", f"127.0.0.1:{busy.getsockname()[1]}"],
                   capsys, monkeypatch)
    assert err.startswith("stackwatch exporter: --targets-file: ") and expected in err, err
    assert "hunter2" not in err


def test_bad_web_config_exits_2_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "web.yml"
    path.write_text("basic_auth_users:\n  alice: not-a-hash-but-a-password\n")
    err = _run(["--web.config.file", str(path)], capsys, monkeypatch)
    assert "--web.config.file: basic_auth_users.alice: is not a bcrypt hash" in err
    assert "not-a-hash-but-a-password" not in err
    path.write_text("tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n")
    err = _run([], capsys, monkeypatch, {"STACKWATCH_WEB_CONFIG_FILE": str(path)})
    assert "tls_server_config.cert_file: no such file" in err


def test_the_real_command_exits_2_on_a_bad_regex() -> None:
    result = subprocess.run([sys.executable, "-m", "stackwatch.cli", "exporter", "--process-group", "x=*"],
                            capture_output=True, text=True, timeout=60, env=_clean_env(), check=False)
    assert result.returncode == 2
    assert "--process-group" in result.stderr and "'*' does not compile" in result.stderr
    assert "Traceback" not in result.stderr


def test_listen_addresses() -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        exporter_main.parse_listen("9188")
    assert exporter_main.parse_listen(":0") == ("0.0.0.0", 0)  # port 0: a free port, logged at startup
    assert exporter_main.parse_listen("[::1]:9188") == ("::1", 9188)


def test_an_ipv6_listen_address_is_served() -> None:
    import socket

    from stackwatch.exporters.server import Exporter, ExporterHTTPServer

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("this host has no IPv6 loopback")
    server = ExporterHTTPServer(exporter_main.parse_listen("[::1]:0"), Exporter([], {}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert httpx.get(f"http://[::1]:{server.server_address[1]}/-/healthy", timeout=10).text == "OK\n"
    finally:
        server.shutdown()
        server.server_close()


# -- the real command: startup log, serving, SIGTERM ------------------------------------------
def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STACKWATCH_")}
    return {**env, **extra}


class Command:
    """``stackwatch exporter`` in a subprocess, with its log lines collected as they come."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "stackwatch.cli", "exporter", "--listen", "127.0.0.1:0",
                                      *args], stderr=subprocess.PIPE, text=True, env=env or _clean_env())
        self.lines: list[str] = []
        self._listening = threading.Event()
        self.url = ""
        threading.Thread(target=self._read, daemon=True).start()
        assert self._listening.wait(60), f"no 'listening on' line: {self.lines}"

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            found = re.search(r"listening on (https?://\S+)", line)
            if found:
                self.url = found.group(1)
                self._listening.set()

    @property
    def log(self) -> str:
        return "".join(self.lines)


@pytest.fixture
def command() -> Iterator[type[Command]]:
    started: list[Command] = []

    class Tracked(Command):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    yield Tracked
    for c in started:
        if c.proc.poll() is None:
            c.proc.kill()
            c.proc.wait(10)


def test_startup_log_lists_targets_with_passwords_redacted_and_sigterm_exits_0(
        command: type[Command], postgres: PostgresServer, tmp_path: Path) -> None:
    targets = tmp_path / "targets.yml"
    targets.write_text(f"targets:\n  orders-db:\n    postgres_dsn: '{postgres.monitor_dsn}'\n")
    run = command(["--postgres-dsn", postgres.monitor_dsn, "--targets-file", str(targets),
                   "--process-group", "db=postgres", "--interval-fast", "1"])
    assert run.url.startswith("http://127.0.0.1:")
    target_lines = [line for line in run.lines if " target {" in line]
    names = {re.search(r"'name': '([^']+)'", line).group(1) for line in target_lines}  # type: ignore[union-attr]
    assert "orders-db" in names and len(names) == 3  # the DSN target, the probe target, this host
    assert all("***" in line for line in target_lines if "'dsn'" in line)
    assert any("'groups': ['db']" in line for line in target_lines)
    wait_until(lambda: httpx.get(run.url + "/-/ready", timeout=10).status_code == 200, 60, "/-/ready")
    response = httpx.get(run.url + "/metrics", timeout=10)
    assert response.status_code == 200 and "process_group_processes{" in response.text
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(30) == 0
    assert "shutting down" in run.log and "stopped" in run.log
    assert MONITOR_PASSWORD not in run.log


def test_sigint_also_shuts_down_cleanly(command: type[Command]) -> None:
    run = command(["--process-group", "py=python"])
    run.proc.send_signal(signal.SIGINT)
    assert run.proc.wait(30) == 0


class _SignalledMidWrite(io.RawIOBase):
    """stderr's file, receiving SIGTERM while it writes: CPython runs a Python signal handler
    wherever the main thread is, here inside the buffered stream's write (under its lock), as it
    does when the signal arrives during a real write to a pipe."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if not self.written:
            self.written = bytes(data)
            signal.raise_signal(signal.SIGTERM)
        return len(data)


def test_a_signal_during_a_log_write_still_shuts_down(monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """The full suite sent SIGINT as the exporter wrote its startup line: a handler that logs
    itself writes reentrantly into that write, fails, and never starts the shutdown."""
    from stackwatch.exporters.server import Exporter, ExporterHTTPServer

    stderr = io.TextIOWrapper(io.BufferedWriter(_SignalledMidWrite()), line_buffering=True)
    monkeypatch.setattr(sys, "stderr", stderr)
    handler = logging.StreamHandler(stderr)
    logger = logging.getLogger("stackwatch.exporters")
    caplog.set_level(logging.INFO, logger="stackwatch.exporters")
    logger.addHandler(handler)
    server = ExporterHTTPServer(exporter_main.parse_listen("127.0.0.1:0"), Exporter([], {}))
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        exporter_main._stop_on_signals(server)
        logger.info("a line being written when the signal comes")
        serving.start()
        serving.join(10)
        assert not serving.is_alive(), "SIGTERM during a log write did not shut the server down"
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
        logger.removeHandler(handler)
        if serving.is_alive():
            server.shutdown()
        server.server_close()
    assert "shutting down" in caplog.text


def test_https_and_basic_auth_announced_at_startup(command: type[Command], tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                   f"basic_auth_users:\n  prometheus: '{bcrypt_hash('pw')}'\n")
    run = command(["--process-group", "py=python"], env=_clean_env(STACKWATCH_WEB_CONFIG_FILE=str(web)))
    assert run.url.startswith("https://127.0.0.1:") and "basic auth on" in run.log
    trust = ssl.create_default_context(cafile=str(pki.ca))
    assert httpx.get(run.url + "/-/healthy", verify=trust).status_code == 401
    assert httpx.get(run.url + "/-/healthy", verify=trust, auth=("prometheus", "pw")).text == "OK\n"
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(30) == 0


def test_every_log_record_is_one_line_without_the_password(command: type[Command]) -> None:
    """libpq's refusal is two lines ("... Connection refused" and "Is the server running...");
    each record is one line, so a log shipper splitting on newlines keeps it whole."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    run = command(["--postgres-dsn", f"postgresql://u:Zq-secret@127.0.0.1:{port}/db", "--interval-fast", "1"])
    # the target's "down" record; a tier's "cannot poll" record may come first, also one line
    wait_until(lambda: "down (unreachable)" in run.log, 60, "the target's connection failure to be logged")
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(30) == 0
    record = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) stackwatch\.exporters: ")
    assert all(record.match(line) for line in run.lines), run.lines
    down = [line for line in run.lines if "down (unreachable)" in line]
    assert down and all("Connection refused\\n" in line and "Is the server running" in line for line in down), down
    assert "Zq-secret" not in run.log


def test_tracebacks_are_folded_into_their_record() -> None:
    from stackwatch.exporters.logformat import LOG_FORMAT, OneLineFormatter

    try:
        raise RuntimeError("cannot reach postgresql://u:Zq-secret@db/app\nsecond line")
    except RuntimeError:
        record = logging.LogRecord("stackwatch.exporters", logging.ERROR, __file__, 1, "poll failed:\r\n%s",
                                   ("detail",), sys.exc_info())
    line = OneLineFormatter(LOG_FORMAT).format(record)
    assert "\n" not in line and "\r" not in line and "Zq-secret" not in line
    assert "poll failed:\\ndetail\\nTraceback (most recent call last):\\n" in line
    assert line.endswith("RuntimeError: cannot reach postgresql://u:***@db/app\\nsecond line")
