"""What the readings of tables and indexes share: their row type, and the tables not to touch.

:data:`BLOCKED_TABLES` is a CTE naming the tables a query must not touch because an
``AccessExclusiveLock`` is granted or requested on the table or one of its indexes: size
functions take ``AccessShareLock`` and would queue behind that DDL (and make everything behind
them wait too). It costs nothing when no such lock exists (index lookups from the few locked
relations, never a scan of the catalogs). ``lock_timeout`` stays the backstop for a lock taken
between reading ``pg_locks`` and calling the size function.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BLOCKED_TABLES", "Row"]

Row = dict[str, Any]

BLOCKED_TABLES = """
locked AS (
    SELECT l.relation FROM pg_locks l
    WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
),
blocked AS (
    SELECT relation AS relid FROM locked
    UNION
    SELECT i.indrelid FROM locked JOIN pg_index i ON i.indexrelid = locked.relation
)"""
