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


def test_workers_aggregate_and_dead_workers_lose_their_live_gauges(tmp_path, monkeypatch):
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

    def live_files(pid: int) -> list[str]:
        return [p.name for p in tmp_path.iterdir() if p.name.startswith("gauge_live") and p.name.endswith(f"_{pid}.db")]
    assert live_files(first["pid"]) == []  # the second worker's scrape dropped the exited first worker's
    assert live_files(second["pid"])
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    mark_worker_dead(second["pid"])
    assert live_files(second["pid"]) == []
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


UVICORN_APP = textwrap.dedent(
    """
    import asyncio, os
    from pathlib import Path
    from fastapi import FastAPI
    from stackwatch.instrumentation import instrument

    app = FastAPI()

    @app.get("/hang")
    async def hang() -> None:
        with (Path(os.environ["HANG_DIR"]) / str(os.getpid())).open("a") as seen:
            seen.write("x")  # which worker holds which request
        await asyncio.sleep(120)

    instrument(app, traces=False, exemplars=False)
    """
)


def _active(base_url: str) -> float:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    return sum(s.value for f in text_string_to_metric_families(text) if f.name == "http_server_active_requests"
               for s in f.samples)


async def test_a_killed_uvicorn_worker_leaves_no_gauges_behind(tmp_path):
    import asyncio
    import signal

    import httpx
    import psutil

    from tests.fixtures.procs import free_port, stop_process, wait_until

    data = tmp_path / "multiproc"
    data.mkdir()
    (tmp_path / "hang_app.py").write_text(UVICORN_APP)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    held = tmp_path / "held"
    held.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(data), "PYTHONPATH": str(ROOT), "HANG_DIR": str(held)}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "hang_app:app", "--app-dir", str(tmp_path), "--workers", "2",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    supervisor = psutil.Process(server.pid)

    def workers() -> list[int]:  # the supervisor's other child is multiprocessing's resource tracker
        return [c.pid for c in supervisor.children() if "spawn_main" in " ".join(c.cmdline())]

    try:
        wait_until(lambda: len(workers()) == 2 and httpx.get(f"{base_url}/health").status_code == 200,
                   60, "uvicorn with 2 workers")
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(base_url=base_url, timeout=180, limits=limits) as client:
            hanging = [asyncio.create_task(client.get("/hang")) for _ in range(6)]
            for _ in range(400):
                if await asyncio.to_thread(_active, base_url) == 6:
                    break
                await asyncio.sleep(0.05)
            assert await asyncio.to_thread(_active, base_url) == 6
            holding = {int(f.name): len(f.read_text()) for f in held.iterdir()}
            assert sum(holding.values()) == 6
            victim = max(holding, key=holding.get)
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: not psutil.pid_exists(victim) or psutil.Process(victim).status() == psutil.STATUS_ZOMBIE,
                       30, "the killed worker to be gone")
            # The killed worker's in-flight requests no longer count (before: stuck at 6).
            assert await asyncio.to_thread(_active, base_url) == 6 - holding[victim]
            assert not list(data.glob(f"gauge_livesum_{victim}.db"))
            for task in hanging:
                task.cancel()
            await asyncio.gather(*hanging, return_exceptions=True)
    finally:
        stop_process(server)
