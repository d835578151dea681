"""Background jobs measured where they run, and traced from the request that enqueued them.

The library adapters (:mod:`.jobs_celery`, :mod:`.jobs_rq`, :mod:`.jobs_dramatiq`, :mod:`.jobs_arq`)
only translate their hooks into the two calls here: :meth:`JobTracker.carrier` when a job is enqueued (the W3C
trace context and the enqueue time travel in the job's headers or metadata) and
:meth:`JobTracker.start` / :meth:`JobRun.finish` around its execution. That gives, in the same
registry and multiprocess mode as the HTTP metrics:

* ``job_wait_duration_seconds{system,queue,task}``: enqueue to start (from the carried time);
* ``job_run_duration_seconds{system,queue,task}``: start to finish, with the run's trace as exemplar;
* ``jobs_total{system,queue,task,result}``: ``success``, ``failure`` or ``retry``;
* one ``CONSUMER`` span per run whose parent is the enqueuing request's span, so one trace shows
  request -> queue wait -> job -> its SQL;
* the N+1 detector and ``db_client_queries_per_request`` inside jobs, with the task name as the
  ``http_route`` (so ``NPlusOneQueriesDetected`` names the task);
* with an active Sentry client, a scope per run whose events carry the run's trace id
  (:mod:`.jobs_sentry`).

No job id ever becomes a label.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Mapping, MutableMapping
from contextvars import Token
from dataclasses import dataclass
from typing import Any, Literal

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from .config import DEFAULT_N_PLUS_ONE_THRESHOLD
from .jobs_sentry import SentryJob
from .metrics import Metrics, get_metrics, multiprocess_active, observe
from .queries import NPlusOnePolicy, RequestQueries, request_queries
from .tracing import exemplar_labels, set_valid_attributes

__all__ = ["ENQUEUED_AT", "JOB_DURATION_BUCKETS", "JobMetrics", "JobRun", "JobTracker", "Result"]

Result = Literal["success", "failure", "retry"]

#: the carrier key holding the enqueue time (Unix seconds, as text)
ENQUEUED_AT = "stackwatch-enqueued-at"
#: jobs run for milliseconds to many minutes
JOB_DURATION_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
                        1800.0)


class JobMetrics:
    """The job families, registered once per registry (next to :class:`~.metrics.Metrics`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["system", "queue", "task"]
        self.wait = Histogram("job_wait_duration_seconds", "Time a job waited in its queue before it started.",
                              labels, buckets=JOB_DURATION_BUCKETS, registry=registry)
        self.run = Histogram("job_run_duration_seconds", "Time a job took to run.", labels,
                             buckets=JOB_DURATION_BUCKETS, registry=registry)
        self.jobs = Counter("jobs", "Job runs by result (success|failure|retry).", [*labels, "result"],
                            registry=registry)


_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, JobMetrics] = weakref.WeakKeyDictionary()


def _job_metrics(registry: CollectorRegistry) -> JobMetrics:
    metrics = _BY_REGISTRY.get(registry)
    if metrics is None:
        metrics = _BY_REGISTRY[registry] = JobMetrics(registry)
    return metrics


@dataclass
class _Children:
    """The label children of one (queue, task), looked up once: ``labels()`` costs more than an update."""

    wait: Any
    run: Any
    queries: Any
    results: dict[str, Any]
    jobs: Any
    labels: tuple[str, str, str]
    #: the span's name and attributes, valid already (set without the SDK checking them again)
    span_name: str
    attributes: dict[str, str]

    def result(self, result: str) -> Any:
        child = self.results.get(result)
        if child is None:
            child = self.results[result] = self.jobs.labels(*self.labels, result)
        return child


