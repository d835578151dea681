"""Multiprocess mode: two worker processes write to PROMETHEUS_MULTIPROC_DIR; /metrics aggregates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from stackwatch.instrumentation import mark_worker_dead

ROOT = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent(
    """
    import asyncio, json, os, sys, warnings
    import httpx
    from stackwatch.instrumentation import instrument
    from tests.instrumentation.apps import make_app

    app = make_app()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        instrument(app, health_checks={"always": lambda: True})
    count = int(sys.argv[1])

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for i in range(count):
                await client.get(f"/items/{i}")
            await client.get("/health")
            scrape = await client.get("/metrics", headers={"accept": "application/openmetrics-text"})
        return scrape.text

    text = asyncio.run(main())
    print(json.dumps({
        "pid": os.getpid(),
        "warned": any("exemplars are off" in str(w.message) for w in caught),
        "scrape": text,
    }))
    """
)


def run_worker(directory: Path, count: int) -> dict:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": str(ROOT)}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    done = subprocess.run([sys.executable, "-c", WORKER, str(count)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_workers_aggregate_and_child_exit_drops_live_gauges(tmp_path, monkeypatch):
    first = run_worker(tmp_path, 3)
    second = run_worker(tmp_path, 4)
    assert first["warned"] and second["warned"]
    line = 'http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/items/{item_id}"} 7.0'
    assert line in second["scrape"]  # the second worker's /metrics includes the first worker's requests
    assert "trace_id" not in second["scrape"]  # no exemplars in multiprocess mode

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path))
    assert registry.get_sample_value("http_server_active_requests", {"http_request_method": "GET"}) == 0
    assert registry.get_sample_value("health_check_status", {"check": "always"}) == 1

    live_files = lambda pid: [p.name for p in tmp_path.iterdir() if p.name.startswith("gauge_live") and p.name.endswith(f"_{pid}.db")]
    assert live_files(first["pid"])
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    mark_worker_dead(first["pid"])
    assert live_files(first["pid"]) == []
    assert live_files(second["pid"])
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path))
    assert registry.get_sample_value(
        "http_server_request_duration_seconds_count",
        {"http_request_method": "GET", "http_route": "/items/{item_id}", "http_response_status_code": "200"},
    ) == 7


SHARED_PORT = textwrap.dedent(
    """
    import asyncio, json, socket, warnings
    import httpx
    from stackwatch.instrumentation import instrument
    from tests.instrumentation.apps import make_app

    warnings.simplefilter("ignore")
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    # what every worker of `gunicorn -w 2` runs: the second finds the port taken by the first
    first, second = make_app(), make_app()
    served = [instrument(app, metrics_port=port, metrics_addr="127.0.0.1").metrics_server is not None
              for app in (first, second)]

    async def main():
        for app in (first, second):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
                assert (await client.get("/items/1")).status_code == 200

    asyncio.run(main())
    print(json.dumps({"served": served, "scrape": httpx.get(f"http://127.0.0.1:{port}/metrics").text}))
    """
)


def test_workers_share_one_metrics_port(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    done = subprocess.run([sys.executable, "-c", SHARED_PORT], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["served"] == [True, False]
    line = 'http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/items/{item_id}"} 2.0'
    assert line in result["scrape"]
