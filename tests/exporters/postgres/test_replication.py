"""The replication collector against a real streaming replica of a real primary.

The replica is a copy of the cleanly stopped primary's data directory started with
``standby.signal``: unlike ``pg_basebackup`` (absent from the npm server packages, and refusing
newer servers), this works for every version in the matrix. Replay is paused and resumed on the
replica to create lag on demand.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from stackwatch.exporters.postgres.replication import ReplicationCollector, per_replica
from tests.exporters.postgres.collect import collector, value, values
from tests.fixtures.postgres import SUPERUSER_PASSWORD, PostgresServer
from tests.fixtures.procs import free_port, wait_until

SLOT = "sw_replica_slot"
IDLE_SLOT = "sw_idle_slot"
REPLICA_NAME = "sw_replica"


class Replica(PostgresServer):
    """A streaming standby cloned from ``primary`` (stopped briefly for a consistent copy)."""

    def __init__(self, primary: PostgresServer) -> None:  # not calling super(): it would run initdb
        self.bindir, self.initdb, self.pg_ctl = primary.bindir, primary.initdb, primary.pg_ctl
        self.host, self.port = primary.host, free_port()
        self.root = Path(tempfile.mkdtemp(prefix="stackwatch-pg-replica-"))
        self.datadir, self.logfile = self.root / "data", self.root / "server.log"
        self._user = self._run_as_user()
        primary.stop()
        try:
            shutil.copytree(primary.datadir, self.datadir, symlinks=True)
        finally:
            primary.start()
        if self._user:
            entry = pwd.getpwnam(self._user)
            subprocess.run(["chown", "-R", f"{entry.pw_uid}:{entry.pw_gid}", str(self.root)], check=True)
        conninfo = (f"host={primary.host} port={primary.port} user=postgres password={SUPERUSER_PASSWORD} "
                    f"application_name={REPLICA_NAME}")
        with open(self.datadir / "postgresql.conf", "a") as conf:
            conf.write(f"port = {self.port}\nunix_socket_directories = '{self.root}'\n"
                       f"primary_conninfo = '{conninfo}'\nprimary_slot_name = '{SLOT}'\n")
        (self.datadir / "standby.signal").touch()
        os.chmod(self.datadir, 0o700)
        self.start()
        self.version = primary.version


@pytest.fixture(scope="module")
def pair(postgres_any_version: PostgresServer, postgres_factory) -> tuple[PostgresServer, Replica]:
    primary: PostgresServer = postgres_factory(bindir=postgres_any_version.bindir)
    primary.query("CREATE TABLE filler (id int, pad text)")
    primary.query("SELECT pg_create_physical_replication_slot(%s)", (SLOT,))
    replica = Replica(primary)
    wait_until(lambda: primary.query("SELECT count(*) FROM pg_stat_replication WHERE application_name = %s "
                                     "AND state = 'streaming'", (REPLICA_NAME,))[0][0] == 1, 60, "streaming")
    yield primary, replica
    replica.destroy()


collect = collector(ReplicationCollector)


def lsn(server: PostgresServer, expression: str) -> int:
    return int(server.query(f"SELECT pg_wal_lsn_diff({expression}, '0/0')")[0][0])


def write_wal(primary: PostgresServer) -> None:
    """Several hundred kB of WAL in one committed transaction."""
    primary.query("INSERT INTO filler SELECT g, repeat('x', 500) FROM generate_series(1, 2000) AS g")


def caught_up(primary: PostgresServer, replica: PostgresServer) -> bool:
    return lsn(replica, "pg_last_wal_replay_lsn()") >= lsn(primary, "pg_current_wal_lsn()")


def test_primary_reports_its_replica_and_slots(pair: tuple[PostgresServer, Replica]) -> None:
    primary, replica = pair
    primary.query("SELECT pg_create_physical_replication_slot(%s, true)", (IDLE_SLOT,))
    try:
        start = lsn(primary, "pg_current_wal_lsn()")
        write_wal(primary)
        written = lsn(primary, "pg_current_wal_lsn()") - start
        wait_until(lambda: caught_up(primary, replica), 30, "the replica to replay")
        families = collect(primary)
        position = lsn(primary, "pg_current_wal_lsn()")
    finally:
        primary.query("SELECT pg_drop_replication_slot(%s)", (IDLE_SLOT,))
    labels = {"application_name": REPLICA_NAME, "client_addr": "127.0.0.1"}
    assert value(families, "pg_replication_is_replica") == 0
    assert value(families, "pg_replication_lag_seconds") == 0
    assert value(families, "pg_stat_replication_replay_lag_bytes", **labels) == 0
    for lag in ("write", "flush", "replay"):
        assert value(families, f"pg_stat_replication_{lag}_lag_seconds", **labels) >= 0
    assert value(families, "pg_replication_slot_retained_wal_bytes", slot_name=SLOT, active="true") >= 0
    assert value(families, "pg_replication_slot_retained_wal_bytes", slot_name=IDLE_SLOT, active="false") >= written
    # the same slots under postgres_exporter's names (database is empty for a physical slot)
    assert value(families, "pg_replication_slots_active", slot_name=SLOT, database="") == 1
    assert value(families, "pg_replication_slots_active", slot_name=IDLE_SLOT, database="") == 0
    assert value(families, "pg_replication_slots_pg_wal_lsn_diff", slot_name=IDLE_SLOT, database="") == \
        value(families, "pg_replication_slot_retained_wal_bytes", slot_name=IDLE_SLOT, active="false")
    assert written > 100_000  # the INSERT really wrote WAL (about 0.5-1 MB depending on the version)
    # postgres_exporter 0.20's per-replica and per-slot families
    peer = {**labels, "state": "streaming", "slot_name": SLOT}
    assert value(families, "pg_stat_replication_pg_wal_lsn_diff", **peer) == \
        value(families, "pg_stat_replication_replay_lag_bytes", **labels)
    assert start + written <= value(families, "pg_stat_replication_pg_current_wal_lsn_bytes", **peer) <= position
    for slot, active in ((SLOT, 1), (IDLE_SLOT, 0)):
        typed = {"slot_name": slot, "slot_type": "physical"}
        assert value(families, "pg_replication_slots_slot_is_active", **typed) == active
        assert value(families, "pg_replication_slots_wal_status", **typed, wal_status="reserved") == 1
        assert value(families, "pg_replication_slot_slot_is_active", **typed) == active  # 0.15-0.19's name
        assert value(families, "pg_replication_slots_slot_confirmed_flush_lsn", **typed) == 0  # physical
        assert start + written <= value(families, "pg_replication_slots_slot_current_wal_lsn", **typed) <= position
    assert values(families, "pg_replication_slots_safe_wal_size_bytes") == {}  # max_slot_wal_keep_size = -1
    assert value(families, "pg_replication_last_replay_seconds") is None  # a primary replays nothing


def test_paused_replay_shows_lag_on_both_ends_then_recovers_while_primary_idles(
        pair: tuple[PostgresServer, Replica]) -> None:
    primary, replica = pair
    write_wal(primary)
    wait_until(lambda: caught_up(primary, replica), 30, "the replica to replay")
    last_replayed = time.time()
    replica.query("SELECT pg_wal_replay_pause()")
    try:
        wait_until(lambda: replica.query("SELECT pg_is_wal_replay_paused()")[0][0], 10, "replay to pause")
        paused_at = lsn(replica, "pg_last_wal_replay_lsn()")
        time.sleep(1.0)
        write_wal(primary)
        behind = lsn(primary, "pg_current_wal_lsn()") - paused_at
        wait_until(lambda: lsn(replica, "pg_last_wal_receive_lsn()") >= paused_at + behind, 30, "WAL to arrive")
        on_primary = collect(primary)
        on_replica = collect(replica)
        elapsed = time.time() - last_replayed
        behind_max = lsn(primary, "pg_current_wal_lsn()") - paused_at
    finally:
        replica.query("SELECT pg_wal_replay_resume()")
    labels = {"application_name": REPLICA_NAME, "client_addr": "127.0.0.1"}
    assert behind <= value(on_primary, "pg_stat_replication_replay_lag_bytes", **labels) <= behind_max
    assert value(on_replica, "pg_replication_is_replica") == 1
    assert 1.0 <= value(on_replica, "pg_replication_lag_seconds") <= elapsed + 1.0
    assert 1.0 <= value(on_replica, "pg_replication_last_replay_seconds") <= elapsed + 1.0
    # caught up again, then the primary stays idle: the last replayed commit ages, the lag does not
    wait_until(lambda: caught_up(primary, replica), 30, "the replica to catch up")
    time.sleep(1.5)
    wait_until(lambda: value(collect(replica), "pg_replication_lag_seconds") == 0, 10, "lag 0 while idle")
    assert replica.query("SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp())")[0][0] > 1.5


def set_upstream(replica: Replica, conninfo: str) -> None:
    """Point the standby's WAL receiver at ``conninfo`` (reloadable since PostgreSQL 13) and restart it."""
    replica.query(f"ALTER SYSTEM SET primary_conninfo = '{conninfo}'")
    replica.query("SELECT pg_reload_conf()")
    replica.query("SELECT pg_terminate_backend(pid) FROM pg_stat_wal_receiver")


