"""The generated dashboards, loaded once as JSON the way Grafana reads them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dashboards.generate import JSON_DIR


def _load_all() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted(JSON_DIR.glob("*.json"))}


BOARDS = _load_all()


@pytest.fixture(params=sorted(BOARDS), ids=str)
def board(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Each committed dashboard's JSON."""
    return BOARDS[request.param]
