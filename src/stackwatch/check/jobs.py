"""Async processing items: do the job queues drain (``redis.queues``), and which requests do work
a background job should (``app.async_processing``).

The queue verdict is the same whether the queues are read from Redis directly (the exporter's
queue reader, :meth:`~stackwatch.core.redis.queues.QueueReader.read`) or from the
exporter's ``job_queue_*`` series in Prometheus: a queue fails when jobs wait and no worker is
registered for it, or when its oldest job has waited past the threshold; failures by task come
from the workers' ``jobs_total`` when Prometheus has them. Standard library only.
"""

from __future__ import annotations

from collections.abc import Sequence

from stackwatch.core.redis.queue_spec import QueueReading

from ..promql import http_request_quantile
from ..thresholds import HTTP, JOBS, RATE_WINDOW, HttpThresholds, JobThresholds
from .items import ASYNC, QUEUES
from .model import Finding, Status
from .promapi import Prometheus

__all__ = ["async_processing_finding", "queues_finding", "queues_from_prometheus"]

QUEUE_FIX = ("start (or scale) the workers of those queues and check they listen to the queue's name; give "
             "long jobs a queue of their own")


def _name(reading: QueueReading) -> str:
    return f"{reading.system} {reading.queue}"


def _queued(reading: QueueReading) -> int:
    return reading.depth.get("queued", 0)


def queues_finding(readings: Sequence[QueueReading], where: str, failures: Sequence[tuple[float, str]] = (),
                   jobs: JobThresholds = JOBS) -> Finding:
    """The verdict on ``readings`` (read ``where``); ``failures`` are (ratio, task) of busy tasks."""
    if not readings:
        return QUEUES.finding(Status.UNKNOWN, f"no job queues found ({where})",
                              "name the queues with --redis-queue SYSTEM:PATTERN (e.g. celery:emails)")
    unworked = [r for r in readings if r.workers == 0 and _queued(r) > 0]
    late = [r for r in readings if (r.oldest_age_seconds or 0) > jobs.oldest_age_seconds]
    failing = [(ratio, task) for ratio, task in failures if ratio > jobs.failure_ratio]
    waiting = sum(_queued(r) for r in readings)
    evidence = f"{len(readings)} queue(s), {waiting} job(s) waiting ({where})"
    problems = ["no worker for " + ", ".join(f"{_name(r)} ({_queued(r)} waiting)" for r in unworked)
                if unworked else "",
                f"oldest job over {jobs.oldest_age_seconds:g}s in " + ", ".join(
                    f"{_name(r)} ({r.oldest_age_seconds:.0f}s)" for r in late) if late else "",
                f"failure ratio over {jobs.failure_ratio:.0%}: " + ", ".join(
                    f"{task} {ratio:.0%}" for ratio, task in sorted(failing, reverse=True)) if failing else ""]
    problems = [p for p in problems if p]
    if unworked or late:
        return QUEUES.finding(Status.FAIL, evidence + "; " + "; ".join(problems), QUEUE_FIX)
    if failing:
        return QUEUES.finding(Status.WARN, evidence + "; " + "; ".join(problems),
                              "look at the failing task's errors (Sentry events carry the trace id)")
    oldest = max((r.oldest_age_seconds or 0 for r in readings), default=0)
    return QUEUES.finding(Status.PASS, evidence + f"; oldest waiting job {oldest:.0f}s")


def _by_queue(prom: Prometheus, promql: str) -> dict[tuple[str, str], float]:
    return {(m.get("system", ""), m.get("queue", "")): v for m, v in prom.query(promql)}


def job_failures(prom: Prometheus, jobs: JobThresholds = JOBS) -> list[tuple[float, str]]:
    """(failure ratio, task) over the rules' window for tasks busier than the traffic guard."""
    finished = {m.get("task", ""): v for m, v in prom.query(
        f'sum by (task) (rate(jobs_total{{result=~"success|failure"}}[{RATE_WINDOW}]))')}
    failed = {m.get("task", ""): v for m, v in prom.query(
        f'sum by (task) (rate(jobs_total{{result="failure"}}[{RATE_WINDOW}]))')}
    return [(failed.get(task, 0.0) / n, task) for task, n in finished.items() if n >= jobs.min_jobs_per_second]


def queues_from_prometheus(prom: Prometheus, jobs: JobThresholds = JOBS) -> Finding | None:
    """The queue verdict from the exporter's ``job_queue_*`` series; None when it has none."""
    depth = _by_queue(prom, 'sum by (system, queue) (job_queue_depth{state="queued"})')
    if not depth:
        return None
    workers = _by_queue(prom, "sum by (system, queue) (job_queue_workers)")
    oldest = _by_queue(prom, "max by (system, queue) (job_queue_oldest_age_seconds)")
    readings = [QueueReading(system, queue, {"queued": int(n)}, oldest.get((system, queue)),
                             None if (system, queue) not in workers else int(workers[(system, queue)]))
                for (system, queue), n in sorted(depth.items())]
    return queues_finding(readings, "the exporter's series in Prometheus", job_failures(prom, jobs), jobs)


def async_processing_finding(prom: Prometheus, http: HttpThresholds = HTTP, jobs: JobThresholds = JOBS) -> Finding:
    """Routes whose p95 over the rules' window stays above the background-job line."""
    p95 = http_request_quantile(0.95, "job, http_route", RATE_WINDOW, http.min_requests_per_second)
    routes = sorted(((v, f"{m.get('http_route', '?')} in {m.get('job', '?')}") for m, v in prom.query(p95)
                     if v == v), reverse=True)  # NaN: no requests in a bucket range
    if not routes:
        return ASYNC.finding(Status.UNKNOWN, "no route with more than "
                             f"{http.min_requests_per_second:g} req/s in http_server_request_duration_seconds",
                             "instrument the service with stackwatch.instrumentation and let it serve traffic")
    slow = [(v, r) for v, r in routes if v > jobs.synchronous_route_p95_seconds]
    evidence = f"{len(routes)} busy route(s); p95 over {RATE_WINDOW}: " + ", ".join(
        f"{route} {value:.2f}s" for value, route in (slow or routes)[:5])
    if slow:
        return ASYNC.finding(Status.FAIL, evidence + f" > {jobs.synchronous_route_p95_seconds:g}s",
                             "move the long work of those routes to a background job (RQ, Celery, arq, "
                             "Dramatiq) and answer 202 with a status URL")
    return ASYNC.finding(Status.PASS, evidence)
