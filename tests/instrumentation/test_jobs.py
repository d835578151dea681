"""Jobs measured where they run: Celery, RQ and Dramatiq with real workers on a real redis-server,
statements from a real PostgreSQL inside them."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import dramatiq
import psycopg
import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from dramatiq.brokers.redis import RedisBroker
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry
from rq import Queue, Retry

from stackwatch.instrumentation import instrument_psycopg
from stackwatch.instrumentation.jobs_celery import instrument_celery, uninstrument_celery
from stackwatch.instrumentation.jobs_dramatiq import instrument_dramatiq, uninstrument_dramatiq
from stackwatch.instrumentation.jobs_rq import instrument_rq, uninstrument_rq
from tests.exporters.redis.queue_jobs import RqWorker
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.redis import RedisServer

#: how long a job waits in its queue before the worker starts (the wait histogram must see it)
WAIT = 0.3


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def _runs(registry: CollectorRegistry, system: str, queue: str, task: str, result: str) -> float:
    return _value(registry, "jobs_total", system=system, queue=queue, task=task, result=result)


def _job_spans(spans: InMemorySpanExporter) -> list[Any]:
    return [s for s in spans.get_finished_spans() if s.kind == SpanKind.CONSUMER]


def _assert_one_trace(spans: InMemorySpanExporter, request: Any, count: int) -> None:
    """Every job span is a child of the request span that enqueued it."""
    jobs = _job_spans(spans)
    assert len(jobs) == count
    for span in jobs:
        assert span.context.trace_id == request.get_span_context().trace_id
        assert span.parent is not None and span.parent.span_id == request.get_span_context().span_id


@pytest.fixture
def dsn(postgres: PostgresServer) -> str:
    postgres.query("CREATE TABLE IF NOT EXISTS job_items (id int PRIMARY KEY)")
    postgres.query("INSERT INTO job_items SELECT g FROM generate_series(1, 10) g ON CONFLICT DO NOTHING")
    return postgres.dsn()


def _n_plus_one(dsn: str) -> int:
    """What a job with an N+1 loop does: one statement per item."""
    with psycopg.connect(dsn) as conn:
        instrument_psycopg(conn)
        ids = [r[0] for r in conn.execute("SELECT id FROM job_items ORDER BY id").fetchall()]
        return sum(conn.execute("SELECT id FROM job_items WHERE id = %s", (i,)).fetchone()[0] for i in ids)


# ------------------------------------------------------------------------------------------ Celery

@pytest.fixture
def celery_app(redis_server: RedisServer, registry: CollectorRegistry, provider: TracerProvider,
               dsn: str) -> Iterator[Celery]:
    app = Celery("stackwatch-test", broker=f"redis://{redis_server.host}:{redis_server.port}/6")
    app.conf.task_default_queue = "emails"
    app.conf.worker_hijack_root_logger = False

    @app.task(name="send_email", shared=False)
    def send_email(n: int) -> int:
        if n < 0:
            raise ValueError("planted failure")
        return n

    @app.task(name="load_items", shared=False)
    def load_items() -> int:
        return _n_plus_one(dsn)

    @app.task(name="flaky", bind=True, max_retries=1, default_retry_delay=0, shared=False)
    def flaky(self: Any) -> None:
        raise self.retry(exc=RuntimeError("try again"))

    instrument_celery(app, registry=registry, tracer_provider=provider)
    instrument_celery(app, registry=registry, tracer_provider=provider)  # idempotent
    root_level = logging.getLogger().level  # Celery's test worker sets the root logger to ERROR
    yield app
    logging.getLogger().setLevel(root_level)
    uninstrument_celery(app)


def test_celery_jobs_are_counted_timed_and_traced(celery_app: Celery, registry: CollectorRegistry,
                                                  provider: TracerProvider, spans: InMemorySpanExporter) -> None:
    with provider.get_tracer("test").start_as_current_span("POST /emails") as request:
        celery_app.send_task("send_email", (1,))
        celery_app.send_task("send_email", (2,))
        celery_app.send_task("send_email", (-1,))
        celery_app.send_task("load_items")
    time.sleep(WAIT)
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        deadline = time.monotonic() + 30
        while _value(registry, "job_run_duration_seconds_count", system="celery", queue="emails",
                     task="load_items") < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert _runs(registry, "celery", "emails", "send_email", "success") == 2
    assert _runs(registry, "celery", "emails", "send_email", "failure") == 1
    waited = _value(registry, "job_wait_duration_seconds_sum", system="celery", queue="emails", task="send_email")
    assert waited >= 3 * WAIT
    assert _value(registry, "job_wait_duration_seconds_count", system="celery", queue="emails", task="send_email") == 3
    assert _value(registry, "db_client_n_plus_one_total", http_route="load_items") == 1  # the task is the route
    _assert_one_trace(spans, request, 4)
    failed = [s for s in _job_spans(spans) if s.status.status_code.name == "ERROR"]
    assert len(failed) == 1 and failed[0].events[0].name == "exception"


def test_celery_retries_count_as_retry_then_failure(celery_app: Celery, registry: CollectorRegistry) -> None:
    celery_app.send_task("flaky")
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        deadline = time.monotonic() + 30
        while _runs(registry, "celery", "emails", "flaky", "failure") < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert _runs(registry, "celery", "emails", "flaky", "retry") == 1
    assert _runs(registry, "celery", "emails", "flaky", "failure") == 1


def test_uninstrumented_celery_records_nothing(celery_app: Celery, registry: CollectorRegistry) -> None:
    uninstrument_celery(celery_app)
    celery_app.send_task("send_email", (1,))
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        time.sleep(1.5)
    assert _runs(registry, "celery", "emails", "send_email", "success") == 0


# ---------------------------------------------------------------------------------------------- RQ

def rq_job(n: int) -> int:
    if n < 0:
        raise ValueError("planted failure")
    return n


@pytest.fixture
def rq_instrumented(registry: CollectorRegistry, provider: TracerProvider) -> Iterator[None]:
    uninstrument_rq()  # the patch is process-wide: another test (the demo app) may hold it with other settings
    instrument_rq(registry=registry, tracer_provider=provider)
    instrument_rq(registry=registry, tracer_provider=provider)  # idempotent
    yield
    uninstrument_rq()


def test_rq_jobs_are_counted_timed_and_traced(rq_instrumented: None, redis_factory: Callable[..., RedisServer],
                                              registry: CollectorRegistry, provider: TracerProvider,
                                              spans: InMemorySpanExporter) -> None:
    client = redis_factory().client()
    queue = Queue("reports", connection=client)
    with provider.get_tracer("test").start_as_current_span("POST /reports") as request:
        queue.enqueue(rq_job, 1)
        queue.enqueue(rq_job, -1)
        queue.enqueue(rq_job, -2, retry=Retry(max=1))
    time.sleep(WAIT)
    RqWorker([queue], connection=client).work(burst=True)
    task = f"{__name__}.rq_job"
    assert _runs(registry, "rq", "reports", task, "success") == 1
    assert _runs(registry, "rq", "reports", task, "failure") == 2  # -1, and -2 after its one retry
    assert _runs(registry, "rq", "reports", task, "retry") == 1
    assert _value(registry, "job_wait_duration_seconds_sum", system="rq", queue="reports", task=task) >= 3 * WAIT
    assert _value(registry, "job_run_duration_seconds_count", system="rq", queue="reports", task=task) == 4
    _assert_one_trace(spans, request, 4)
    exemplars = {s.exemplar.labels["trace_id"] for family in registry.collect() for s in family.samples
                 if s.name == "job_run_duration_seconds_bucket" and s.exemplar}
    assert exemplars == {format(request.get_span_context().trace_id, "032x")}  # the latency panel links the trace


# ---------------------------------------------------------------------------------------- Dramatiq

def test_dramatiq_jobs_are_counted_timed_and_traced(redis_factory: Callable[..., RedisServer],
                                                    registry: CollectorRegistry, provider: TracerProvider,
                                                    spans: InMemorySpanExporter, dsn: str) -> None:
    server = redis_factory()
    broker = RedisBroker(host=server.host, port=server.port)
    middleware = instrument_dramatiq(broker, registry=registry, tracer_provider=provider)
    assert instrument_dramatiq(broker, registry=registry, tracer_provider=provider) is middleware
    done = threading.Event()

    def build(n: int) -> int:
        if n < 0:
            raise ValueError("planted failure")
        if n == 0:
            _n_plus_one(dsn)
        done.set() if n == 9 else None
        return n

    actor = dramatiq.actor(build, actor_name="build", queue_name="reports", broker=broker, max_retries=0)
    with provider.get_tracer("test").start_as_current_span("POST /reports") as request:
        for n in (0, 1, -1):
            actor.send(n)
    time.sleep(WAIT)
    actor.send(9)
    worker = dramatiq.Worker(broker, worker_threads=1)
    worker.start()
    try:
        assert done.wait(30)
        deadline = time.monotonic() + 10
        while _value(registry, "job_run_duration_seconds_count", system="dramatiq", queue="reports",
                     task="build") < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
        uninstrument_dramatiq(broker)
    assert _runs(registry, "dramatiq", "reports", "build", "success") == 3
    assert _runs(registry, "dramatiq", "reports", "build", "failure") == 1
    assert _value(registry, "job_wait_duration_seconds_sum", system="dramatiq", queue="reports",
                  task="build") >= 3 * WAIT
    assert _value(registry, "db_client_n_plus_one_total", http_route="build") == 1
    jobs = _job_spans(spans)
    traced = [s for s in jobs if s.context.trace_id == request.get_span_context().trace_id]
    assert len(jobs) == 4 and len(traced) == 3  # the 9 was sent outside the request
    assert not any(isinstance(m, type(middleware)) for m in broker.middleware)
