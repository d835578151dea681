"""The command itself: exit codes, --fail-on, formats, colors, progress, env twins, the deadline."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from stackwatch.check.model import Finding, Item, Status
from stackwatch.check.render import render, scrub
from stackwatch.check.runner import Report
from tests.check.conftest import run_check


def test_nothing_to_check_is_a_usage_error() -> None:
    outcome = run_check()
    assert outcome.code == 2 and "--postgres-dsn" in outcome.err


def test_bad_values_name_the_option_and_the_value() -> None:
    outcome = run_check("--format", "yaml", "--redis-url", "redis://127.0.0.1:1")
    assert outcome.code == 2 and "--format" in outcome.err and "'yaml'" in outcome.err
    outcome = run_check("--deadline", "-3", "--redis-url", "redis://127.0.0.1:1")
    assert outcome.code == 2 and "--deadline" in outcome.err


def test_bad_secret_from_the_environment_is_named_but_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACKWATCH_REDIS_URL", "http://:env-secret-1@host")
    outcome = run_check()
    assert outcome.code == 2 and "$STACKWATCH_REDIS_URL" in outcome.err and "env-secret-1" not in outcome.err


def test_file_twin_supplies_the_dsn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_factory: Any) -> None:
    server = redis_factory(maxmemory="8mb", maxmemory_policy="allkeys-lru")
    secret = tmp_path / "redis-url"
    secret.write_text(server.url + "\n")
    monkeypatch.setenv("STACKWATCH_REDIS_URL_FILE", str(secret))
    outcome = run_check("--format", "json", "--redis-window", "0.2")
    assert outcome.status("redis.maxmemory") == "pass"


def test_fail_on_warn_turns_warnings_into_exit_1(redis_factory: Any) -> None:
    server = redis_factory(maxmemory="8mb", maxmemory_policy="noeviction")  # warn only
    server.client().set("user:1", "x", ex=60)
    default = run_check("--format", "json", "--redis-url", server.url, "--redis-window", "0.2")
    assert default.status("redis.maxmemory") == "warn"
    assert {f["status"] for f in default.report["findings"]} <= {"pass", "warn", "unknown"}
    assert default.code == 0 and default.report["exit_code"] == 0
    strict = run_check("--format", "json", "--fail-on", "warn", "--redis-url", server.url, "--redis-window", "0.2")
    assert strict.code == 1


def test_table_is_plain_off_a_terminal_and_colored_on_request(redis_factory: Any) -> None:
    server = redis_factory()
    plain = run_check("--redis-url", server.url, "--redis-window", "0.2")
    assert "\033[" not in plain.out and "FAIL    redis.maxmemory" in plain.out
    assert "stackwatch check: redis done" in plain.err  # progress on stderr
    colored = run_check("--redis-url", server.url, "--redis-window", "0.2", "--color", "always", "--quiet", "yes")
    assert "\033[31mFAIL" in colored.out and colored.err == ""


def test_the_deadline_bounds_a_hanging_server() -> None:
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        began = time.monotonic()
        outcome = run_check("--format", "json", "--app-url", url, "--deadline", "2", "--timeout", "30")
        elapsed = time.monotonic() - began
    assert elapsed < 6, elapsed
    statuses = {f["id"]: f["status"] for f in outcome.report["findings"] if f["id"].startswith("app.")}
    assert set(statuses.values()) <= {"fail", "unknown"} and statuses["app.health"] in ("fail", "unknown")


def test_markdown_escapes_table_cells_and_scrub_removes_every_secret() -> None:
    item = Item("x.y", "Database", "a | b")
    report = Report([Finding(item, Status.FAIL, "seen postgresql://u:hunter22@h/db and hunter22\nnext", "fix|it")])
    text = render(report, "markdown", ["hunter22"], 1)
    assert "hunter22" not in text and "a \\| b" in text and "fix\\|it" in text and "<br>" in text
    assert json.loads(render(report, "json", ["hunter22"], 1))["findings"][0]["status"] == "fail"
    assert scrub("password=abc123 x", []) == "password=*** x"


@pytest.mark.parametrize("fmt", ["table", "json", "markdown"])
def test_secrets_are_scrubbed_before_escaping_and_wrapping(fmt: str) -> None:
    """JSON escapes quotes and backslashes, Markdown pipes, the table wraps long words and at
    hyphens: a secret scrubbed only from the finished text would slip through in pieces."""
    secrets = ['pa"ss\\wo|rd', "long-secret-" + "x" * 150]
    item = Item("x.y", "Database", "title")
    report = Report([Finding(item, Status.FAIL, f"server said {secrets[0]} and {secrets[1]}", "fix")],
                    [f"redis: refused {secrets[0]}"])
    text = render(report, fmt, secrets, 1)
    for piece in ('pa"ss', 'pa\\"ss', "wo|rd", "wo\\|rd", "x" * 40, "long-secret"):
        assert piece not in text, (piece, text)


def test_percent_encoded_url_passwords_are_scrubbed_as_sent_too() -> None:
    from stackwatch.check.cli import _secrets

    values = {"postgres_dsn": None, "prometheus_url": None, "app_url": None, "static_url": None,
              "redis_url": "redis://:s%40fe-pw%21@127.0.0.1:6379/0"}
    assert {"s%40fe-pw%21", "s@fe-pw!"} <= set(_secrets(values))


def test_console_script_wires_the_subcommand() -> None:
    result = subprocess.run([sys.executable, "-m", "stackwatch.cli", "check", "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0
    for flag in ("--postgres-dsn", "--redis-url", "--prometheus-url", "--app-url", "--fail-on", "--deadline",
                 "STACKWATCH_POSTGRES_DSN_FILE"):
        assert flag in result.stdout


def test_docs_list_every_option_as_generated() -> None:
    from stackwatch.check.cli import OPTIONS
    from stackwatch.core.options import markdown_table

    doc = (Path(__file__).resolve().parents[2] / "docs" / "check.md").read_text(encoding="utf-8")
    assert markdown_table(OPTIONS) in doc, "regenerate the options table of docs/check.md"


@pytest.mark.parametrize("fmt", ["table", "json", "markdown"])
def test_no_secret_in_any_format(fmt: str, postgres: Any, redis_factory: Any) -> None:
    from tests.fixtures.procs import free_port

    cache = redis_factory(requirepass="cache-secret-77")
    outcome = run_check("--format", fmt, "--redis-window", "0.2",
                        "--postgres-dsn", postgres.dsn(),  # password postgres-secret
                        "--redis-url", cache.url,
                        "--prometheus-url", f"http://ops:prom-secret-88@127.0.0.1:{free_port()}",
                        "--app-url", f"http://app:app-secret-99@127.0.0.1:{free_port()}")
    text = outcome.out + outcome.err
    assert outcome.code == 2  # Prometheus is unreachable
    for secret in ("postgres-secret", "cache-secret-77", "prom-secret-88", "app-secret-99"):
        assert secret not in text, secret
    assert "pg.connections" in outcome.out and "redis.maxmemory" in outcome.out


#: client libraries of the checked systems, and the instrumentation's (redis-py itself imports opentelemetry)
_CLIENTS = ("psycopg", "psycopg_pool", "redis", "httpx", "asyncpg", "sqlalchemy", "fastapi", "sentry_sdk")
_IMPORTED = """
import json, sys
from stackwatch.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})), file=sys.stderr)
"""


def _clients_imported(*argv: str) -> set[str]:
    """Top-level client packages a fresh interpreter had imported after ``stackwatch ARGV``."""
    done = subprocess.run([sys.executable, "-c", _IMPORTED, *argv], capture_output=True, text=True, timeout=120)
    return set(json.loads(done.stderr.strip().splitlines()[-1])) & set(_CLIENTS)


def test_version_and_help_import_no_client_library() -> None:
    for argv in (["--version"], ["--help"], ["check", "--help"]):
        assert _clients_imported(*argv) == set(), argv


def test_check_imports_only_the_clients_of_the_systems_it_checks(redis_factory: Any) -> None:
    from tests.fixtures.procs import free_port

    server = redis_factory()
    redis_only = ["check", "--format", "json", "--redis-url", server.url, "--redis-window", "0.2"]
    assert _clients_imported(*redis_only) == {"redis"}
    assert _clients_imported("check", "--format", "json", "--app-url", f"http://127.0.0.1:{free_port()}") == set()
