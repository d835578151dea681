"""The demo's RQ worker, instrumented: ``python -m demo.worker [--url URL] [--metrics-port N] [QUEUE...]``.

Runs the jobs ``POST /reports`` enqueues (:mod:`demo.jobs`) with
:func:`~stackwatch.instrumentation.jobs_rq.instrument_rq`, serves ``/metrics`` on
``--metrics-port`` (``job_*`` families, the jobs' statements) and sends spans to
``OTEL_EXPORTER_OTLP_ENDPOINT`` when it is set, children of the requests that enqueued the jobs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import redis
from opentelemetry import trace
from prometheus_client import REGISTRY
from rq import Queue, SimpleWorker

from stackwatch.instrumentation import Settings
from stackwatch.instrumentation.exposition import MetricsServer, exposition_registry
from stackwatch.instrumentation.jobs_rq import instrument_rq
from stackwatch.instrumentation.tracing import build_tracer_provider

from . import jobs

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("REDIS_URL") or os.environ.get("DEMO_REDIS_URL")
                        or "redis://127.0.0.1:6379/0", help="the Redis the queues live in")
    parser.add_argument("--metrics-port", type=int, default=9100, help="port of /metrics (0: any free port)")
    parser.add_argument("--metrics-addr", default="0.0.0.0", help="address of /metrics")
    parser.add_argument("--burst", action="store_true", help="exit once the queues are empty")
    parser.add_argument("queues", nargs="*", default=[jobs.QUEUE])
    args = parser.parse_args(argv)
    provider = build_tracer_provider(Settings(service_name=os.environ.get("OTEL_SERVICE_NAME") or "demo-worker"))
    trace.set_tracer_provider(provider)
    instrument_rq(tracer_provider=provider)
    server = MetricsServer(exposition_registry(REGISTRY, multiprocess=False), args.metrics_addr, args.metrics_port)
    connection = redis.Redis.from_url(args.url)
    try:
        # SimpleWorker runs jobs in this process, whose /metrics then counts them; RQ's default
        # Worker forks a work horse per job (use PROMETHEUS_MULTIPROC_DIR for that, see the docs)
        SimpleWorker([Queue(name, connection=connection) for name in args.queues], connection=connection).work(
            burst=args.burst)
    finally:
        server.close()
        provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
