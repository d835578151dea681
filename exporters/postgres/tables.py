"""Per-table activity, size and maintenance across every database, bounded to the top N by size.

Tables are ranked by ``pg_total_relation_size`` (heap + indexes + TOAST: the disk a table
really costs, and a ranking that does not churn from poll to poll); the ``top_n`` largest of
the instance are exported one by one and the rest of each database is summed into one
``schemaname="pg_other", relname="other"`` row (a reserved schema name, so never a real table;
sizes added, ages the oldest, and counters that stay counters while tables move in and out of the
row: see :class:`OtherCounters`).

The missing-index suspect score (see :func:`suspect_score`) is computed for every table and
exported for the ``top_n`` highest non-zero scores, whatever their size rank.
"""

from __future__ import annotations

from prometheus_client.core import Metric

from stackwatch.core.postgres.relations import Row
from stackwatch.core.postgres.source import PostgresSource
from stackwatch.core.postgres.tables import ROW_COUNTERS, SQL, STATIO, suspect_score

from ..collector import Collector, Tier
from ..families import counter, gauge
from .relations import rollup, rows_per_database, split_top

__all__ = ["OtherCounters", "TablesCollector"]


_LABELS = ("datname", "schemaname", "relname")

# family, row field, builder, help text. The counters keep postgres_exporter's names (no _total),
# so they are untyped counters (see families.py).
_T = "pg_stat_user_tables_"
_FIELDS = (
    (_T + "seq_scan", "seq_scan", counter, "Sequential scans started on the table."),
    (_T + "seq_tup_read", "seq_tup_read", counter, "Live rows fetched by sequential scans."),
    (_T + "idx_scan", "idx_scan", counter, "Index scans started on the table."),
    (_T + "idx_tup_fetch", "idx_tup_fetch", counter, "Live rows fetched by index scans."),
    (_T + "n_tup_ins", "n_tup_ins", counter, "Rows inserted."),
    (_T + "n_tup_upd", "n_tup_upd", counter, "Rows updated (HOT updates included)."),
    (_T + "n_tup_del", "n_tup_del", counter, "Rows deleted."),
    (_T + "n_tup_hot_upd", "n_tup_hot_upd", counter, "Rows HOT-updated (no index update needed)."),
    (_T + "n_live_tup", "n_live_tup", gauge, "Estimated number of live rows."),
    (_T + "n_dead_tup", "n_dead_tup", gauge, "Estimated number of dead rows."),
    (_T + "n_mod_since_analyze", "n_mod_since_analyze", gauge, "Estimated rows changed since the last analyze."),
    (_T + "vacuum_count", "vacuum_count", counter, "Manual vacuums (VACUUM FULL not counted)."),
    (_T + "autovacuum_count", "autovacuum_count", counter, "Vacuums by autovacuum."),
    (_T + "analyze_count", "analyze_count", counter, "Manual analyzes."),
    (_T + "autoanalyze_count", "autoanalyze_count", counter, "Analyzes by autovacuum."),
    (_T + "last_vacuum", "last_vacuum", gauge, "Unix time of the last manual vacuum."),
    (_T + "last_autovacuum", "last_autovacuum", gauge, "Unix time of the last autovacuum."),
    (_T + "last_analyze", "last_analyze", gauge, "Unix time of the last manual analyze."),
    (_T + "last_autoanalyze", "last_autoanalyze", gauge, "Unix time of the last autoanalyze."),
    (_T + "size_bytes", "size_bytes", gauge, "pg_total_relation_size: heap, indexes and TOAST."),
    (_T + "table_size_bytes", "table_size_bytes", gauge, "pg_table_size: heap, TOAST and maps, no indexes."),
    (_T + "index_size_bytes", "index_size_bytes", gauge, "pg_indexes_size: every index of the table."),
    (_T + "last_vacuum_age_seconds", "vacuum_age", gauge,
     "Seconds since the last manual or auto vacuum (absent if never vacuumed)."),
    (_T + "last_analyze_age_seconds", "analyze_age", gauge,
     "Seconds since the last manual or auto analyze (absent if never analyzed)."),
    *((f"pg_statio_user_tables_{c.replace('_blks_', '_blocks_')}", c, counter,
       f"{c} of pg_statio_user_tables (absent without TOAST).") for c in STATIO),
)
#: the summed fields that are counters: the ``other`` row keeps them monotonic (:class:`OtherCounters`)
_COUNTERS = ("seq_scan", "seq_tup_read", "idx_scan", "idx_tup_fetch", *ROW_COUNTERS, *STATIO)
_SUMMED = (*_COUNTERS, "n_live_tup", "n_dead_tup", "n_mod_since_analyze", "size_bytes", "table_size_bytes",
           "index_size_bytes")
