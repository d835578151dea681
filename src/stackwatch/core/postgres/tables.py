"""Per-table activity, size and maintenance of one database, read by the exporter's tables
collector and by ``stackwatch check`` alike, and the missing-index suspect score of a table.
"""

from __future__ import annotations

import math

from stackwatch import thresholds
from stackwatch.core.postgres.relations import BLOCKED_TABLES, Row

__all__ = ["MIN_SEQ_SCANS", "ROW_COUNTERS", "SQL", "STATIO", "TIMESTAMPS", "suspect_score"]

#: pg_statio_user_tables columns, exported as postgres_exporter's ``pg_statio_user_tables_*_blocks_*``
STATIO = ("heap_blks_read", "heap_blks_hit", "idx_blks_read", "idx_blks_hit", "toast_blks_read", "toast_blks_hit",
          "tidx_blks_read", "tidx_blks_hit")
#: counters of pg_stat_user_tables beyond the scans
ROW_COUNTERS = ("n_tup_ins", "n_tup_upd", "n_tup_del", "n_tup_hot_upd", "vacuum_count", "autovacuum_count",
                "analyze_count", "autoanalyze_count")
#: maintenance timestamps, exported as Unix time (absent when NULL, and for the rollup rows)
TIMESTAMPS = ("last_vacuum", "last_autovacuum", "last_analyze", "last_autoanalyze")

# pg_total_relation_size is pg_table_size (heap, TOAST, maps) + pg_indexes_size: both halves are
# read, so the table and index sizes cost no extra size-function call
SQL = f"""
WITH {BLOCKED_TABLES}
SELECT current_database() AS datname, s.schemaname, s.relname,
       s.seq_scan, s.seq_tup_read,
       coalesce(s.idx_scan, 0) AS idx_scan, coalesce(s.idx_tup_fetch, 0) AS idx_tup_fetch,
       s.n_live_tup, s.n_dead_tup, s.n_mod_since_analyze, {", ".join(f"s.{c}" for c in ROW_COUNTERS)},
       {", ".join(f"extract(epoch FROM s.{c})::float8 AS {c}" for c in TIMESTAMPS)},
       coalesce(pg_table_size(s.relid), 0) AS table_size_bytes,  -- NULL if dropped meanwhile
       coalesce(pg_indexes_size(s.relid), 0) AS index_size_bytes,
       extract(epoch FROM now() - greatest(s.last_vacuum, s.last_autovacuum))::float8 AS vacuum_age,
       extract(epoch FROM now() - greatest(s.last_analyze, s.last_autoanalyze))::float8 AS analyze_age,
       {", ".join(f"io.{c}" for c in STATIO)}
FROM pg_stat_user_tables s LEFT JOIN pg_statio_user_tables io ON io.relid = s.relid
WHERE s.relid NOT IN (SELECT relid FROM blocked)
"""

#: fewer sequential scans than this since the statistics reset is no access pattern (a dump, a one-off).
MIN_SEQ_SCANS = 10


def suspect_score(row: Row) -> float:
    """How much a table looks like it lacks an index: >= 1 is a suspect, higher is worse.

    ``seq share x size weight``, where the seq share is the fraction of the rows read from the
    table that sequential scans read (``seq_tup_read / (seq_tup_read + idx_tup_fetch)``, 0..1) and
    the size weight is ``1 + log10(n_live_tup / 1000)`` (1 at 1,000 rows, 2 at 10,000, 4 at a
    million). A table read only sequentially scores 1 at 1,000 rows, a million-row table scores 1
    once a quarter of its rows come from sequential scans. Tables under the checklist's 1,000 rows,
    or with fewer than :data:`MIN_SEQ_SCANS` sequential scans, score 0.
    """
    live = float(row["n_live_tup"] or 0)
    seq_rows = float(row["seq_tup_read"] or 0)
    min_rows = thresholds.POSTGRES.missing_index_min_live_rows
    if live < min_rows or (row["seq_scan"] or 0) < MIN_SEQ_SCANS or seq_rows <= 0:
        return 0.0
    share = seq_rows / (seq_rows + float(row["idx_tup_fetch"] or 0))
    return share * (1.0 + math.log10(live / min_rows))
