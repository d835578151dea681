"""Per-request overhead of stackwatch.instrumentation vs the tools it replaces, in one run.

1. In process: each variant's ASGI app is called directly (no server, no sockets) with the same
   request; rounds are interleaved across variants and the median process CPU µs/request is
   kept (CPU time, span-export thread and event-loop watchdog included, so other load on the
   machine does not count), with the quietest round (minimum) beside it: on a shared machine
   the median still carries the others' cache pressure. Overhead = variant - bare. Targets:
   stackwatch full <= 35 µs and <= 1/5 of OTel + instrumentator; stackwatch metrics-only <=
   prometheus-fastapi-instrumentator. The endpoint runs no statements; the bookkeeping per
   database statement is measured on its own. The breakdown variants (in process only) split
   stackwatch full into what the OpenTelemetry SDK's span costs at the least (start, make
   current, end), stackwatch's span work, its metrics and the event-loop signals; the
   event-loop heartbeat and watchdog's own cost on an idle loop is measured too.
2. Through uvicorn (one worker per variant; all started, loaded one at a time, variants
   interleaved over several passes) under ``wrk -t1 -c16``: median requests per second and the
   ratio to the bare app, and the server process's CPU µs per request, whose ratio (bare /
   variant) is the throughput ratio with a core to itself: the figure that holds on a shared
   machine. Targets on it: stackwatch full >= 0.85 of bare, metrics only >= 0.95.

Run from the repository root:  python bench/instrumentation/run.py [--rounds N] [--requests N]
[--wrk-seconds S] [--passes N] [--skip-rps].  Needs wrk for part 2 (apt-get install wrk). Prints a table
and the figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from variants import BREAKDOWN, VARIANTS, build

from tests.fixtures.procs import free_port, wait_until

SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/items/42",
    "raw_path": b"/items/42",
    "root_path": "",
    "query_string": b"",
    "headers": [(b"host", b"bench"), (b"user-agent", b"bench"), (b"accept", b"*/*")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
    "state": {},
}


async def _receive() -> dict:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: dict) -> None:
    if message["type"] == "http.response.start" and message["status"] != 200:
        raise RuntimeError(f"benchmark request failed with {message['status']}")


async def _batch(app, requests: int) -> float:
    """CPU µs per request of the whole process (the span-export thread included).

    CPU time rather than wall time: on a shared machine, waiting for a core is not the
    instrumentation's cost.
    """
    started = time.process_time()
    for _ in range(requests):
        await app(dict(SCOPE), _receive, _send)
    return (time.process_time() - started) / requests * 1e6


async def in_process(rounds: int, requests: int, variants: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    """``(median, minimum)`` µs/request of each variant over interleaved rounds."""
    apps = {v: build(v) for v in variants}
    for app in apps.values():
        await _batch(app, 500)  # warm up: middleware stacks built, label children created
    samples: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(rounds):
        for variant, app in apps.items():
            samples[variant].append(await _batch(app, requests))
    return {v: (statistics.median(s), min(s)) for v, s in samples.items()}


def event_loop_idle_cost(seconds: float = 3.0) -> float:
    """CPU µs per second that the event-loop heartbeat and watchdog add to an idle loop."""
    from prometheus_client import CollectorRegistry

    from stackwatch.instrumentation.event_loop import LoopWatch
    from stackwatch.instrumentation.metrics import Metrics
    from stackwatch.instrumentation.routes import RouteTemplates

    async def idle(watched: bool) -> float:
        if watched:  # served one request, then idle
            watch = LoopWatch(Metrics(CollectorRegistry()), RouteTemplates(), 0.1)
            watch.leave(watch.enter({}, None, ""))
        started = time.process_time()
        await asyncio.sleep(seconds)
        return time.process_time() - started

    bare, watched = asyncio.run(idle(False)), asyncio.run(idle(True))
    return max(watched - bare, 0.0) / seconds * 1e6


def _wrk(port: int, seconds: int, server: psutil.Process | None = None) -> tuple[float, float]:
    """Requests/second under wrk, and the server's CPU µs per request (0 without ``server``)."""
    before = sum(server.cpu_times()[:2]) if server else 0.0
    out = subprocess.run(
        ["wrk", "-t1", "-c16", f"-d{seconds}s", f"http://127.0.0.1:{port}/items/42"],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout
    cpu = sum(server.cpu_times()[:2]) - before if server else 0.0
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw failed requests:\n{out}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), cpu / requests * 1e6


def per_statement(statements: int = 20000) -> float:
    """µs of bookkeeping per recorded statement (histogram + fingerprint + N+1 count) inside a request."""
    from prometheus_client import CollectorRegistry

    from stackwatch.instrumentation.metrics import Metrics
    from stackwatch.instrumentation.queries import (
        NPlusOnePolicy,
        RequestQueries,
        record_query,
        request_queries,
    )

    metrics = Metrics(CollectorRegistry())
    best = float("inf")
    for _ in range(5):
        token = request_queries.set(RequestQueries(NPlusOnePolicy(threshold=10**9)))
        started = time.perf_counter()
        for _ in range(statements):
            record_query(metrics, "postgresql", "SELECT name FROM authors WHERE id = %s", 0.0001)
        best = min(best, (time.perf_counter() - started) / statements * 1e6)
        request_queries.reset(token)
    return best


def _up(port: int) -> bool:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/items/1", timeout=1).status == 200
    except OSError:
        return False