def test_standby_reports_whether_its_wal_receiver_streams(pair: tuple[PostgresServer, Replica]) -> None:
    """Receiver gone, lag 0 all the same: only the receiver's state tells broken replication apart."""
    primary, replica = pair
    assert value(collect(replica), "pg_stat_wal_receiver_streaming") == 1
    assert value(collect(primary), "pg_stat_wal_receiver_streaming") is None  # a primary has no receiver
    working = replica.query("SHOW primary_conninfo")[0][0]
    set_upstream(replica, f"host={primary.host} port={free_port()} user=postgres connect_timeout=2")
    try:
        wait_until(lambda: value(collect(replica), "pg_stat_wal_receiver_streaming") == 0, 30,
                   "the receiver to stop streaming")
        families = collect(replica)
        assert value(families, "pg_replication_lag_seconds") == 0  # why the lag alone cannot tell
        assert value(families, "pg_replication_is_replica") == 1
    finally:
        replica.query("ALTER SYSTEM RESET primary_conninfo")
        replica.query("SELECT pg_reload_conf()")
    assert replica.query("SHOW primary_conninfo")[0][0] == working
    wait_until(lambda: value(collect(replica), "pg_stat_wal_receiver_streaming") == 1, 60, "streaming again")


def test_replicas_sharing_name_and_address_keep_the_worst_lag() -> None:
    rows = [
        {"application_name": "walreceiver", "client_addr": "10.0.0.2", "write_lag": 0.1, "flush_lag": 0.2,
         "replay_lag": 3.0, "replay_lag_bytes": 10.0},
        {"application_name": "walreceiver", "client_addr": "10.0.0.2", "write_lag": 0.5, "flush_lag": None,
         "replay_lag": 1.0, "replay_lag_bytes": 99.0},
        {"application_name": "b", "client_addr": "", "write_lag": 0.0, "flush_lag": 0.0,
         "replay_lag": 0.0, "replay_lag_bytes": 0.0},
    ]
    assert per_replica(rows) == {
        ("walreceiver", "10.0.0.2"): {"write_lag": 0.5, "flush_lag": 0.2, "replay_lag": 3.0, "replay_lag_bytes": 99.0},
        ("b", ""): {"write_lag": 0.0, "flush_lag": 0.0, "replay_lag": 0.0, "replay_lag_bytes": 0.0},
    }
