"""Job queues read from a real redis-server, filled by the real libraries (RQ, Celery, Dramatiq,
arq, BullMQ) and by plain list and stream commands."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
import redis
from celery import Celery
from rq import Queue

from stackwatch.core.redis.queue_spec import (
    KNOWN_LAYOUTS,
    QueueSpec,
    parse_queue_option,
    parse_queue_spec,
    queue_specs,
)
from stackwatch.core.redis.source import RedisOptions
from stackwatch.exporters.redis.queues import OTHER, QueuesCollector
from tests.fixtures.redis import RedisServer

from .collect import poll, real_source, sample, samples
from .queue_jobs import RqWorker, enqueue_arq, enqueue_bull, fail, linger, succeed


@pytest.fixture
def server(redis_factory) -> Iterator[RedisServer]:  # type: ignore[no-untyped-def]
    yield redis_factory()


def _options(*specs: str, **kwargs: object) -> RedisOptions:
    return RedisOptions(queues=tuple(parse_queue_spec(s) for s in specs), **kwargs)  # type: ignore[arg-type]


def _depth(families: list, system: str, queue: str, state: str) -> float | None:  # type: ignore[type-arg]
    return sample(families, "job_queue_depth", system=system, queue=queue, state=state)


def _age(families: list, system: str, queue: str) -> float | None:  # type: ignore[type-arg]
    return sample(families, "job_queue_oldest_age_seconds", system=system, queue=queue)


def test_spec_errors_name_what_is_wrong() -> None:
    assert parse_queue_spec("rq:rq:queue:*") == QueueSpec("rq", "rq:queue:*")
    with pytest.raises(ValueError, match="unknown system 'sidekiq'"):
        parse_queue_spec("sidekiq:queue:*")
    with pytest.raises(ValueError, match="expected SYSTEM:PATTERN"):
        parse_queue_spec("rq")


def test_auto_expands_to_the_known_layouts_once() -> None:
    assert parse_queue_option(" auto ") == KNOWN_LAYOUTS
    assert {s.system for s in KNOWN_LAYOUTS} == {"rq", "arq", "dramatiq", "bull", "celery"}
    specs = queue_specs([parse_queue_option("list:jobs"), parse_queue_option("auto"), parse_queue_option("auto")])
    assert specs == (QueueSpec("list", "jobs"), *KNOWN_LAYOUTS)


def test_auto_finds_the_queues_in_use_and_adds_no_series_for_unused_libraries(server: RedisServer) -> None:
    client = server.client()
    Queue("emails", connection=client).enqueue(succeed, 1)
    enqueue_arq(server, jobs=2)
    collector = QueuesCollector()
    with real_source(server.url, RedisOptions(queues=KNOWN_LAYOUTS)) as source:
        families = poll(source, collector)
        assert _depth(families, "rq", "emails", "queued") == 1
        assert _depth(families, "arq", "arq:queue", "queued") == 2
        assert {dict(k)["system"] for k in samples(families, "job_queue_depth")} == {"rq", "arq"}

        Celery(broker=server.url).send_task("shop.build_report", queue="celery")  # a library starts being used
        client.delete("arq:queue")  # and a drained queue keeps its series at 0
        families = poll(source, collector)
    assert _depth(families, "celery", "celery", "queued") == 1
    assert _depth(families, "arq", "arq:queue", "queued") == 0


def test_rq_depth_age_workers_and_a_drained_queue_reads_zero(server: RedisServer) -> None:
    client = server.client()
    emails = Queue("emails", connection=client)
    for n in range(3):
        emails.enqueue(succeed, n)
    emails.enqueue(fail)
    time.sleep(1.1)
    collector = QueuesCollector()
    with real_source(server.url, _options("rq:rq:queue:*")) as source:
        families = poll(source, collector)
        assert _depth(families, "rq", "emails", "queued") == 4
        assert _depth(families, "rq", "emails", "failed") == 0
        assert 1.0 <= (_age(families, "rq", "emails") or 0) < 60
        assert sample(families, "job_queue_workers", system="rq", queue="emails") == 0

        RqWorker([emails], connection=client).work(burst=True)  # a real worker drains it
        families = poll(source, collector)
    assert _depth(families, "rq", "emails", "queued") == 0  # the list is gone from Redis; the series stays
    assert _depth(families, "rq", "emails", "failed") == 1
    assert _age(families, "rq", "emails") is None


def test_celery_queues_by_name(server: RedisServer) -> None:
    app = Celery(broker=server.url)
    for _ in range(2):
        app.send_task("shop.send_webhook", queue="webhooks")
    app.send_task("shop.build_report", queue="celery")
    with real_source(server.url, _options("celery:celery", "celery:webhooks")) as source:
        families = poll(source, QueuesCollector())
    assert _depth(families, "celery", "webhooks", "queued") == 2
    assert _depth(families, "celery", "celery", "queued") == 1
    assert _age(families, "celery", "celery") is None  # kombu's messages carry no enqueue time


def test_dramatiq_queued_delayed_and_age(server: RedisServer) -> None:
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(host=server.host, port=server.port)
    actor = dramatiq.actor(succeed, queue_name="reports", broker=broker)
    actor.send(1)
    actor.send(2)
    actor.send_with_options(args=(3,), delay=600_000)
    time.sleep(1.1)
    with real_source(server.url, _options("dramatiq:dramatiq:*")) as source:
        families = poll(source, QueuesCollector())
    assert _depth(families, "dramatiq", "reports", "queued") == 2
    assert _depth(families, "dramatiq", "reports", "delayed") == 1
    assert 1.0 <= (_age(families, "dramatiq", "reports") or 0) < 60
    queues = samples(families, "job_queue_depth")
    assert {dict(k)["queue"] for k in queues} == {"reports"}  # .msgs/.DQ companions are not queues


def test_arq_ready_and_deferred(server: RedisServer) -> None:
    enqueue_arq(server, jobs=3)
    time.sleep(1.1)
    with real_source(server.url, _options("arq:arq:queue")) as source:
        families = poll(source, QueuesCollector())
    assert _depth(families, "arq", "arq:queue", "queued") == 3
    assert _depth(families, "arq", "arq:queue", "deferred") == 1
    assert 1.0 <= (_age(families, "arq", "arq:queue") or 0) < 60


def test_bullmq_states_and_age(server: RedisServer) -> None:
    enqueue_bull(server, "mail", jobs=3)
    time.sleep(1.1)
    with real_source(server.url, _options("bull:bull:*")) as source:
        families = poll(source, QueuesCollector())
    assert _depth(families, "bull", "mail", "queued") == 3
    assert _depth(families, "bull", "mail", "delayed") == 1
    assert _depth(families, "bull", "mail", "started") == 0
    assert 1.0 <= (_age(families, "bull", "mail") or 0) < 60


def test_plain_list_and_stream_with_consumer_groups(server: RedisServer) -> None:
    client = server.client()
    client.rpush("jobs:thumbnails", "a", "b")
    for n in range(5):
        client.xadd("events", {"n": n})
    client.xgroup_create("events", "mailer", id="0")
    client.xgroup_create("events", "audit", id="0")
    client.xreadgroup("mailer", "worker-1", {"events": ">"}, count=2)  # 2 delivered, not acked
    client.xreadgroup("audit", "worker-2", {"events": ">"}, count=5)
    time.sleep(1.1)
    client.xadd("events", {"n": 5})
    with real_source(server.url, _options("list:jobs:*", "stream:events")) as source:
        families = poll(source, QueuesCollector())
    assert _depth(families, "list", "jobs:thumbnails", "queued") == 2
    assert sample(families, "job_queue_consumer_lag", system="stream", queue="events", group="mailer") == 4
    assert sample(families, "job_queue_consumer_lag", system="stream", queue="events", group="audit") == 1
    assert _depth(families, "stream", "events", "queued") == 4  # the most-lagging group's backlog
    assert _depth(families, "stream", "events", "started") == 7  # delivered, not acknowledged
    assert _depth(families, "stream", "events", "entries") == 6
    assert sample(families, "job_queue_workers", system="stream", queue="events") == 2
    assert 1.0 <= (_age(families, "stream", "events") or 0) < 60  # mailer's next entry, the third


def test_wrong_type_and_malformed_payloads_are_skipped_and_said(server: RedisServer,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    client = server.client()
    client.set("rq:queue:oops", "not a list")
    client.rpush("rq:queue:emails", "no-such-job")
    client.rpush("dramatiq:reports", "m1")
    client.hset("dramatiq:reports.msgs", "m1", "{not json")
    collector = QueuesCollector()
    with caplog.at_level(logging.WARNING), real_source(server.url, _options("rq:rq:queue:*",
                                                                           "dramatiq:dramatiq:*")) as source:
        families = poll(source, collector)
        again = poll(source, collector)
    assert sample(families, "job_queue_invalid_keys", system="rq") == 1
    assert _depth(families, "rq", "emails", "queued") == 1 and _age(families, "rq", "emails") is None
    assert _depth(families, "dramatiq", "reports", "queued") == 1 and _age(families, "dramatiq", "reports") is None
    assert _depth(again, "rq", "oops", "queued") is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("rq:queue:oops" in w and "wrong type" in w for w in warnings) == 1  # said once, not every poll
    assert any("reports" in w and "enqueue time" in w for w in warnings)


def _commands(client: redis.Redis) -> int:
    """Commands that read keys: INFO and the MULTI/EXEC that measure the reads are left out."""
    return sum(int(v["calls"]) for k, v in client.info("commandstats").items()
               if k not in ("cmdstat_info", "cmdstat_multi", "cmdstat_exec"))


def test_a_million_jobs_cost_what_an_empty_queue_costs(server: RedisServer) -> None:
    client = server.client()
    emails = Queue("emails", connection=client)
    emails.enqueue(succeed)
    pipe = client.pipeline(transaction=False)
    for start in range(0, 1_000_000, 10_000):
        pipe.rpush("rq:queue:emails", *(f"id-{n}" for n in range(start, start + 10_000)))
    pipe.execute()
    collector = QueuesCollector()
    with real_source(server.url, _options("rq:rq:queue:emails")) as source:
        before = _commands(client)
        families = poll(source, collector)
        cost = _commands(client) - before
    assert _depth(families, "rq", "emails", "queued") == 1_000_001
    assert _age(families, "rq", "emails") is not None
    assert cost == 8, cost  # LLEN, four registry ZCARDs, SCARD, LINDEX, HGET: none walks the list


def test_many_queues_are_capped_with_a_rollup(server: RedisServer) -> None:
    client = server.client()
    pipe = client.pipeline(transaction=False)
    for n in range(1000):
        pipe.rpush(f"jobs:q{n:04d}", *range(n % 7 + 1))
    pipe.rpush("jobs:other", 1)  # a real queue called "other" stays itself
    pipe.execute()
    with real_source(server.url, _options("list:jobs:*", queues_max=60)) as source:
        families = poll(source, QueuesCollector())
    depths = {dict(k)["queue"]: v for k, v in samples(families, "job_queue_depth").items()}
    assert len(depths) == 61 and OTHER in depths
    assert sum(depths.values()) == sum(n % 7 + 1 for n in range(1000)) + 1
    assert sample(families, "job_queue_queues", system="list") == 1001
    assert sample(families, "job_queue_discovery_truncated") == 0
    with real_source(server.url, _options("list:jobs:*", queues_max=10)) as source:  # reads at most 20x
        families = poll(source, QueuesCollector())
    assert sample(families, "job_queue_queues", system="list") == 200
    assert sample(families, "job_queue_discovery_truncated") == 1


def test_redis_gone_fails_the_poll_for_the_target_to_report_and_the_next_recovers(redis_factory) -> None:  # type: ignore[no-untyped-def]
    server = redis_factory()
    server.client().rpush("rq:queue:emails", "x")
    collector = QueuesCollector()
    with real_source(server.url, _options("rq:rq:queue:*")) as source:
        assert _depth(poll(source, collector), "rq", "emails", "queued") == 1
        server.stop()
        with pytest.raises(redis.ConnectionError):
            poll(source, collector)
        server.start()  # empty: the server keeps no data across restarts here
        assert _depth(poll(source, collector), "rq", "emails", "queued") == 0  # remembered, so it reads 0


def test_a_killed_worker_leaves_its_job_visible(server: RedisServer) -> None:
    """SIGKILL a real `rq worker` mid-job: the job stays in RQ's started registry, and so in the series."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    client = server.client()
    Queue("emails", connection=client).enqueue(linger, 60)
    worker = subprocess.Popen([sys.executable, "-m", "rq.cli", "worker", "--url", server.url, "emails"],
                              cwd=Path(__file__).resolve().parents[3], start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    collector = QueuesCollector()
    try:
        with real_source(server.url, _options("rq:rq:queue:*")) as source:
            deadline = time.monotonic() + 30
            while _depth(poll(source, collector), "rq", "emails", "started") != 1:
                assert time.monotonic() < deadline, "the worker never started the job"
                time.sleep(0.2)
            os.killpg(worker.pid, signal.SIGKILL)  # the worker and its work horse, no cleanup
            worker.wait(10)
            time.sleep(0.5)
            families = poll(source, collector)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    assert _depth(families, "rq", "emails", "started") == 1  # not silently gone
    assert _depth(families, "rq", "emails", "queued") == 0


def test_an_rq_queue_drained_before_the_first_poll_is_found(server: RedisServer) -> None:
    """A worker faster than the poll leaves no list to SCAN: RQ's own rq:queues set still names it."""
    client = server.client()
    reports = Queue("reports", connection=client)
    reports.enqueue(succeed, 1)
    RqWorker([reports], connection=client).work(burst=True)
    assert not client.exists("rq:queue:reports")
    with real_source(server.url, _options("rq:rq:queue:*")) as source:
        families = poll(source, QueuesCollector())
    assert _depth(families, "rq", "reports", "queued") == 0
