"""Every Python example in README.md and docs/instrumentation.md runs as written.

The fenced ``python`` blocks are extracted verbatim. A block that defines a FastAPI ``app`` is
served by a real uvicorn (its lifespan runs) against the real PostgreSQL and Redis fixtures,
given as ``DATABASE_URL`` / ``REDIS_URL``; its ``/health`` must be 200 with every check ok, its
``/metrics`` must answer, and every GET route it declares must answer 200 for the id 1. Any other
block must run as a script without error (one that imports arq in arq's own environment, as
arq pins redis-py < 6).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from tests.exporters.redis.queue_jobs import ARQ_PYTHON
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.procs import free_port, stop_process, wait_until
from tests.fixtures.redis import RedisServer

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ("README.md", "docs/instrumentation.md")
_FENCE = re.compile(r"^( *)```python\n(.*?)^\1```", re.MULTILINE | re.DOTALL)
_GET_ROUTE = re.compile(r"""@app\.get\(["']([^"']+)["']""")


def snippets() -> list[tuple[str, str]]:
    found = []
    for name in DOCUMENTS:
        text = (ROOT / name).read_text()
        for number, match in enumerate(_FENCE.finditer(text), 1):
            code = textwrap.dedent(match.group(2))
            found.append((f"{name}#{number}", code))
    return found


SNIPPETS = snippets()


def test_the_examples_are_found() -> None:
    assert len(SNIPPETS) >= 6
    assert sum("app = FastAPI(" in code for _, code in SNIPPETS) >= 4


@pytest.fixture(scope="module")
def environment(postgres: PostgresServer, redis_server: RedisServer) -> dict[str, str]:
    postgres.create_database("snippets")
    postgres.query("CREATE TABLE IF NOT EXISTS users (id int PRIMARY KEY, name text)", dbname="snippets")
    postgres.query("INSERT INTO users VALUES (1, 'ada') ON CONFLICT DO NOTHING", dbname="snippets")
    env = {**os.environ, "DATABASE_URL": postgres.dsn("snippets"), "REDIS_URL": redis_server.url}
    for name in list(env):
        if name.startswith(("OTEL_", "SENTRY_", "STACKWATCH_", "PROMETHEUS_")):
            del env[name]
    return env


@pytest.mark.parametrize(("where", "code"), SNIPPETS, ids=[where for where, _ in SNIPPETS])
def test_example_runs_as_written(where: str, code: str, environment: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "example.py").write_text(code)
    if "app = FastAPI(" not in code:
        python = str(ARQ_PYTHON) if re.search(r"^(from|import) arq\b", code, re.MULTILINE) else sys.executable
        done = subprocess.run([python, "example.py"], cwd=tmp_path, env=environment,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"{where} failed:\n{done.stderr}"
        return
    port = free_port()
    log = tmp_path / "uvicorn.log"
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "uvicorn", "example:app", "--port", str(port),
                                   "--host", "127.0.0.1", "--log-level", "warning"],
                                  cwd=tmp_path, env=environment, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: server.poll() is not None or httpx.get(f"{base}/health/live").status_code == 200,
                   60, f"{where} to start")
        assert server.poll() is None, f"{where} did not start:\n{log.read_text()}"
        health = httpx.get(f"{base}/health", timeout=10)
        assert health.status_code == 200, f"{where}: {health.text}\n{log.read_text()}"
        assert all(check["status"] == "ok" for check in health.json()["checks"].values())
        assert "http_server_request_duration_seconds" in httpx.get(f"{base}/metrics", timeout=10).text
        for route in _GET_ROUTE.findall(code):
            path = re.sub(r"{[^}]+}", "1", route)
            for _ in range(2):  # a cache miss, then a hit
                response = httpx.get(base + path, timeout=10)
                assert response.status_code == 200, f"{where}: GET {path}: {response.text}\n{log.read_text()}"
    finally:
        stop_process(server)
