"""docs/metrics.md lists every family the Redis collectors emit (on a real primary with every
collector running, and on the canned replica / errorstats layouts)."""

from __future__ import annotations

import re
from pathlib import Path

from stackwatch.exporters.redis import COLLECTORS
from stackwatch.exporters.redis.replication import ReplicationCollector

from .collect import canned_source, poll, real_source

DOC = Path(__file__).resolve().parents[3] / "docs" / "metrics.md"


def _redis_section() -> str:
    text = DOC.read_text()
    return text[text.index("## Redis"):text.index("## Processes")]


def test_every_family_is_documented(redis_server) -> None:
    redis_server.client().set("doc:1", 1)
    names: set[str] = set()
    with real_source(redis_server.url) as source:
        for cls in COLLECTORS:
            names |= {s.name for f in poll(source, cls()) for s in f.samples}
    names |= {s.name for f in ReplicationCollector().collect(canned_source("redis7")) for s in f.samples}
    documented = set(re.findall(r"`(redis_[a-z_]+)`", _redis_section()))
    assert names - documented == set()
