"""PostgreSQL, Redis and process exporters behind ``stackwatch exporter``.

Layout: ``collector.py`` (the collector contract and tiers), ``target.py`` (schedule, snapshot,
self-metrics), ``server.py`` (HTTP), ``options.py``/``main.py`` (flags and environment), and one
package per kind of target (``postgres/``...) with one file per collector.
"""

__all__: list[str] = []
