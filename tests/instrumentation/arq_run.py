"""Run by arq's own environment (.tmp/venv-arq, redis-py 5): a request enqueues arq jobs, a real
arq worker runs them; prints what stackwatch recorded as JSON for test_jobs_arq.py.

argv: REDIS_PORT SENTRY_DSN (or "-")
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Retry, Worker
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from stackwatch.instrumentation.jobs_arq import instrument_arq, uninstrument_arq

WAIT = 0.3


async def ok(ctx: dict, n: int) -> int:
    return n


async def boom(ctx: dict) -> None:
    raise RuntimeError("planted arq failure")


async def again(ctx: dict) -> str:
    if ctx["job_try"] == 1:
        raise Retry(defer=0.05)
    return "second try"


def _samples(registry: CollectorRegistry) -> list[list]:
    return [[s.name, s.labels, s.value] for m in registry.collect() for s in m.samples
            if s.name.startswith(("job", "db_client_queries_per_request"))]


async def main(port: int, dsn: str) -> dict:
    if dsn != "-":
        import sentry_sdk
        sentry_sdk.init(dsn=dsn, auto_enabling_integrations=False, default_integrations=False)
    registry, spans = CollectorRegistry(), InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    settings = RedisSettings(host="127.0.0.1", port=port, database=3)
    instrument_arq(registry=registry, tracer_provider=provider)
    instrument_arq(registry=registry, tracer_provider=provider)  # idempotent
    redis = await create_pool(settings)
    await redis.flushdb()
    with provider.get_tracer("test").start_as_current_span("request") as request:
        for n in range(3):
            await redis.enqueue_job("ok", n)
        await redis.enqueue_job("boom")
        await redis.enqueue_job("again")
    await asyncio.sleep(WAIT)
    worker = Worker(functions=[ok, boom, again], redis_settings=settings, burst=True, poll_delay=0.02,
                    max_tries=3, handle_signals=False)
    await worker.main()
    await worker.close()
    recorded = _samples(registry)

    # Without stackwatch on the worker side, a job enqueued with it still runs (the extra key is ignored).
    job = await redis.enqueue_job("ok", 41)
    uninstrument_arq()
    plain = Worker(functions=[ok], redis_settings=settings, burst=True, poll_delay=0.02, handle_signals=False)
    await plain.main()
    await plain.close()
    plain_result = await job.result(timeout=5)
    if dsn != "-":
        sentry_sdk.flush(5)
    await redis.aclose()
    ctx = request.get_span_context()
    return {
        "request": [format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")],
        "spans": [{"name": s.name, "kind": s.kind.name, "trace_id": format(s.context.trace_id, "032x"),
                   "parent": format(s.parent.span_id, "016x") if s.parent else None,
                   "function": s.attributes.get("code.function.name"),
                   "result": s.attributes.get("messaging.operation.result")} for s in spans.get_finished_spans()],
        "samples": recorded,
        "after_uninstrument": _samples(registry) == recorded,
        "plain_result": plain_result,
        "time": time.time(),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(int(sys.argv[1]), sys.argv[2]))))
