"""Plumbing shared by the exporter, ``stackwatch check`` and the instrumentation.

Redaction, option parsing, the readings of PostgreSQL and Redis that both the exporter and the
check make (one query per measurement), and the helpers of the generators. Nothing here imports
from :mod:`stackwatch.exporters`, :mod:`stackwatch.check` or :mod:`stackwatch.instrumentation`:
dependencies point from them to this package, never back.
"""
