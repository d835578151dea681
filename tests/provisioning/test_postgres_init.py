"""provisioning/postgres/10-monitoring-role.sh, run as the postgres image would, on a real server."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from typing import Any

import psycopg

from tests.fixtures.postgres import SUPERUSER_PASSWORD
from tests.fixtures.procs import require_binary

from .conftest import PROVISIONING, services

SCRIPT = PROVISIONING / "postgres" / "10-monitoring-role.sh"


def _run_script(server: Any) -> None:
    """The script as the image's entrypoint runs it: psql as the superuser, on database demo_init."""
    server.query("CREATE DATABASE demo_init")
    psql = require_binary("psql", "postgresql-client-15", (server.bindir,))
    env = {"PATH": f"{os.path.dirname(psql)}:{os.environ['PATH']}", "PGHOST": server.host,
           "PGPORT": str(server.port), "PGPASSWORD": SUPERUSER_PASSWORD, "POSTGRES_USER": "postgres",
           "POSTGRES_DB": "demo_init", "STACKWATCH_MONITOR_PASSWORD": "it's a secret"}
    result = subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_creates_a_least_privilege_role_that_reads_statements(postgres_factory: Callable[..., Any]) -> None:
    server = postgres_factory()
    _run_script(server)

    with psycopg.connect(host=server.host, port=server.port, dbname="demo_init", user="stackwatch",
                         password="it's a secret", autocommit=True) as conn:
        assert conn.execute("SELECT count(*) >= 0 FROM pg_stat_statements").fetchone() == (True,)
        assert conn.execute("SELECT pg_has_role('pg_monitor', 'member')").fetchone() == (True,)
        assert conn.execute("SELECT rolsuper, rolconnlimit FROM pg_roles WHERE rolname = current_user"
                            ).fetchone() == (False, 3)


def test_the_role_keeps_a_reserved_slot_when_the_application_takes_every_other(
        postgres_factory: Callable[..., Any], postgres_any_version: Any) -> None:
    """PostgreSQL 16+: with every ordinary slot taken, the exporter's role still connects (it is in
    pg_use_reserved_connections, the compose file reserves its slots); older majors run the script
    unchanged."""
    reserved = int(dict(a.split("=", 1) for a in services()["postgres"]["command"] if "=" in a)["reserved_connections"])
    assert reserved >= int(re.search(r"CONNECTION LIMIT (\d+)", SCRIPT.read_text()).group(1))
    settings = {"max_connections": 8, "superuser_reserved_connections": 1}
    if postgres_any_version.version >= 160000:
        settings["reserved_connections"] = reserved
    server = postgres_factory(postgres_any_version.bindir, **settings)
    _run_script(server)
    granted = server.query("SELECT pg_has_role('stackwatch', oid, 'member') FROM pg_roles "
                           "WHERE rolname = 'pg_use_reserved_connections'")
    if server.version < 160000:
        assert granted == []  # no such role before 16, and the script did not fail over it
        return
    assert granted == [(True,)]
    server.query("CREATE ROLE app LOGIN PASSWORD 'app'")
    held: list[psycopg.Connection[Any]] = []
    try:
        while len(held) < 10:
            try:
                held.append(psycopg.connect(host=server.host, port=server.port, dbname="demo_init", user="app",
                                            password="app", connect_timeout=10))
            except psycopg.OperationalError as error:
                assert "reserved" in str(error), error
                break
        assert len(held) == 8 - 1 - reserved  # every ordinary slot taken
        with psycopg.connect(host=server.host, port=server.port, dbname="demo_init", user="stackwatch",
                             password="it's a secret", connect_timeout=10) as conn:
            assert conn.execute("SELECT sum(numbackends) > 0 FROM pg_stat_database").fetchone() == (True,)
    finally:
        for conn in held:
            conn.close()
