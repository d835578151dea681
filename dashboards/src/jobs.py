"""Jobs: do the background queues drain, do the jobs succeed, and which requests should be jobs?

Queue depth by state, the oldest waiting job's age, workers and stream lag per queue, read from
Redis by the exporter (``--redis-queue``); wait and run time, throughput and failures by task from
the instrumented workers (``job_*``, with exemplars linking runs to their traces); and, for the
checklist's "synchronous processing" pitfall, the routes whose typical request takes as long as a
job should. Queue series carry ``server`` (the Redis), ``system`` and ``queue``.
"""

from __future__ import annotations

from grafanalib.core import Dashboard

from alerts.catalog import LATENCY_BY_ROUTE
from stackwatch.promql import job_queue_oldest_age
from stackwatch.thresholds import JOBS, RATE_WINDOW

from ..common import Grid, dashboard, label_variable, no_threshold, q, selector, stat, timeseries, too_high

__all__ = ["build"]

S = selector("job", "instance", "server", "system", "queue")
#: the worker-side families have no ``server`` or ``instance`` of a Redis: the system and queue pick them
W = selector("system", "queue")
WINDOW = "$__rate_interval"
FINISHED = f'sum by (task) (rate(jobs_total{{{W},result=~"success|failure"}}[{RATE_WINDOW}]))'
#: failed runs per second, 0 for tasks that never failed (so their ratio shows as 0, not as nothing)
FAILED = f'sum by (task) (rate(jobs_total{{{W},result="failure"}}[{RATE_WINDOW}]))'
QUEUED = f'job_queue_depth{{{S},state="queued"}}'
OLDEST = job_queue_oldest_age("system, queue", S)


def _overview(g: Grid) -> None:
    g.row("Overview")
    g.add(stat("Jobs waiting", "Jobs queued and not yet taken by a worker, all queues.",
               f"sum({QUEUED})", "short", no_threshold()), w=6, h=4)
    g.add(stat("Oldest waiting job", "How long the longest-waiting job has waited; red past the "
               "alert's threshold.", f"max({OLDEST})", "s", too_high(JOBS.oldest_age_seconds)), w=6, h=4)
    g.add(stat("Queues with work and no workers", "Queues where jobs wait and no worker is registered "
               "(RQ workers, stream consumers): nothing will run those jobs.",
               f"count(job_queue_workers{{{S}}} == 0 and on (job, instance, server, system, queue) {QUEUED} > 0)"
               " or vector(0)", "short", too_high(0)), w=6, h=4)
    g.add(stat("Failed jobs kept", "Jobs in the failed registries or dead-letter queues.",
               f'sum(job_queue_depth{{{S},state="failed"}})', "short", no_threshold()), w=6, h=4)


def _queues(g: Grid) -> None:
    g.row("Queues")
    g.add(timeseries("Queued jobs by queue", "Is the backlog draining? A line that keeps rising means the "
                     "workers no longer keep up.", [
        (f"sum by (system, queue) ({QUEUED})", "{{system}} {{queue}}"),
    ], "short"), w=12)
    g.add(timeseries("Jobs by state", "Queued, started, failed, deferred, scheduled, delayed... across the "
                     "selected queues.", [
        (f"sum by (state) (job_queue_depth{{{S}}})", "{{state}}"),
    ], "short", stacked=True), w=12)
    g.add(timeseries("Oldest waiting job by queue", "How late the next job to run already is; past the "
                     "dashed line JobQueueOldestJobTooOld fires.", [
        (OLDEST, "{{system}} {{queue}}"),
    ], "s", thresholds=too_high(JOBS.oldest_age_seconds)), w=8)
    g.add(timeseries("Workers by queue", "Workers registered for each queue (RQ) or stream consumers.", [
        (f"sum by (system, queue) (job_queue_workers{{{S}}})", "{{system}} {{queue}}"),
    ], "short"), w=8)
    g.add(timeseries("Stream consumer lag", "Entries not yet delivered to each consumer group.", [
        q(f"sum by (queue, group) (job_queue_consumer_lag{{{S}}})", "{{queue}} {{group}}",
          empty_reason="only stream queues with consumer groups have a lag (the demo's queue is RQ)"),
    ], "short"), w=8)


def _runs(g: Grid) -> None:
    g.row("Runs (instrumented workers)")
    g.add(timeseries("Jobs finished by result", "Runs per second by result; retries run again later.", [
        (f"sum by (result) (rate(jobs_total{{{W}}}[{WINDOW}]))", "{{result}}"),
    ], "ops", stacked=True), w=8)
    g.add(timeseries("Failure ratio by task", "Share of finished runs that failed for good; past the dashed "
                     "line JobFailureRatioHigh fires.", [
        (f"({FAILED} or {FINISHED} * 0) / {FINISHED}", "{{task}}"),
    ], "percentunit", thresholds=too_high(JOBS.failure_ratio)), w=8)
    g.add(timeseries("Wait before start, p95 by task", "Enqueue to start: how long jobs sit in the queue.", [
        (f"histogram_quantile(0.95, sum by (task, le) (rate(job_wait_duration_seconds_bucket{{{W}}}[{WINDOW}])))",
         "{{task}}"),
    ], "s"), w=8)
    g.add(timeseries("Run time, p50/p95 by task", "How long each task runs; the dots are exemplars linking a "
                     "run to its trace, which starts at the request that enqueued it.", [
        q(f"histogram_quantile(0.95, sum by (task, le) (rate(job_run_duration_seconds_bucket{{{W}}}[{WINDOW}])))",
          "{{task}} p95", exemplar=True),
        (f"histogram_quantile(0.5, sum by (task, le) (rate(job_run_duration_seconds_bucket{{{W}}}[{WINDOW}])))",
         "{{task}} p50"),
    ], "s"), w=24)


def _work_that_should_be_a_job(g: Grid) -> None:
    g.row("Work that should be a job")
    g.add(timeseries("Routes' p95 latency against the background-job line", "Routes above the dashed line "
                     "keep their typical client waiting for long work (the checklist's synchronous-processing "
                     "pitfall): enqueue it as a job and answer 202.", [
        (f'max by (job, http_route) ({LATENCY_BY_ROUTE}{{{selector(quantile="0.95")}}})', "{{job}} {{http_route}}"),
    ], "s", thresholds=too_high(JOBS.synchronous_route_p95_seconds)), w=24)


def build() -> Dashboard:
    g = Grid()
    _overview(g)
    _queues(g)
    _runs(g)
    _work_that_should_be_a_job(g)
    return dashboard("jobs", __doc__.split("\n")[0], g, [
        label_variable("job", "job", "job_queue_depth"),
        label_variable("instance", "instance", "job_queue_depth", parents=["job"]),
        label_variable("server", "server", "job_queue_depth", parents=["job", "instance"]),
        label_variable("system", "system", "job_queue_depth", parents=["job", "instance", "server"]),
        label_variable("queue", "queue", "job_queue_depth", parents=["job", "instance", "server", "system"]),
    ])
