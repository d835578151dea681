"""Keep the cluster label through every aggregation and vector match of a rule expression.

Several Prometheus servers (one per Kubernetes cluster, an HA pair, ...) that remote-write into
one store carry a cluster label (the mixins' ``clusterLabel``, ``SELECTORS.cluster_label``). A
rule evaluated centrally must never merge two clusters' series that share a job or instance name,
so every ``by (...)`` and ``on (...)`` the catalog writes gets the label, and an aggregation with
no grouping at all becomes ``by (<cluster>)``. The catalog is written as for one cluster and the
rule files get the label at render time, so a new rule cannot forget it. Series without the label
aggregate exactly as before: grouping by a label none of them has changes nothing.

Empty ``on ()`` is left alone: it means "whatever the labels" on purpose (``or on () vector(0)``),
and ``without (...)``/``ignoring (...)`` keep the label already.
"""

from __future__ import annotations

import re

__all__ = ["AGGREGATIONS", "keep_label"]

#: PromQL aggregation operators (those that take a ``by``/``without`` clause)
AGGREGATIONS = ("sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                "bottomk", "topk", "quantile", "limitk", "limit_ratio")

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(by|on)(\s*)\(([^()]*)\)")
_AGGREGATION = re.compile(r"\b(" + "|".join(AGGREGATIONS) + r")\s*\(")
_MODIFIER_AFTER = re.compile(r"\s*(by|without)\s*\(")


def _masked(expr: str) -> str:
    """``expr`` with every string literal's content blanked, so that the patterns below only ever
    see code (a regex matcher may well contain ``by (``)."""
    return _STRING.sub(lambda m: m.group(0)[0] + " " * (len(m.group(0)) - 2) + m.group(0)[-1], expr)


def _closing(code: str, opening: int) -> int:
    """Index of the parenthesis closing the one at ``opening`` (``code`` has strings masked)."""
    depth = 0
    for index in range(opening, len(code)):
        depth += {"(": 1, ")": -1}.get(code[index], 0)
        if depth == 0:
            return index
    raise ValueError(f"unbalanced parentheses in {code!r}")


def keep_label(expr: str, label: str) -> str:
    """``expr`` with ``label`` in every grouping (see the module docstring)."""
    edits: list[tuple[int, int, str]] = []
    code = _masked(expr)
    for match in _GROUPING.finditer(code):
        names = [name.strip() for name in match.group(3).split(",") if name.strip()]
        if label in names or (match.group(1) == "on" and not names):
            continue
        edits.append((match.start(3), match.end(3), ", ".join([label, *names])))
    for match in _AGGREGATION.finditer(code):
        if _MODIFIER_AFTER.match(code, _closing(code, match.end() - 1) + 1):
            continue  # `sum (x) by (job)`: the clause after is handled above
        edits.append((match.end(1), match.end(1), f" by ({label})"))
    for start, end, text in sorted(edits, reverse=True):
        expr = expr[:start] + text + expr[end:]
    return expr
