"""The demo service on real PostgreSQL and Redis, served by uvicorn and driven by the load generator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from demo.app import create_app
from demo.loadgen import ASSET
from demo.loadgen import main as loadgen_main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo_env(postgres, redis_server) -> dict[str, str]:
    postgres.create_database("demo")
    return {
        "DATABASE_URL": postgres.dsn("demo"),
        "REDIS_URL": f"redis://{redis_server.host}:{redis_server.port}/3",
        "DEMO_CACHE_TTL": "60",
    }


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(all_samples, name: str, **labels: str) -> float:
    return all_samples.get((name, frozenset(labels.items())), 0.0)


def test_endpoints_produce_every_signal(serve, demo_env):
    app = create_app(demo_env)
    with serve(app) as base, httpx.Client(base_url=base, timeout=20) as client:
        before = samples(client.get("/metrics").text)
        assert len(client.get("/books?limit=5").json()) == 5
        large = client.get("/books?limit=40", headers={"Accept-Encoding": "gzip"})
        assert large.headers["content-encoding"] == "gzip" and len(large.json()) == 40
        assert client.get("/authors/3").json() == {"id": 3, "name": "Author 3"}
        assert client.get("/authors/3").json()["id"] == 3
        assert client.put("/authors/4", params={"name": "Renamed"}).json()["name"] == "Renamed"
        assert client.get("/authors/4").json()["name"] == "Renamed"
        assert len(client.get("/authors/2/books").json()) == 8
        assert client.get("/reports/slow").json()["books"] == 400
        assert client.get("/nope").status_code == 404
        asset = client.get(ASSET)
        health = client.get("/health")
        after = samples(client.get("/metrics").text)
    assert health.status_code == 200
    assert asset.status_code == 200 and asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    classes = {(route, kind) for route in ("/books", "/reports/slow", "/static")
               for kind in ("public", "no-store", "public-immutable")
               if value(after, "http_server_responses_cache_control_total", http_route=route, cache_control=kind)}
    assert classes == {("/books", "public"), ("/reports/slow", "no-store"), ("/static", "public-immutable")}
    assert set(health.json()["checks"]) == {"database", "redis"}
    # the 40 books (~2 KiB) went out gzipped, the 5 (< 1 KiB) are not worth counting
    assert value(after, "http_server_responses_content_encoding_total", http_route="/books", content_encoding="gzip") == 1
    assert value(after, "http_server_responses_content_encoding_total", http_route="/books",
                 content_encoding="identity") == 0
    assert value(after, "http_server_requests_cdn_total", http_route="/static", cdn="none") == 1
    route = "/authors/{author_id}/books"
    assert value(after, "db_client_n_plus_one_total", http_route=route) - value(before, "db_client_n_plus_one_total", http_route=route) == 1
    hits = value(after, "cache_requests_total", cache="authors", result="hit") - value(before, "cache_requests_total", cache="authors", result="hit")
    misses = value(after, "cache_requests_total", cache="authors", result="miss") - value(before, "cache_requests_total", cache="authors", result="miss")
    assert (hits, misses) == (2, 1)
    assert value(after, "db_client_connection_max", pool_name="demo") == 10
    assert value(after, "health_check_status", check="database") == 1
    slow = value(after, "http_server_request_duration_seconds_sum", http_request_method="GET",
                 http_route="/reports/slow", http_response_status_code="200")
    assert slow >= 0.3
    assert value(after, "http_server_request_duration_seconds_count", http_request_method="GET",
                 http_route="UNMATCHED", http_response_status_code="404") >= 1


def test_load_generator_drives_the_demo(serve, demo_env, capsys):
    app = create_app(demo_env)
    with serve(app) as base:
        assert loadgen_main(["--target", base, "--rate", "40", "--duration", "3", "--seed", "7"]) == 0
        text = httpx.get(f"{base}/metrics", timeout=10).text
    out = capsys.readouterr().out
    assert out.startswith("sent ")
    sent = int(out.split()[1])
    assert 40 <= sent <= 125  # 120 scheduled; fewer only if the machine is very busy (seed 7: /error is #19)
    assert "200=" in out and "500=" in out and "404=" in out
    all_samples = samples(text)
    errors = value(all_samples, "http_server_request_duration_seconds_count", http_request_method="GET",
                   http_route="/error", http_response_status_code="500")
    assert errors >= 1
    assert value(all_samples, "db_client_n_plus_one_total", http_route="/authors/{author_id}/books") >= 1


def test_load_generator_rejects_bad_arguments():
    done = subprocess.run([sys.executable, "-m", "demo.loadgen", "--rate", "0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "--rate: expected a positive number, got 0.0" in done.stderr


def test_uvicorn_imports_the_app_from_the_environment(demo_env, serve):
    done = subprocess.run(
        [sys.executable, "-c", "import demo.app as m; import sys; print(type(m.app).__name__)"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False, env={"PATH": "/usr/bin:/bin", **demo_env},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "FastAPI"


def test_reports_are_enqueued_and_built_by_the_instrumented_worker(serve, demo_env):
    """POST /reports answers 202 at once; `python -m demo.worker --burst` builds the report."""
    import redis
    from rq.job import Job

    app = create_app(demo_env)
    with serve(app) as base, httpx.Client(base_url=base, timeout=20) as client:
        accepted = client.post("/reports", params={"author_id": 5})
    assert accepted.status_code == 202 and accepted.json()["queue"] == "reports"
    connection = redis.Redis.from_url(demo_env["REDIS_URL"])
    assert accepted.json()["job"].encode() in connection.lrange("rq:queue:reports", 0, -1)  # waiting, not built
    subprocess.run([sys.executable, "-m", "demo.worker", "--burst", "--url", demo_env["REDIS_URL"],
                    "--metrics-addr", "127.0.0.1", "--metrics-port", "0"],
                   check=True, timeout=120, env={**demo_env, "PATH": "/usr/bin:/bin"}, capture_output=True,
                   cwd=Path(__file__).resolve().parents[2])
    job = Job.fetch(accepted.json()["job"], connection=connection)
    assert job.get_status() == "finished" and job.return_value() == {"author_id": 5, "books": 8}
