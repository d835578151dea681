"""Per-route counts of a labelled counter family, read back from a /metrics text."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def route_counts(text: str, family: str, label: str) -> dict[tuple[str, str], float]:
    """``{(http_route, <label>): count}`` of ``family`` (its name without ``_total``) in ``text``."""
    return {(s.labels["http_route"], s.labels[label]): s.value
            for found in text_string_to_metric_families(text) if found.name == family
            for s in found.samples if s.name.endswith("_total")}
