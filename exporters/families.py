"""Small builders for metric families, so collectors read as data rather than boilerplate.

Collectors build fresh families on every poll (the client_python custom-collector convention).
Counters whose community name has no ``_total`` suffix (postgres_exporter's
``pg_stat_database_blks_hit`` and friends) are exposed as ``unknown``: OpenMetrics requires
counter samples to end in ``_total``, and renaming them would break existing dashboards.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric

__all__ = ["gauge", "counter", "untyped", "info", "relabel"]


def gauge(name: str, documentation: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    """A gauge family with the given label names."""
    return GaugeMetricFamily(name, documentation, labels=list(labels))


def counter(name: str, documentation: str, labels: Sequence[str] = ()) -> CounterMetricFamily | _Untyped:
    """A counter family; names without ``_total`` keep their exact name as ``unknown`` type."""
    if name.endswith("_total"):
        return CounterMetricFamily(name, documentation, labels=list(labels))
    return _Untyped(name, documentation + " (counter)", labels)


def untyped(name: str, documentation: str, labels: Sequence[str] = ()) -> _Untyped:
    """An ``unknown`` (untyped) family, for community names the peer exports untyped."""
    return _Untyped(name, documentation, labels)


def info(name: str, documentation: str, labels: Sequence[str] = ()) -> InfoMetricFamily:
    """An info family (``<name>_info`` with value 1)."""
    return InfoMetricFamily(name, documentation, labels=list(labels))


class _Untyped(Metric):
    """An ``unknown`` family with the ``add_metric`` interface of the typed families."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        super().__init__(name, documentation, "unknown")
        self._labelnames = tuple(labels)

    def add_metric(self, labels: Sequence[str], value: float) -> None:
        self.add_sample(self.name, dict(zip(self._labelnames, labels)), value)


def relabel(families: Iterable[Metric], extra: dict[str, str]) -> list[Metric]:
    """Copies of ``families`` with ``extra`` labels added to every sample."""
    out = []
    for family in families:
        copy = Metric(family.name, family.documentation, family.type, family.unit)
        for s in family.samples:
            copy.add_sample(s.name, {**extra, **s.labels}, s.value, s.timestamp, s.exemplar)
        out.append(copy)
    return out
