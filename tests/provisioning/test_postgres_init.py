"""provisioning/postgres/10-monitoring-role.sh, run as the postgres image would, on a real server."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from typing import Any

import psycopg

from tests.fixtures.postgres import SUPERUSER_PASSWORD
from tests.fixtures.procs import require_binary

from .conftest import PROVISIONING

SCRIPT = PROVISIONING / "postgres" / "10-monitoring-role.sh"


def test_creates_a_least_privilege_role_that_reads_statements(postgres_factory: Callable[..., Any]) -> None:
    server = postgres_factory()
    server.query("CREATE DATABASE demo_init")
    psql = require_binary("psql", "postgresql-client-15", (server.bindir,))
    env = {"PATH": f"{os.path.dirname(psql)}:{os.environ['PATH']}", "PGHOST": server.host,
           "PGPORT": str(server.port), "PGPASSWORD": SUPERUSER_PASSWORD, "POSTGRES_USER": "postgres",
           "POSTGRES_DB": "demo_init", "STACKWATCH_MONITOR_PASSWORD": "it's a secret"}
    result = subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr

    with psycopg.connect(host=server.host, port=server.port, dbname="demo_init", user="stackwatch",
                         password="it's a secret", autocommit=True) as conn:
        assert conn.execute("SELECT count(*) >= 0 FROM pg_stat_statements").fetchone() == (True,)
        assert conn.execute("SELECT pg_has_role('pg_monitor', 'member')").fetchone() == (True,)
        assert conn.execute("SELECT rolsuper, rolconnlimit FROM pg_roles WHERE rolname = current_user"
                            ).fetchone() == (False, 3)
