"""Indexes that cost writes, vacuum and cache for nothing, read by the exporter's indexes
collector and by ``stackwatch check`` alike.

* unused: valid, never scanned since the statistics reset, and not enforcing anything (not
  unique, not primary, not backing a constraint);
* invalid: ``indisvalid`` is false (a failed ``CREATE INDEX CONCURRENTLY`` leaves one behind;
  the planner ignores it but every write still maintains it);
* duplicate: a valid index with the same table, access method, columns or expressions,
  operator classes, collations, sort options and predicate as another; one of each group is
  kept (primary key, then constraint, then unique, then the oldest) and the others reported.
"""

from __future__ import annotations

from collections import defaultdict

from stackwatch.core.postgres.relations import BLOCKED_TABLES, Row

__all__ = ["KINDS", "SQL", "classify"]

SQL = f"""
WITH {BLOCKED_TABLES}
SELECT current_database() AS datname, n.nspname AS schemaname, t.relname, ci.relname AS indexrelname,
       i.indexrelid::bigint AS indexrelid,
       coalesce(pg_relation_size(i.indexrelid), 0) AS size_bytes,  -- NULL if dropped meanwhile
       i.indisvalid, i.indisprimary, i.indisunique,
       i.indexrelid IN (SELECT conindid FROM pg_constraint) AS backs_constraint,
       coalesce(s.idx_scan, 0) AS idx_scan,
       concat_ws(' | ', i.indrelid, ci.relam, i.indkey, i.indclass, i.indcollation, i.indoption,
                 coalesce(pg_get_expr(i.indexprs, i.indrelid), ''),
                 coalesce(pg_get_expr(i.indpred, i.indrelid), '')) AS signature
FROM pg_index i
JOIN pg_class ci ON ci.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid
WHERE ci.relkind = 'i'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
  AND i.indrelid NOT IN (SELECT relid FROM blocked)
"""

#: kind -> how its size family describes one index
KINDS = {
    "unused": "a valid index never scanned since the statistics reset that enforces nothing",
    "invalid": "an invalid index (indisvalid false, e.g. left by a failed CREATE INDEX CONCURRENTLY)",
    "duplicate": "an index with the same definition as another index of its table",
}


def _enforces(row: Row) -> bool:
    return bool(row["indisprimary"] or row["indisunique"] or row["backs_constraint"])


def _keep_first(row: Row) -> tuple[bool, bool, bool, int]:
    return (not row["indisprimary"], not row["backs_constraint"], not row["indisunique"], row["indexrelid"])


def classify(rows: list[Row]) -> dict[str, list[Row]]:
    """The rows of each kind in :data:`KINDS` (an index can be both unused and a duplicate)."""
    found: dict[str, list[Row]] = {kind: [] for kind in KINDS}
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in rows:
        if not row["indisvalid"]:
            found["invalid"].append(row)
            continue
        if row["idx_scan"] == 0 and not _enforces(row):
            found["unused"].append(row)
        groups[(row["datname"], row["signature"])].append(row)
    for group in groups.values():
        found["duplicate"].extend(sorted(group, key=_keep_first)[1:])
    return found