_OLDEST = ("vacuum_age", "analyze_age")


def _counters(row: Row) -> tuple[float, ...]:
    return tuple(float(row.get(f) or 0) for f in _COUNTERS)


class OtherCounters:
    """The counters of each database's ``other`` row, kept monotonic while tables move in and out.

    Summing the tables past the top N afresh on every poll would not be a counter: a table that
    grows into the top N takes its lifetime count out of ``other`` (a false reset for ``rate()``)
    and one that drops out of it brings its lifetime count in (a false spike). Instead a
    database's ``other`` row starts at the sum of its tables the first time it has one, and then
    grows by what the tables in it did since the previous poll: all of a table's count after a
    statistics reset, nothing for a table not seen at the previous poll (its first window is
    lost, which beats adding its whole history at once).
    """

    def __init__(self) -> None:
        self._previous: dict[tuple[str, str, str], tuple[float, ...]] = {}
        self._totals: dict[str, list[float]] = {}

    def update(self, rows: list[Row], rest: list[Row]) -> dict[str, list[float]]:
        """Fold in this poll (every table read, and those in the rollup); returns the counters
        (in :data:`_COUNTERS` order) of each database that has an ``other`` row."""
        members: dict[str, list[Row]] = {}
        for row in rest:
            members.setdefault(row["datname"], []).append(row)
        for datname, tables in members.items():
            totals = self._totals.get(datname)
            if totals is None:
                self._totals[datname] = [sum(column) for column in zip(*map(_counters, tables))]
                continue
            for row in tables:
                now, before = _counters(row), self._previous.get(_key(row))
                if before is None:
                    continue
                reset = any(n < b for n, b in zip(now, before))
                for i, (n, b) in enumerate(zip(now, before)):
                    totals[i] += n if reset else n - b
        self._previous = {_key(row): _counters(row) for row in rows}
        return {datname: self._totals[datname] for datname in members}


def _key(row: Row) -> tuple[str, str, str]:
    return row["datname"], row["schemaname"], row["relname"]


class TablesCollector(Collector[PostgresSource]):
    name = "tables"
    tier = Tier.SLOW

    def __init__(self) -> None:
        self.other = OtherCounters()

    def collect(self, source: PostgresSource) -> list[Metric]:
        read = rows_per_database(source, SQL)
        rows = read.rows
        for row in rows:
            row["size_bytes"] = row["table_size_bytes"] + row["index_size_bytes"]
        limit = source.options.top_n
        top, rest = split_top(rows, limit, key=lambda r: float(r["size_bytes"] or 0))
        others = rollup(rest, _SUMMED, _OLDEST)
        counters = self.other.update(rows, rest)
        for row in others:
            row.update(zip(_COUNTERS, counters[row["datname"]]))
        exported = top + others
        families: list[Metric] = []
        for name, field, build, doc in _FIELDS:
            family = build(name, doc, _LABELS)
            for row in exported:
                if row.get(field) is not None:  # the rollup rows have no timestamps
                    family.add_metric([row[k] for k in _LABELS], float(row[field]))
            families.append(family)
        suspects = gauge("pg_table_missing_index_suspect_score",
                         "Large table read mostly by sequential scans: >= 1 is a suspect, higher is worse.",
                         _LABELS)
        scored = [r for r in rows if suspect_score(r) > 0]
        for row in split_top(scored, limit, key=suspect_score)[0]:
            suspects.add_metric([row[k] for k in _LABELS], suspect_score(row))
        return families + [suspects, read.skipped_family(self, limit)]
