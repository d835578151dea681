"""docs/metrics.md lists every family the exporter really produces.

The exporter is built from options exactly as the CLI builds it, with every collector enabled,
pointed at the real PostgreSQL and Redis fixtures and a process group; each target is polled once
and every family in the resulting /metrics registry must be documented.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from stackwatch.core.options import resolve_options
from stackwatch.exporters import main as exporter_main
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.prometheus import AlertmanagerServer
from tests.fixtures.redis import RedisServer

ROOT = Path(__file__).resolve().parent.parent
CLIENT_PYTHON_OWN = ("python_", "process_cpu", "process_open_fds", "process_max_fds", "process_virtual",
                     "process_resident", "process_start_time")


def exposed_names(registry) -> set[str]:
    names = set()
    for family in registry.collect():
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        names.add(family.name + suffix)
    return names


def test_every_exported_family_is_documented(postgres: PostgresServer, redis_server: RedisServer,
                                             alertmanager_factory: Any) -> None:
    manager: AlertmanagerServer = alertmanager_factory({"route": {"receiver": "null"}, "receivers": [{"name": "null"}]})
    parser = argparse.ArgumentParser()
    exporter_main.add_arguments(parser)
    every = [f"{kind.prefix}.{c.name}" for kind in exporter_main.KINDS for c in kind.collectors]
    argv = ["--postgres-dsn", postgres.monitor_dsn, "--redis-url", redis_server.url,
            "--process-group", "pytest=python", "--alertmanager-url", manager.url]
    for name in every:
        argv += ["--enable-collector", name]
    exporter = exporter_main.build(resolve_options(exporter_main.all_options(), parser.parse_args(argv), {}))
    postgres.query("SELECT pg_stat_statements_reset()")
    postgres.query("SELECT count(*) FROM pg_class")
    redis_server.client().set("docs:key", "1")
    for target in exporter.all_targets():
        target.refresh()
        target.refresh()  # a second poll fills the window families (ratios over the polling window)
    names = exposed_names(exporter.metrics_registry())
    text = (ROOT / "docs" / "metrics.md").read_text()
    documented = set(re.findall(r"`([a-z_][a-z0-9_]*)(?:\{[^`]*\})?`", text))
    for generic in re.findall(r"`<prefix>(_[a-z0-9_]+)`", text):  # the self-observability families
        documented |= {kind.prefix + generic for kind in exporter_main.KINDS}
    # a family per server parameter, documented once as `pg_settings_<name>`
    prefixes = tuple(re.findall(r"`([a-z][a-z0-9_]*_)<[a-z_]+>`", text))
    missing = sorted(n for n in names if n not in documented and not n.startswith(CLIENT_PYTHON_OWN + prefixes))
    assert not missing, f"families exported but not in docs/metrics.md: {missing}"
    assert {"pg_up", "redis_up", "pg_connections_saturation_ratio", "redis_keyspace_hits_total",
            "stackwatch_alertmanager_alerts"} <= names
    for target in exporter.all_targets():
        target.close()
