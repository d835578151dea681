"""Per-job overhead of the job instrumentation: the same job run bare and instrumented.

Runs an RQ job's ``perform()`` (what a worker calls for each job, without the worker's own Redis
round trips, which are the same either way) ``--jobs`` times per round, alternating bare and
instrumented rounds (traces at 100%, batched as a service exports them, into an in-memory
exporter, the job histograms and counter,
N+1 bookkeeping) and reports the median CPU microseconds per job of each and their difference.
Target: <= 50 us per job. Needs a redis-server (the jobs are created on it once).

Run from the repository root:  python bench/instrumentation/jobs.py  [--jobs N] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402
from rq import Queue  # noqa: E402

from stackwatch.instrumentation.jobs_rq import instrument_rq, uninstrument_rq  # noqa: E402
from tests.exporters.redis.queue_jobs import succeed  # noqa: E402
from tests.fixtures.redis import RedisServer  # noqa: E402


def per_job(jobs: list, rounds: int) -> float:  # type: ignore[type-arg]
    """Median CPU microseconds per ``perform()`` over ``rounds`` rounds."""
    samples = []
    for _ in range(rounds):
        start = time.process_time()
        for job in jobs:
            job.perform()
        samples.append((time.process_time() - start) / len(jobs) * 1e6)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    server = RedisServer()
    try:
        queue = Queue("bench", connection=server.client())
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))  # as a service exports
        registry = CollectorRegistry()
        instrument_rq(registry=registry, tracer_provider=provider)
        jobs = [queue.enqueue(succeed, n) for n in range(args.jobs)]  # enqueued with the carrier, as in a real app
        bare, full = [], []
        for _ in range(args.rounds):  # interleaved, so machine noise hits both alike
            uninstrument_rq()
            bare.append(per_job(jobs, 1))
            instrument_rq(registry=registry, tracer_provider=provider)
            full.append(per_job(jobs, 1))
        b, f = statistics.median(bare), statistics.median(full)
        print(json.dumps({"jobs_per_round": args.jobs, "rounds": args.rounds, "bare_us_per_job": round(b, 1),
                          "instrumented_us_per_job": round(f, 1), "overhead_us_per_job": round(f - b, 1),
                          "target_us": 50}, indent=2))
    finally:
        uninstrument_rq()
        server.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
