"""``redis.queues`` read from a real redis-server filled by RQ, both ways: queues that drain pass,
work nobody takes and jobs that waited too long fail."""

from __future__ import annotations

import time
from collections.abc import Callable

from rq import Queue, Worker

from stackwatch.check.redis import RedisCheck
from stackwatch.check.runner import Budget
from stackwatch.core.redis.queue_spec import KNOWN_LAYOUTS, parse_queue_spec
from stackwatch.thresholds import JOBS, JobThresholds
from tests.exporters.redis.queue_jobs import succeed
from tests.fixtures.redis import RedisServer


def _queues(server: RedisServer, jobs: JobThresholds = JOBS, *specs: str) -> dict[str, str]:
    """The redis.queues finding of a check run in-process (thresholds injectable, as the CLI's are not)."""
    check = RedisCheck(server.url, window=0.1, queues=tuple(parse_queue_spec(s) for s in specs), jobs=jobs)
    finding = next(f for f in check.run(Budget(60, 5)) if f.item.id == "redis.queues")
    return {"status": finding.status.value, "evidence": finding.evidence}


def test_queued_jobs_without_a_worker_fail(check: Callable[..., object], redis_factory) -> None:  # type: ignore[no-untyped-def]
    server = redis_factory()
    emails = Queue("emails", connection=server.client())
    for n in range(3):
        emails.enqueue(succeed, n)
    outcome = check("--redis-url", server.url, "--redis-window", "0.1")
    finding = outcome.finding("redis.queues")  # type: ignore[attr-defined]
    assert finding["status"] == "fail" and "no worker for rq emails (3 waiting)" in finding["evidence"], finding
    assert "rq:rq:queue:*" in finding["evidence"]  # the default layouts it looked for


def test_queues_with_a_worker_pass(redis_factory) -> None:  # type: ignore[no-untyped-def]
    server = redis_factory()
    client = server.client()
    emails = Queue("emails", connection=client)
    emails.enqueue(succeed, 1)
    worker = Worker([emails], connection=client)
    worker.register_birth()  # a worker listening to the queue, as `rq worker emails` registers itself
    try:
        result = _queues(server)
    finally:
        worker.register_death()
    assert result["status"] == "pass", result
    assert "1 queue(s), 1 job(s) waiting" in result["evidence"]


def test_a_job_waiting_past_the_threshold_fails(redis_factory) -> None:  # type: ignore[no-untyped-def]
    server = redis_factory()
    client = server.client()
    reports = Queue("reports", connection=client)
    reports.enqueue(succeed, 1)
    worker = Worker([reports], connection=client)
    worker.register_birth()
    try:
        time.sleep(1.2)
        late = _queues(server, JobThresholds(oldest_age_seconds=1.0))
        fine = _queues(server, JobThresholds(oldest_age_seconds=60.0))
    finally:
        worker.register_death()
    assert late["status"] == "fail" and "oldest job over 1s in rq reports" in late["evidence"], late
    assert fine["status"] == "pass", fine


def test_no_queues_is_unknown_and_says_how_to_name_them(redis_factory) -> None:  # type: ignore[no-untyped-def]
    server = redis_factory()
    server.client().set("user:1", "x")
    result = _queues(server)
    assert result["status"] == "unknown" and "no job queues found" in result["evidence"]
    assert all(spec.system in result["evidence"] for spec in KNOWN_LAYOUTS)


def test_named_queues_are_read_with_the_exporters_layouts(redis_factory) -> None:  # type: ignore[no-untyped-def]
    server = redis_factory()
    server.client().rpush("jobs:thumbnails", "a", "b")
    result = _queues(server, JOBS, "list:jobs:*")
    assert result["status"] == "pass" and "2 job(s) waiting" in result["evidence"], result
