"""The index types and shapes the checklist names, advised on real servers: GIN for jsonb and
array containment, GiST for ranges and geometry, Hash for equality on a wide column, a partial
index for a constant predicate, the composite with the ORDER BY key (with and without an index
already serving the filter) -- each proven on the generic plan and switching it when applied for
real. And "when NOT to index": a small table, a column the application updates more often than it
filters on, a write-heavy table that already carries many indexes; and a trigram index that cannot
be built (pg_trgm not creatable by this role, or not installed on the server), shown with that
reason and the install step instead of silently.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from stackwatch.check import index_advice
from tests.check.conftest import Outcome, run_check
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.procs import wait_until

DB = "index_kinds"
OWNER = "kinds_owner"  # owns the tables, may not CREATE EXTENSION in the database
PASSWORD = "kinds-owner-pass"

STATEMENTS = {
    "gin_jsonb": "SELECT id FROM docs WHERE attrs @> %s::jsonb",
    "gin_array": "SELECT id FROM docs WHERE tags && %s::text[]",
    "gist_range": "SELECT id FROM bookings WHERE during && tstzrange(%s, %s)",
    "gist_point": "SELECT id FROM bookings WHERE spot <@ box(point(%s, %s), point(%s, %s))",
    "hash": "SELECT id FROM users WHERE token = %s",
    "partial": "SELECT id FROM users WHERE deleted_at IS NULL AND email = %s",
    "order_by": "SELECT id FROM orders WHERE user_id = %s ORDER BY created_at DESC LIMIT 20",
    "sorted_index_scan": "SELECT id FROM events WHERE account_id = %s ORDER BY at DESC LIMIT 20",
    "small": "SELECT id FROM tiny WHERE code = %s",
    "updated": "SELECT id FROM counters WHERE hits = %s",
    "trigram": "SELECT id FROM notes WHERE body LIKE %s",
    "skewed": "SELECT id FROM accounts WHERE flagged = %s",
    "uniform": "SELECT id FROM accounts WHERE coin = %s",
}
PARAMS: dict[str, tuple[object, ...]] = {
    "gin_jsonb": ('{"k": 5}',), "gin_array": (["t5"],), "gist_range": ("2030-01-01", "2030-01-02"),
    "gist_point": (1, 1, 2, 2), "hash": ("x" * 150,), "partial": ("u5@example.com",), "order_by": (5,),
    "sorted_index_scan": (5,), "small": ("c5",), "updated": (5,), "trigram": ("%abc%",),
    "skewed": (True,), "uniform": (True,),
}

SEED = """
CREATE TABLE docs (id bigserial PRIMARY KEY, attrs jsonb NOT NULL, tags text[] NOT NULL);
INSERT INTO docs (attrs, tags) SELECT jsonb_build_object('k', g % 1000, 'color', 'c' || g % 7), ARRAY['t' || g % 1000]
  FROM generate_series(1, 5000) g;
CREATE TABLE bookings (id bigserial PRIMARY KEY, during tstzrange NOT NULL, spot point NOT NULL);
INSERT INTO bookings (during, spot) SELECT tstzrange('2030-01-01'::timestamptz + g * interval '1 hour',
  '2030-01-01'::timestamptz + (g + 1) * interval '1 hour'), point(g % 100, g / 100) FROM generate_series(1, 5000) g;
CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL, token text NOT NULL, deleted_at timestamptz);
INSERT INTO users (email, token, deleted_at) SELECT 'u' || g || '@example.com', repeat(md5(g::text), 5),
  CASE WHEN g % 10 = 0 THEN now() END FROM generate_series(1, 5000) g;
