"""INFO fields declared as data: which field becomes which family, in which unit.

Most Redis families are one INFO field each, renamed to redis_exporter's name and scaled to
base units; declaring them as rows keeps each collector a readable table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client.core import Metric

from stackwatch.core.redis.info import Info

from ..families import counter, gauge

__all__ = ["Field", "families_from", "single"]


@dataclass(frozen=True)
class Field:
    """One INFO field exported as one unlabelled family.

    ``status`` fields read ``ok`` as 1 and anything else as 0 (``rdb_last_bgsave_status``).
    """

    key: str
    name: str
    help: str
    counter: bool = False
    scale: float = 1.0
    status: bool = False


def single(name: str, help: str, value: float, is_counter: bool = False) -> Metric:
    """An unlabelled family holding one value."""
    family = counter(name, help) if is_counter else gauge(name, help)
    family.add_metric([], value)
    return family


def families_from(info: Info, fields: Sequence[Field]) -> list[Metric]:
    """Families for the fields this server reports; absent or non-numeric fields are skipped."""
    out: list[Metric] = []
    for f in fields:
        if f.status:
            text = info.text(f.key)
            value = None if text is None else float(text == "ok")
        else:
            value = info.number(f.key)
        if value is not None:
            out.append(single(f.name, f.help, value * f.scale, f.counter))
    return out
