"""Reading PostgreSQL: connections, the source collectors and the check query through, and the
queries whose measurement both the exporter and ``stackwatch check`` make."""