CREATE TABLE orders (id bigserial PRIMARY KEY, user_id int NOT NULL, created_at timestamptz NOT NULL);
INSERT INTO orders (user_id, created_at) SELECT g % 25, now() - g * interval '1 minute' FROM generate_series(1, 5000) g;
CREATE TABLE events (id bigserial PRIMARY KEY, account_id int NOT NULL, at timestamptz NOT NULL);
INSERT INTO events (account_id, at) SELECT g % 20, now() - g * interval '1 minute' FROM generate_series(1, 24000) g;
CREATE INDEX events_account ON events (account_id);
CREATE TABLE tiny (id serial PRIMARY KEY, code text NOT NULL);
INSERT INTO tiny (code) SELECT 'c' || g FROM generate_series(1, 500) g;
CREATE TABLE counters (id bigserial PRIMARY KEY, hits int NOT NULL);
INSERT INTO counters (hits) SELECT g FROM generate_series(1, 5000) g;
CREATE TABLE audit (id bigserial PRIMARY KEY, ref int NOT NULL, a int, b int, c int, d int);
CREATE INDEX audit_a ON audit (a); CREATE INDEX audit_b ON audit (b); CREATE INDEX audit_c ON audit (c);
CREATE INDEX audit_d ON audit (d);
INSERT INTO audit (ref, a, b, c, d) SELECT g, g, g, g, g FROM generate_series(1, 4000) g;
CREATE TABLE notes (id bigserial PRIMARY KEY, body text NOT NULL);
INSERT INTO notes (body) SELECT 'note ' || md5(g::text) FROM generate_series(1, 5000) g;
-- flagged: 1 row in 100 (skewed: the rare value deserves a partial index); coin: half and half
CREATE TABLE accounts (id bigserial PRIMARY KEY, flagged boolean NOT NULL, coin boolean NOT NULL);
INSERT INTO accounts (flagged, coin) SELECT g % 100 = 0, g % 2 = 0 FROM generate_series(1, 5000) g;
ANALYZE;
"""


@dataclass
class Seeded:
    server: PostgresServer
    outcome: Outcome

    def plans(self) -> dict[str, str]:
        return self.outcome.finding("pg.plans")

    def dsn(self) -> str:
        return self.server.dsn(DB, user=OWNER, password=PASSWORD)


@pytest.fixture(scope="module")
def seeded(postgres_any_version: PostgresServer) -> Iterator[Seeded]:
    server = postgres_any_version
    server.query(f"DROP DATABASE IF EXISTS {DB}")
    server.query(f"DROP ROLE IF EXISTS {OWNER}")
    server.query(f"CREATE ROLE {OWNER} LOGIN PASSWORD '{PASSWORD}' IN ROLE pg_read_all_stats, pg_read_all_settings")
    server.create_database(DB)
    server.query(f"GRANT CREATE ON SCHEMA public TO {OWNER}", dbname=DB)
    with psycopg.connect(server.dsn(DB, user=OWNER, password=PASSWORD), autocommit=True) as conn:
        conn.execute(SEED)
        for name, statement in STATEMENTS.items():
            for _ in range(6):
                conn.execute(statement, PARAMS[name]).fetchall()
        for _ in range(10):  # the counter is bumped more often than it is searched
            conn.execute("UPDATE counters SET hits = hits + 1 WHERE id = %s", (1,))
        conn.execute("SELECT id FROM audit WHERE ref = %s", (5,)).fetchall()
        # written more than read: 4,000 + 2,000 rows in, 4,000 read by the one scan
        conn.execute("INSERT INTO audit (ref, a, b, c, d) SELECT g, g, g, g, g FROM generate_series(1, 2000) g")
        conn.execute("ANALYZE audit")
    # the statistics of a session reach pg_stat_user_tables shortly after it ends
    wait_until(lambda: server.query("SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'audit'",
                                    dbname=DB) == [(6000,)], 30, "the audit table's write counts")
    yield Seeded(server, run_check("--format", "json", "--postgres-dsn",
                                   server.dsn(DB, user=OWNER, password=PASSWORD), "--plans", "20"))


@pytest.mark.parametrize(("kind", "index"), [
    ("gin_jsonb", "ON public.docs USING gin (attrs);"),
    ("gin_array", "ON public.docs USING gin (tags);"),
    ("gist_range", "ON public.bookings USING gist (during);"),
    ("gist_point", "ON public.bookings USING gist (spot);"),
    ("hash", "ON public.users USING hash (token);"),
    ("partial", "ON public.users (email) WHERE deleted_at IS NULL;"),
    ("order_by", "ON public.orders (user_id, created_at DESC);"),
    ("sorted_index_scan", "ON public.events (account_id, at DESC);"),
])
def test_each_index_kind_is_advised_and_switches_the_plan_when_applied(seeded: Seeded, kind: str,
                                                                       index: str) -> None:
    fix = seeded.plans()["fix"]
    assert f"CREATE INDEX CONCURRENTLY {index}" in fix, seeded.plans()
    assert f"CREATE INDEX CONCURRENTLY {index}" in seeded.outcome.finding("pg.missing_indexes")["fix"]
    statement = STATEMENTS[kind].replace("%s", "$1", 1)
    for n in range(2, 5):
        statement = statement.replace("%s", f"${n}", 1)
    name = f"applied_{kind}"
    with psycopg.connect(seeded.dsn()) as conn:  # applied for real, in a transaction rolled back after
        conn.execute(f"CREATE INDEX {name} {index.rstrip(';')}")
        plan = index_advice.generic_plan(conn, statement, 5000)
        conn.rollback()
    assert index_advice.uses_index(plan, name), plan
    assert not index_advice.scans_to_index(plan), plan  # no filtered seq scan, no sort left


def test_a_skewed_column_gets_a_partial_index_on_its_rare_value_a_uniform_one_none(seeded: Seeded) -> None:
    """pg_stat_statements records `flagged = $1`; pg_stats shows flagged true in 1% of the rows: the
    partial index on true is proven on the statement with true substituted. coin (half true) gets none."""
    plans = seeded.plans()
    index = "ON public.accounts (flagged) WHERE flagged = true"
    assert f"CREATE INDEX CONCURRENTLY {index};" in plans["fix"], plans
    assert f"{index} turns it into an index scan when called with flagged = true (1% of the rows" in plans["evidence"]
    assert not [fix for fix in plans["fix"].split(";") if "CREATE INDEX" in fix and "coin" in fix], plans["fix"]
    assert "accounts WHERE coin = $1`: Seq Scan on public.accounts filtering" in plans["evidence"]  # judged
    with psycopg.connect(seeded.dsn()) as conn:  # applied for real: the rare value's plan uses it
        conn.execute(f"CREATE INDEX applied_skewed {index}")
        plan = index_advice.generic_plan(conn, "SELECT id FROM accounts WHERE flagged = true", 5000)
        generic = index_advice.generic_plan(conn, "SELECT id FROM accounts WHERE flagged = $1", 5000)
        conn.rollback()
    assert index_advice.uses_index(plan, "applied_skewed"), plan
    assert not index_advice.uses_index(generic, "applied_skewed")  # hence the substituted value


def test_a_small_table_is_not_indexed(seeded: Seeded) -> None:
    assert "tiny" not in seeded.plans()["evidence"] + seeded.plans()["fix"]


def test_a_column_updated_more_often_than_searched_is_not_indexed(seeded: Seeded) -> None:
    plans = seeded.plans()
    assert "not indexed: hits is set by `UPDATE counters SET hits = hits + $" in plans["evidence"], plans
    assert "(10 calls, at least as often as this SELECT's 6): an index on it would end HOT updates" in plans["evidence"]
    assert "counters (hits)" not in plans["fix"]


def test_a_write_heavy_table_with_many_indexes_gets_the_cost_spelled_out(seeded: Seeded) -> None:
    plans = seeded.plans()
    assert "CREATE INDEX CONCURRENTLY ON public.audit (ref);" in plans["fix"], plans
    assert "mind the cost: public.audit is write-heavy" in plans["evidence"]
    assert "already has 5 indexes that every write maintains" in plans["evidence"]
    assert "public.docs is write-heavy" not in plans["evidence"]
    # the same table, as the checklist's "when NOT to index" for the indexes it already has
    unused = seeded.outcome.finding("pg.unused_indexes")
    assert unused["status"] == "warn", unused
    assert "write-heavy table(s) with >= 5 indexes, each maintained on every write: public.audit (5 indexes; " \
        "6000 rows written vs 4000 read)" in unused["evidence"], unused
    assert "leave frequently updated columns unindexed" in unused["fix"]


def test_a_trigram_index_this_role_cannot_build_says_why(seeded: Seeded) -> None:
    plans = seeded.plans()
    assert ("CREATE INDEX CONCURRENTLY ON public.notes USING gin (body gin_trgm_ops) should serve it "
            "(not proven: this role may not create the pg_trgm extension here") in plans["evidence"], plans
    assert ("CREATE EXTENSION IF NOT EXISTS pg_trgm; CREATE INDEX CONCURRENTLY ON public.notes USING gin "
            "(body gin_trgm_ops);") in plans["fix"]


def _without_pg_trgm(bindir: str) -> tuple[str, str]:
    """``(bindir, root)`` of a copy of the PostgreSQL installation at ``bindir`` whose contrib lacks
    pg_trgm: a server without the contrib package, as some installs have. PostgreSQL finds its
    share directory relative to its binaries, so the copy keeps their relative layout (Debian's
    ``lib/postgresql/N/bin`` + ``share/postgresql/N``, the npm builds' ``bin`` + ``share/postgresql``)."""
    source = Path(bindir).resolve()
    share = next(p for p in (source.parents[3] / "share" / "postgresql" / source.parents[0].name,
                             source.parent / "share" / "postgresql") if (p / "extension" / "plpgsql.control").exists())
    top = Path(os.path.commonpath([source, share]))
    root = Path(tempfile.mkdtemp(prefix="stackwatch-no-trgm-"))
    shutil.copytree(source, root / source.relative_to(top), symlinks=True)
    shutil.copytree(share, root / share.relative_to(top), symlinks=True,
                    ignore=shutil.ignore_patterns("pg_trgm*"))
    (root / source.relative_to(top)).parent.joinpath("lib").symlink_to(source.parent / "lib")
    for path in [root, *root.rglob("*")]:  # readable by the server's unprivileged user
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o055)
    return str(root / source.relative_to(top)), str(root)