def through_uvicorn(seconds: int, passes: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median requests/second and server CPU µs/request of each variant under wrk.

    All servers up, variants interleaved per pass. On a shared machine requests/second moves with
    the others' load; the server's own CPU time per request does much less, and bare CPU time /
    variant CPU time is the throughput ratio the server reaches when it has a core to itself.
    """
    import psutil

    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk (or pass --skip-rps)")
    ports = {v: free_port() for v in VARIANTS}
    servers = {v: subprocess.Popen([sys.executable, str(HERE / "serve.py"), v, str(ports[v])], cwd=ROOT)
               for v in VARIANTS}
    try:
        for variant, port in ports.items():
            wait_until(lambda port=port: _up(port), 60, f"uvicorn serving {variant}")
            _wrk(port, 1)  # warm-up
        rps: dict[str, list[float]] = {v: [] for v in VARIANTS}
        cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for _ in range(passes):
            for variant, port in ports.items():
                rate, per_request = _wrk(port, seconds, psutil.Process(servers[variant].pid))
                rps[variant].append(rate)
                cpu[variant].append(per_request)
        return ({v: statistics.median(s) for v, s in rps.items()}, {v: statistics.median(s) for v, s in cpu.items()})
    finally:
        for server in servers.values():
            server.terminate()
        for server in servers.values():
            server.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description="stackwatch.instrumentation overhead benchmark")
    parser.add_argument("--rounds", type=int, default=40, help="interleaved rounds (median kept)")
    parser.add_argument("--requests", type=int, default=250, help="requests per variant per round")
    parser.add_argument("--wrk-seconds", type=int, default=5, help="seconds of wrk per variant per pass")
    parser.add_argument("--passes", type=int, default=3, help="wrk passes over all variants (median kept)")
    parser.add_argument("--skip-rps", action="store_true")
    args = parser.parse_args()

    measured = asyncio.run(in_process(args.rounds, args.requests, (*VARIANTS, *BREAKDOWN)))
    per_request = {v: m for v, (m, _) in measured.items()}
    quietest = {v: q for v, (_, q) in measured.items()}
    overhead = {v: per_request[v] - per_request["bare"] for v in measured}
    overhead_quiet = {v: quietest[v] - quietest["bare"] for v in measured}
    peer = overhead["otel_fastapi_plus_instrumentator"]
    print(f"{'variant':36} {'µs/req':>8} {'overhead µs':>12} {'vs OTel+instr.':>15} {'quietest round':>15}")
    for v in measured:
        print(f"{v:36} {per_request[v]:8.1f} {overhead[v]:12.1f} {overhead[v] / peer:15.2f} {overhead_quiet[v]:15.1f}")
    full = overhead["stackwatch_full"]
    breakdown = {
        "otel_sdk_span_start_current_end": overhead["otel_sdk_span_only"],
        "stackwatch_span_work": overhead["stackwatch_traces_only"] - overhead["otel_sdk_span_only"],
        "stackwatch_metrics": overhead["stackwatch_metrics_only"],
        "event_loop_signals": full - overhead["stackwatch_full_no_event_loop"],
    }
    report = {
        "in_process_us_per_request": {v: round(x, 2) for v, x in per_request.items()},
        "overhead_us": {v: round(x, 2) for v, x in overhead.items()},
        "quietest_round_overhead_us": {v: round(x, 2) for v, x in overhead_quiet.items()},
        "full_breakdown_us": {k: round(x, 2) for k, x in breakdown.items()},
        "full_over_otel_plus_instrumentator": round(full / peer, 3),
        "metrics_only_over_instrumentator": round(
            overhead["stackwatch_metrics_only"] / overhead["prometheus_fastapi_instrumentator"], 3
        ),
        "targets": {
            "full_at_most_35us": full <= 35,
            "full_at_most_fifth_of_otel_plus_instrumentator": full <= peer / 5,
            "metrics_only_at_most_instrumentator": overhead["stackwatch_metrics_only"]
            <= overhead["prometheus_fastapi_instrumentator"],
        },
    }
    print("\nstackwatch full, what costs what (µs/request, by difference of medians):")
    for k, x in breakdown.items():
        print(f"  {k:36} {x:8.1f}")
    report["event_loop_idle_cpu_us_per_second"] = round(event_loop_idle_cost(), 1)
    print(f"event-loop heartbeat + watchdog on an idle loop: {report['event_loop_idle_cpu_us_per_second']} µs CPU/s")
    report["stackwatch_per_statement_us"] = round(per_statement(), 2)
    print(f"\nstackwatch bookkeeping per database statement: {report['stackwatch_per_statement_us']} µs")
    if not args.skip_rps:
        rps, cpu = through_uvicorn(args.wrk_seconds, args.passes)
        cpu_ratio = {v: cpu["bare"] / x for v, x in cpu.items()}
        report["uvicorn_requests_per_second"] = {v: round(x) for v, x in rps.items()}
        report["uvicorn_rps_ratio_to_bare"] = {v: round(x / rps["bare"], 3) for v, x in rps.items()}
        report["uvicorn_server_cpu_us_per_request"] = {v: round(x, 1) for v, x in cpu.items()}
        report["uvicorn_cpu_throughput_ratio_to_bare"] = {v: round(x, 3) for v, x in cpu_ratio.items()}
        report["targets"]["full_at_least_0.85_of_bare"] = cpu_ratio["stackwatch_full"] >= 0.85
        report["targets"]["metrics_only_at_least_0.95_of_bare"] = cpu_ratio["stackwatch_metrics_only"] >= 0.95
        print(f"\n{'variant':36} {'req/s':>8} {'ratio':>6} {'server CPU µs/req':>18} {'CPU ratio':>10}")
        for v in VARIANTS:
            print(f"{v:36} {rps[v]:8.0f} {rps[v] / rps['bare']:6.3f} {cpu[v]:18.1f} {cpu_ratio[v]:10.3f}")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
