"""Load generator for the demo service: a steady, weighted mix of its endpoints.

``python -m demo.loadgen --target http://127.0.0.1:8000 --rate 20 --duration 60``
(``--duration 0`` runs until interrupted, as docker-compose does). Requests are started at
``--rate`` per second whatever the latency, with at most ``--concurrency`` in flight, and a
summary of status codes is printed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

__all__ = ["MIX", "main", "run"]

#: the demo's fingerprinted stylesheet (demo/static), as a page would load it
ASSET = "/static/" + min(p.name for p in (Path(__file__).parent / "static").glob("app.*.css"))
# (weight, method, path template): mostly healthy reads, some cache traffic, a little of each problem.
MIX: tuple[tuple[int, str, str], ...] = (
    (40, "GET", "/books?limit={n}"),
    (30, "GET", "/authors/{author}"),
    (4, "PUT", "/authors/{author}?name=Renamed+{n}"),
    (10, "GET", "/authors/{author}/books"),
    (3, "GET", "/reports/slow"),
    (2, "POST", "/reports?author_id={author}"),
    (3, "GET", "/error"),
    (5, "GET", "/missing/{n}"),
    (3, "GET", ASSET),
)


def _next_request(rng: random.Random) -> tuple[str, str]:
    weights = [w for w, _, _ in MIX]
    _, method, template = rng.choices(MIX, weights=weights)[0]
    return method, template.format(author=rng.randint(1, 50), n=rng.randint(1, 40))


async def run(target: str, rate: float, duration: float, concurrency: int = 50,
              seed: int | None = None) -> collections.Counter[str]:
    """Send the mix to ``target`` for ``duration`` seconds (0 = forever); status counts by code."""
    rng = random.Random(seed)
    results: collections.Counter[str] = collections.Counter()
    slots = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()

    async with httpx.AsyncClient(base_url=target.rstrip("/"), timeout=10) as client:

        async def one(method: str, path: str) -> None:
            try:
                response = await client.request(method, path)
                results[str(response.status_code)] += 1
            except httpx.HTTPError as exc:
                results[type(exc).__name__] += 1
            finally:
                slots.release()

        started = time.monotonic()
        sent = 0
        while duration <= 0 or time.monotonic() - started < duration:
            due = started + sent / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()
            task = asyncio.create_task(one(*_next_request(rng)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        if tasks:
            await asyncio.gather(*tasks)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.loadgen", description=__doc__.splitlines()[0])
    parser.add_argument("--target", "--base-url", dest="target", default="http://127.0.0.1:8000",
                        help="base URL of the demo service")
    parser.add_argument("--rate", type=float, default=20.0, help="requests started per second (default 20)")
    parser.add_argument("--duration", type=float, default=0.0, help="seconds to run; 0 = until interrupted")
    parser.add_argument("--concurrency", type=int, default=50, help="maximum requests in flight (default 50)")
    parser.add_argument("--seed", type=int, default=None, help="random seed, for a repeatable mix")
    args = parser.parse_args(argv)
    if args.rate <= 0:
        parser.error(f"--rate: expected a positive number, got {args.rate}")
    if args.concurrency < 1:
        parser.error(f"--concurrency: expected a positive integer, got {args.concurrency}")
    try:
        results = asyncio.run(run(args.target, args.rate, args.duration, args.concurrency, args.seed))
    except KeyboardInterrupt:
        return 0
    total = sum(results.values())
    summary = " ".join(f"{code}={count}" for code, count in sorted(results.items()))
    print(f"sent {total} requests to {args.target}: {summary}", file=sys.stdout, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
