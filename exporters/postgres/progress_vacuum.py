"""VACUUMs running now: which table, which phase, how far (postgres_exporter's
``pg_stat_progress_vacuum_*``).

One row per running VACUUM (manual or autovacuum, so at most a handful: autovacuum_max_workers
plus manual ones), nothing when none runs. ``phase`` follows postgres_exporter: one series per
phase, 1 for the current one. PostgreSQL 17 measures the dead-tuple store in bytes
(``max_dead_tuple_bytes``, ``dead_tuple_bytes``); those values fill the two dead-tuple
families there, as in postgres_exporter.
"""

from __future__ import annotations

from prometheus_client.core import Metric

from stackwatch.core.postgres.source import PostgresSource

from ..collector import Collector, Tier
from ..families import gauge

__all__ = ["PHASES", "ProgressVacuumCollector", "progress_sql"]

PHASES = ("initializing", "scanning heap", "vacuuming indexes", "vacuuming heap", "cleaning up indexes",
          "truncating heap", "performing final cleanup")

#: column -> (family suffix, help)
_GAUGES = {
    "heap_blks_total": ("heap_blks", "Heap blocks of the table being vacuumed."),
    "heap_blks_scanned": ("heap_blks_scanned", "Heap blocks scanned so far."),
    "heap_blks_vacuumed": ("heap_blks_vacuumed", "Heap blocks vacuumed so far."),
    "index_vacuum_count": ("index_vacuums", "Index vacuum cycles completed."),
    "max_dead_tuples": ("max_dead_tuples", "Dead tuples that fit before an index cycle (17+: bytes)."),
    "num_dead_tuples": ("num_dead_tuples", "Dead tuples collected so far (17+: bytes)."),
}


def progress_sql(version: int) -> str:
    """The query for ``server_version_num`` ``version``; a table of another database is named by oid."""
    dead = ("max_dead_tuple_bytes AS max_dead_tuples, dead_tuple_bytes AS num_dead_tuples" if version >= 170000
            else "max_dead_tuples, num_dead_tuples")
    return f"""
SELECT coalesce(datname, 'unknown') AS datname,
       coalesce(CASE WHEN datname = current_database() THEN relid::regclass::text END, relid::text, 'unknown')
         AS relname,
       phase, heap_blks_total, heap_blks_scanned, heap_blks_vacuumed, index_vacuum_count, {dead}
FROM pg_stat_progress_vacuum ORDER BY 1, 2
"""


class ProgressVacuumCollector(Collector[PostgresSource]):
    name = "progress_vacuum"
    tier = Tier.FAST

    def collect(self, source: PostgresSource) -> list[Metric]:
        labels = ["datname", "relname"]
        phase = gauge("pg_stat_progress_vacuum_phase", "1 for the phase the VACUUM is in, 0 for the others.",
                      labels + ["phase"])
        families = {column: gauge(f"pg_stat_progress_vacuum_{suffix}", doc, labels)
                    for column, (suffix, doc) in _GAUGES.items()}
        for row in source.rows(progress_sql(source.version)):
            table = [row["datname"], row["relname"]]
            for name in PHASES:
                phase.add_metric(table + [name], 1.0 if row["phase"] == name else 0.0)
            for column, family in families.items():
                family.add_metric(table, float(row[column] or 0))
        return [phase, *families.values()]
