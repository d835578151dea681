"""Record the metric families the peer exporters export by default, for the drop-in test.

Runs Debian's ``prometheus-postgres-exporter`` (0.11.1) against PostgreSQL 13, 15 and 17 and
``prometheus-redis-exporter`` (1.45) against Debian's redis-server, each with its defaults, on
loopback servers started like the test fixtures, scrapes ``/metrics`` once and writes every
family's name, type and label names to ``tests/exporters/peer_families.yaml``. The Go runtime,
process and HTTP-handler families of the peers' own processes (``go_*``, ``process_*``,
``promhttp_*``, ``*_build_info``) are left out: they describe the exporter binary, not the server.

Run from the repository root (apt-get install prometheus-postgres-exporter prometheus-redis-exporter):
    STACKWATCH_PG_FETCH_DIR=.tmp python scripts/record_peer_families.py $(scripts/fetch-postgres)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.exporters.peer_families import DATA as OUT  # noqa: E402
from tests.exporters.peer_families import parse  # noqa: E402
from tests.fixtures.postgres import DEFAULT_BINDIR, MONITOR_USER, PostgresServer  # noqa: E402
from tests.fixtures.procs import free_port, require_binary, stop_process, wait_until  # noqa: E402
from tests.fixtures.redis import RedisServer  # noqa: E402

OWN_PROCESS = re.compile(r"^(go_|process_|promhttp_)|_build_info$")

HEADER = """\
# Metric families the peer exporters export by default: name -> type (as in their text format)
# and label names (without `server`, which stackwatch adds to every series). Used by
# tests/exporters/test_peer_families.py: stackwatch must export each of them with the same name,
# type and labels, except the documented exceptions listed there.
#
# Recorded by scripts/record_peer_families.py (do not edit by hand; re-run it) from the binaries
# Debian 12 packages, run with their defaults against loopback test servers:
#   postgres_exporter: prometheus-postgres-exporter {pg_version}, against PostgreSQL {pg_servers}.
#     `majors` lists the PostgreSQL majors on which it exported the family, when not all of them
#     (postgres_exporter 0.11.1 exports no pg_stat_bgwriter_* on 17: its query fails there).
#   redis_exporter: prometheus-redis-exporter {redis_version}, against redis-server {redis_server}.
# Left out: the peers' own go_*, process_*, promhttp_* and *_build_info families.
"""


def families(text: str) -> dict[str, dict[str, object]]:
    """name -> {type, labels} of the families that describe the server, not the peer's process."""
    return {name: {"type": f.type, "labels": sorted(f.labels)}
            for name, f in parse(text).items() if not OWN_PROCESS.search(name)}


def scrape(binary: str, args: list[str], env: dict[str, str] | None = None) -> str:
    port = free_port()
    proc = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_until(lambda: urllib.request.urlopen(url, timeout=5).status == 200, 30, f"{binary} to serve")
        time.sleep(0.5)
        return urllib.request.urlopen(url, timeout=30).read().decode()
    finally:
        stop_process(proc)


def version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    return re.search(r"(?:version|Exporter) (\d[^\s,]*)", out.stdout + out.stderr).group(1)  # type: ignore[union-attr]


def record_postgres(bindirs: list[str]) -> tuple[dict[str, dict[str, object]], list[str]]:
    binary = require_binary("prometheus-postgres-exporter", "prometheus-postgres-exporter")
    per_major: dict[int, dict[str, dict[str, object]]] = {}
    for bindir in bindirs:
        server = PostgresServer(bindir)
        try:
            server.query("SELECT pg_create_physical_replication_slot('recorded_slot', true)")
            dsn = server.dsn(user=MONITOR_USER) + "?sslmode=disable"
            text = scrape(binary, [], env={**os.environ, "DATA_SOURCE_NAME": dsn})
            per_major[server.version // 10000] = families(text)
        finally:
            server.destroy()
    majors = sorted(per_major)
    merged: dict[str, dict[str, object]] = {}
    for major in majors:
        for name, family in per_major[major].items():
            merged.setdefault(name, {**family, "majors": []})["majors"].append(major)  # type: ignore[union-attr]
    for family in merged.values():
        if family["majors"] == majors:
            del family["majors"]
    return dict(sorted(merged.items())), [str(m) for m in majors]


def record_redis() -> tuple[dict[str, dict[str, object]], str]:
    binary = require_binary("prometheus-redis-exporter", "prometheus-redis-exporter")
    server = RedisServer()
    try:
        client = server.client()
        client.set("recorded:1", "x")
        client.set("recorded:2", "y", ex=600)
        text = scrape(binary, [f"--redis.addr=redis://{server.host}:{server.port}"])
        return dict(sorted(families(text).items())), client.info("server")["redis_version"]
    finally:
        server.destroy()


def flow(family: dict[str, object]) -> str:
    """One family as a one-line YAML mapping."""
    return yaml.safe_dump(family, default_flow_style=True, sort_keys=False, width=1000).strip()


def main() -> None:
    bindirs = [DEFAULT_BINDIR] + [d for arg in sys.argv[1:] for d in arg.split(":") if d]
    postgres, majors = record_postgres(sorted(set(bindirs)))
    redis_families, redis_server = record_redis()
    header = HEADER.format(pg_version=version(require_binary("prometheus-postgres-exporter", "")),
                           pg_servers=", ".join(majors),
                           redis_version=version(require_binary("prometheus-redis-exporter", "")),
                           redis_server=redis_server)
    body = {"postgres_exporter": postgres, "redis_exporter": redis_families}
    lines = [f"{peer}:\n" + "".join(f"  {name}: {flow(family)}\n" for name, family in fams.items())
             for peer, fams in body.items()]
    OUT.write_text(header + "".join(lines))
    print(f"wrote {OUT}: {len(postgres)} postgres_exporter and {len(redis_families)} redis_exporter families")


if __name__ == "__main__":
    main()
