"""Where pg_stat_statements lives in this database and which columns its version has (both the
exporter's statements collector and ``stackwatch check`` read it before the view)."""

from __future__ import annotations

__all__ = ["EXTENSION_SQL"]

EXTENSION_SQL = """
SELECT n.nspname AS schema,
       array(SELECT a.attname::text FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
             WHERE c.relname = 'pg_stat_statements' AND c.relnamespace = n.oid AND a.attnum > 0) AS columns
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_stat_statements'
"""