@dataclass
class JobRun:
    """One execution in progress; :meth:`finish` records it exactly once."""

    tracker: JobTracker
    queue: str
    task: str
    started: float
    span: Any
    context_token: object
    queries: RequestQueries
    queries_token: Token[RequestQueries | None]
    sentry: SentryJob | None = None
    finished: bool = False

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.time() - self.started

    def finish(self, result: Result, error: BaseException | None = None) -> None:
        if self.finished:
            return
        self.finished = True
        tracker = self.tracker
        elapsed = self.elapsed()
        exemplar = exemplar_labels(self.span) if tracker.exemplars else None
        children = tracker.children(self.queue, self.task)
        observe(children.run, elapsed, exemplar)
        children.result(result).inc()
        observe(children.queries, self.queries.count)
        if self.queries.flagged:
            tracker.metrics.n_plus_one.labels(self.task).inc(len(self.queries.flagged))
        self.span.set_attribute("messaging.operation.result", result)
        if error is not None:
            self.span.record_exception(error)
        if result == "failure":
            self.span.set_status(Status(StatusCode.ERROR, type(error).__name__ if error else None))
        if self.sentry is not None:
            self.sentry.end(result == "failure", error)
        request_queries.reset(self.queries_token)
        otel_context.detach(self.context_token)  # type: ignore[arg-type]
        self.span.end()


class JobTracker:
    """What the adapters share: metrics, the tracer and the N+1 settings for one job system."""

    def __init__(self, system: str, *, registry: CollectorRegistry | None = None,
                 tracer_provider: trace.TracerProvider | None = None,
                 n_plus_one_threshold: int = DEFAULT_N_PLUS_ONE_THRESHOLD, n_plus_one_strict: bool = False) -> None:
        registry = registry if registry is not None else REGISTRY
        self.system = system
        self.metrics: Metrics = get_metrics(registry)
        self.job_metrics = _job_metrics(registry)
        self.tracer = trace.get_tracer("stackwatch.instrumentation.jobs", tracer_provider=tracer_provider)
        self.n_plus_one = NPlusOnePolicy(n_plus_one_threshold, n_plus_one_strict)
        self.exemplars = not multiprocess_active()  # multiprocess files cannot hold exemplars
        self._children: dict[tuple[str, str], _Children] = {}

    def children(self, queue: str, task: str) -> _Children:
        """The metric children of ``(queue, task)``, created on first use."""
        found = self._children.get((queue, task))
        if found is None:
            labels = (self.system, queue, task)
            found = self._children[(queue, task)] = _Children(
                self.job_metrics.wait.labels(*labels), self.job_metrics.run.labels(*labels),
                self.metrics.queries_per_request.labels(task), {}, self.job_metrics.jobs, labels, f"process {queue}",
                {"messaging.system": self.system, "messaging.destination.name": queue,
                 "messaging.operation.type": "process", "code.function.name": task})
        return found

    def carrier(self, into: MutableMapping[str, Any] | None = None) -> MutableMapping[str, Any]:
        """``into`` plus the current trace context and the enqueue time, for the job's headers."""
        carrier: MutableMapping[str, Any] = {} if into is None else into
        propagate.inject(carrier)
        carrier[ENQUEUED_AT] = repr(time.time())
        return carrier

    def start(self, queue: str, task: str, carrier: Mapping[str, Any] | None = None,
              enqueued_at: float | None = None) -> JobRun:
        """Open the job's span (child of the enqueuing span), count its wait, scope its statements."""
        carrier = carrier or {}
        now = time.time()
        if enqueued_at is None:
            try:
                enqueued_at = float(carrier[ENQUEUED_AT])
            except (KeyError, TypeError, ValueError):
                enqueued_at = None
        children = self.children(queue, task)
        if enqueued_at is not None:
            observe(children.wait, max(0.0, now - enqueued_at))
        parent = propagate.extract({k: v for k, v in carrier.items() if isinstance(v, str)})
        span = self.tracer.start_span(children.span_name, context=parent, kind=SpanKind.CONSUMER)
        set_valid_attributes(span, children.attributes)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        queries = RequestQueries(self.n_plus_one)
        return JobRun(self, queue, task, now, span, token, queries, request_queries.set(queries),
                      SentryJob.begin(self.system, queue, task, span))
