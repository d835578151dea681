"""Side-by-side benchmark: stackwatch's Redis exporter vs Debian's prometheus-redis-exporter.

One run, one redis-server holding ``--keys`` keys (default 100,000, in prefixes with and
without TTLs), both exporters pointed at it:

0. what one scrape of the peer costs Redis (commandstats deltas over 50 scrapes of the peer alone);
1. scrape latency of ``/metrics``, interleaved, first with a new HTTP connection per scrape,
   then on one kept-alive connection per exporter (Prometheus's default): p50/p90/p99 and the
   p50 ratio stackwatch / peer;
2. resident memory (VmRSS) of both exporter processes after the scrapes;
3. the TTL sampler's cost on Redis: with the peer stopped and nothing else talking to Redis,
   the INFO commandstats deltas of SCAN, PTTL and DBSIZE (only the sampler sends them) over a
   window with several sampler runs, as commands per run and commands per second, and what
   that means at the default slow interval (300 s).

Run from the repository root:  python bench/redis/run.py  [--keys N] [--scrapes N]
Needs redis-server and prometheus-redis-exporter (apt-get install redis-server
prometheus-redis-exporter). Prints the figures as JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.fixtures.procs import free_port, require_binary, wait_until
from tests.fixtures.redis import RedisServer

SAMPLER_COMMANDS = ("scan", "pttl", "dbsize")
PEER_COST_SCRAPES = 50


def load_keys(server: RedisServer, total: int) -> None:
    """``total`` keys: half ``user:*`` without TTL, 30% ``session:*`` with, 20% ``cache:*`` half with."""
    client = server.client()
    pipe = client.pipeline(transaction=False)
    for i in range(total):
        share = i % 10
        if share < 5:
            pipe.set(f"user:{i}", "x" * 32)
        elif share < 8:
            pipe.set(f"session:{i}", "x" * 32, ex=86400)
        else:
            pipe.set(f"cache:{i}", "x" * 32, ex=86400 if share == 8 else None)
        if len(pipe) >= 10_000:
            pipe.execute()
    pipe.execute()


def scrape(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        response.read()
    return time.perf_counter() - start


def scrape_keepalive(connection: http.client.HTTPConnection) -> float:
    """One scrape on a kept-alive connection, as Prometheus does by default."""
    start = time.perf_counter()
    connection.request("GET", "/metrics")
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"scrape failed: HTTP {response.status}")
    return time.perf_counter() - start


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency_summary(timings: dict[str, list[float]]) -> dict[str, object]:
    """p50/p90/p99 in ms per exporter and the p50 ratio stackwatch / peer."""
    p50 = {name: statistics.median(values) for name, values in timings.items()}
    return {
        "p50_ms": {k: round(v * 1000, 3) for k, v in p50.items()},
        "p90_ms": {k: round(quantile(v, 0.9) * 1000, 3) for k, v in timings.items()},
        "p99_ms": {k: round(quantile(v, 0.99) * 1000, 3) for k, v in timings.items()},
        "p50_ratio_stackwatch_over_peer": round(p50["stackwatch"] / p50["peer"], 3),
    }


def command_calls(server: RedisServer) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): int(stats["calls"])
            for name, stats in server.client().info("commandstats").items()}


def series(url: str) -> int:
    with urllib.request.urlopen(url, timeout=30) as response:
        return sum(1 for line in response.read().decode().splitlines() if line and not line.startswith("#"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--sampler-interval", type=float, default=10.0,
                        help="--interval-slow of stackwatch while the sampler cost is measured")
    parser.add_argument("--sampler-window", type=float, default=35.0)
    args = parser.parse_args()

    peer_binary = require_binary("prometheus-redis-exporter", "prometheus-redis-exporter")
    server = RedisServer()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        load_keys(server, args.keys)
        dbsize = server.client().dbsize()
        ours_port, peer_port = free_port(), free_port()
        peer = subprocess.Popen(
            [peer_binary, "-redis.addr", server.url, "-web.listen-address", f"127.0.0.1:{peer_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(peer)
        peer_url = f"http://127.0.0.1:{peer_port}/metrics"
        wait_until(lambda: scrape(peer_url) >= 0, 30, "the peer to answer")
        calls_before = command_calls(server)
        for _ in range(PEER_COST_SCRAPES):  # the peer alone: what one of its scrapes costs Redis
            scrape(peer_url)
        peer_cost = {cmd: (n - calls_before.get(cmd, 0)) / PEER_COST_SCRAPES
                     for cmd, n in command_calls(server).items() if n - calls_before.get(cmd, 0) > 1}
        ours = subprocess.Popen(
            [sys.executable, "-m", "stackwatch.cli", "exporter", "--listen", f"127.0.0.1:{ours_port}",
             "--redis-url", server.url, "--interval-slow", str(args.sampler_interval), "--log-level", "warning"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(ours)
        ours_url = f"http://127.0.0.1:{ours_port}/metrics"
        wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{ours_port}/-/ready", timeout=2).status == 200,
                   60, "stackwatch to be ready")

        for _ in range(10):  # warm-up
            scrape(ours_url)
            scrape(peer_url)
        timings: dict[str, list[float]] = {"stackwatch": [], "peer": []}
        for _ in range(args.scrapes):
            timings["stackwatch"].append(scrape(ours_url))
            timings["peer"].append(scrape(peer_url))
        kept = {"stackwatch": http.client.HTTPConnection("127.0.0.1", ours_port, timeout=30),
                "peer": http.client.HTTPConnection("127.0.0.1", peer_port, timeout=30)}
        keepalive: dict[str, list[float]] = {"stackwatch": [], "peer": []}
        for _ in range(args.scrapes):
            for name, connection in kept.items():
                keepalive[name].append(scrape_keepalive(connection))
        for connection in kept.values():
            connection.close()
        rss = {"stackwatch": rss_mib(ours.pid), "peer": rss_mib(peer.pid)}
        counts = {"stackwatch": series(ours_url), "peer": series(peer_url)}

        peer.terminate()
        peer.wait(10)
        before = command_calls(server)
        time.sleep(args.sampler_window)
        after = command_calls(server)
        with urllib.request.urlopen(ours_url, timeout=30) as response:
            text = response.read().decode()
        duration = next(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                        if line.startswith('redis_scrape_collector_duration_seconds{collector="ttl_sampler"'))
        sampled = next(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                       if line.startswith("redis_ttl_keys_sampled{"))
        truncated = next(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                         if line.startswith("redis_ttl_sample_truncated{"))
        rss["stackwatch_after_sampler"] = rss_mib(ours.pid)
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(10)
        server.destroy()

    delta = {cmd: after.get(cmd, 0) - before.get(cmd, 0) for cmd in after}
    walks = delta.get("dbsize", 0)
    sampler = sum(delta.get(cmd, 0) for cmd in SAMPLER_COMMANDS)
    everything = sum(delta.values())
    per_walk = sampler / walks if walks else float("nan")
    report = {
        "keys": dbsize, "scrapes": args.scrapes,
        "new_connection_per_scrape": latency_summary(timings),
        "keep_alive": latency_summary(keepalive),
        "series": counts,
        "rss_mib": {k: round(v, 1) for k, v in rss.items()},
        "peer_redis_commands_per_scrape": {k: round(v, 2) for k, v in sorted(peer_cost.items())},
        "sampler": {
            "window_s": args.sampler_window, "interval_slow_s": args.sampler_interval, "walks": walks,
            "commands_per_walk": round(per_walk, 1), "keys_sampled": sampled, "truncated": truncated,
            "walk_seconds": round(duration, 4),
            "commands_per_s_measured": round(sampler / args.sampler_window, 1),
            "commands_per_s_at_300s_interval": round(per_walk / 300, 1),
            "all_stackwatch_commands_per_s_measured": round(everything / args.sampler_window, 1),
            "by_command": {k: v for k, v in sorted(delta.items()) if v},
        },
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
