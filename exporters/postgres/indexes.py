"""Indexes that cost writes, vacuum and cache for nothing: unused, invalid and duplicate ones.

* unused: valid, never scanned since the statistics reset, and not enforcing anything (not
  unique, not primary, not backing a constraint);
* invalid: ``indisvalid`` is false (a failed ``CREATE INDEX CONCURRENTLY`` leaves one behind;
  the planner ignores it but every write still maintains it);
* duplicate: a valid index with the same table, access method, columns or expressions,
  operator classes, collations, sort options and predicate as another; one of each group is
  kept (primary key, then constraint, then unique, then the oldest) and the others reported.

Counts are exported per database (every database, complete); the per-index size families are
bounded to the ``top_n`` largest of the instance each.
"""

from __future__ import annotations

from prometheus_client.core import Metric

from stackwatch.core.postgres.indexes import KINDS, SQL, classify
from stackwatch.core.postgres.source import PostgresSource

from ..collector import Collector, Tier
from ..families import gauge
from .relations import rows_per_database, split_top

__all__ = ["IndexesCollector"]

_LABELS = ("datname", "schemaname", "relname", "indexrelname")


class IndexesCollector(Collector[PostgresSource]):
    name = "indexes"
    tier = Tier.SLOW

    def collect(self, source: PostgresSource) -> list[Metric]:
        read = rows_per_database(source, SQL)
        found = classify(read.rows)
        families: list[Metric] = []
        for kind, meaning in KINDS.items():
            sizes = gauge(f"pg_index_{kind}_size_bytes", f"Size of {meaning} (the largest N of the instance).",
                          _LABELS)
            for row in split_top(found[kind], source.options.top_n, key=lambda r: float(r["size_bytes"]))[0]:
                sizes.add_metric([row[k] for k in _LABELS], float(row["size_bytes"]))
            counts = gauge(f"pg_indexes_{kind}", f"Number of {kind} indexes in the database.", ["datname"])
            per_db = {name: 0 for name in read.read}
            for row in found[kind]:
                per_db[row["datname"]] += 1
            for name, count in per_db.items():
                counts.add_metric([name], count)
            families += [sizes, counts]
        return families + [read.skipped_family(self, source.options.top_n)]