def test_without_pg_trgm_on_the_server_the_advice_says_to_install_it(postgres_any_version: PostgresServer) -> None:
    bindir, root = _without_pg_trgm(postgres_any_version.bindir)
    server = PostgresServer(bindir)
    try:
        assert not server.query("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
        server.create_database("no_trgm")
        with psycopg.connect(server.dsn("no_trgm"), autocommit=True) as conn:
            conn.execute("CREATE TABLE notes (id bigserial PRIMARY KEY, body text NOT NULL); INSERT INTO notes (body) "
                         "SELECT 'note ' || md5(g::text) FROM generate_series(1, 5000) g; ANALYZE notes")
            for _ in range(6):
                conn.execute(STATEMENTS["trigram"], PARAMS["trigram"]).fetchall()
        plans = run_check("--format", "json", "--postgres-dsn", server.dsn("no_trgm")).finding("pg.plans")
    finally:
        server.destroy()
        shutil.rmtree(root, ignore_errors=True)
    assert ("CREATE INDEX CONCURRENTLY ON public.notes USING gin (body gin_trgm_ops) should serve it "
            "(not proven: pg_trgm is not installed on the server)") in plans["evidence"], plans
    assert plans["fix"].startswith("install PostgreSQL's contrib modules on the server"), plans
    assert "then CREATE EXTENSION IF NOT EXISTS pg_trgm; CREATE INDEX CONCURRENTLY ON public.notes" in plans["fix"]
