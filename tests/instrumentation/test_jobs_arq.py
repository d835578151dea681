"""arq jobs measured where they run: a real arq worker on a real redis-server, in arq's own
environment (.tmp/venv-arq: arq pins redis-py < 6), with Sentry reporting to a local receiver."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.exporters.redis.queue_jobs import ARQ_PYTHON
from tests.fixtures.redis import RedisServer
from tests.fixtures.sentry import SentryReceiver

SCRIPT = Path(__file__).with_name("arq_run.py")
QUEUE = "arq:queue"  # arq's default queue, as the exporter's queues collector names it


@pytest.fixture(scope="module")
def run(redis_server: RedisServer) -> Iterator[dict[str, Any]]:
    """One run of the script for the whole module (a worker process costs seconds)."""
    assert ARQ_PYTHON.exists(), "arq's environment is missing: run `make deps`"
    receiver = SentryReceiver()
    try:
        done = subprocess.run([str(ARQ_PYTHON), str(SCRIPT), str(redis_server.port), receiver.dsn],
                              capture_output=True, text=True, timeout=90, check=True)
        result: dict[str, Any] = json.loads(done.stdout)
        result["events"] = receiver.wait_for_events(1)
        yield result
    finally:
        receiver.close()


def _sample(run: dict[str, Any], name: str, **labels: str) -> float:
    return sum(value for sample, found, value in run["samples"]
               if sample == name and all(found.get(k) == v for k, v in labels.items()))


def test_each_run_is_counted_once_by_result(run: dict[str, Any]) -> None:
    def jobs(task: str, result: str) -> float:
        return _sample(run, "jobs_total", system="arq", queue=QUEUE, task=task, result=result)

    assert jobs("ok", "success") == 3
    assert jobs("boom", "failure") == 1
    assert (jobs("again", "retry"), jobs("again", "success")) == (1, 1)  # arq.worker.Retry, then done
    assert _sample(run, "job_run_duration_seconds_count", system="arq", task="ok") == 3


def test_the_wait_is_measured_from_arqs_enqueue_time(run: dict[str, Any]) -> None:
    waited = _sample(run, "job_wait_duration_seconds_count", system="arq", task="ok")
    assert waited == 3
    quick = _sample(run, "job_wait_duration_seconds_bucket", system="arq", task="ok", le="0.25")
    assert quick == 0  # the jobs sat 0.3 s in the queue before the worker started


def test_the_enqueuing_span_is_the_parent_of_every_run(run: dict[str, Any]) -> None:
    trace_id, span_id = run["request"]
    jobs = [s for s in run["spans"] if s["kind"] == "CONSUMER"]
    assert sorted(s["function"] for s in jobs) == ["again", "again", "boom", "ok", "ok", "ok"]
    assert all(s["trace_id"] == trace_id and s["parent"] == span_id for s in jobs)
    assert all(s["name"] == f"process {QUEUE}" for s in jobs)


def test_a_failed_jobs_sentry_event_carries_its_trace(run: dict[str, Any]) -> None:
    (event,) = run["events"]
    assert event["exception"]["values"][-1]["value"] == "planted arq failure"
    assert event["transaction"] == "boom"
    assert event["tags"]["otel.trace_id"] == run["request"][0]
    assert event["contexts"]["trace"]["trace_id"] == run["request"][0]
    assert event["tags"]["messaging.system"] == "arq"


def test_uninstrumented_workers_run_instrumented_jobs_and_record_nothing(run: dict[str, Any]) -> None:
    assert run["plain_result"] == 41  # the extra key in the job is invisible to arq itself
    assert run["after_uninstrument"]
