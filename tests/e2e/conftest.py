"""One stack for the whole end-to-end module (it takes ~15 s to start)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .stack import Stack

#: PostgreSQL with few connection slots, so that exhausting them is quick and bounded
MAX_CONNECTIONS = 32  # the two demo replicas hold up to 10 each (their pools)


@pytest.fixture(scope="module")
def stack(postgres_factory: Callable[..., Any], redis_factory: Callable[..., Any]) -> Iterator[Stack]:
    postgres = postgres_factory(max_connections=MAX_CONNECTIONS, log_min_duration_statement=250)
    # a bounded cache, as in docker-compose.yml, so memory-vs-maxmemory panels have a limit
    redis = redis_factory(maxmemory="64mb", maxmemory_policy="allkeys-lru")
    root = Path(tempfile.mkdtemp(prefix="stackwatch-e2e-"))
    built = Stack(postgres, redis, root)
    yield built
    built.close()
