"""RQ: job metrics, trace context from the enqueuing request, N+1 inside jobs.

``instrument_rq()`` wraps two methods for the whole process, as OpenTelemetry's instrumentors
do: ``Queue.enqueue_job`` stores the trace context and the enqueue time in ``job.meta`` (saved
with the job), and ``Job.perform`` runs the job inside its span and records the run. Call it in
the producer (the web app) and in the worker (for instance in the module RQ imports the job
functions from, or a custom worker class). A failure with retries left counts as ``retry``.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from prometheus_client import CollectorRegistry
from rq.job import Job
from rq.queue import Queue

from .jobs import JobTracker

__all__ = ["instrument_rq", "uninstrument_rq"]

_ORIGINAL: dict[str, Any] = {}


def instrument_rq(*, registry: CollectorRegistry | None = None, tracer_provider: trace.TracerProvider | None = None,
                  n_plus_one_threshold: int | None = None, n_plus_one_strict: bool = False) -> None:
    """Measure and trace every RQ job of this process (idempotent; :func:`uninstrument_rq` undoes it)."""
    if _ORIGINAL:
        return
    options = {} if n_plus_one_threshold is None else {"n_plus_one_threshold": n_plus_one_threshold}
    tracker = JobTracker("rq", registry=registry, tracer_provider=tracer_provider,
                         n_plus_one_strict=n_plus_one_strict, **options)
    enqueue_job, perform = Queue.enqueue_job, Job.perform

    def traced_enqueue_job(self: Queue, job: Job, *args: Any, **kwargs: Any) -> Job:
        tracker.carrier(job.meta)
        return enqueue_job(self, job, *args, **kwargs)

    def traced_perform(self: Job) -> Any:
        run = tracker.start(self.origin, self.func_name or "unknown", self.meta)
        try:
            result = perform(self)
        except BaseException as error:
            run.finish("retry" if (self.retries_left or 0) > 0 else "failure", error)
            raise
        run.finish("success")
        return result

    _ORIGINAL.update(enqueue_job=enqueue_job, perform=perform)
    Queue.enqueue_job = traced_enqueue_job  # type: ignore[method-assign]
    Job.perform = traced_perform  # type: ignore[method-assign]


def uninstrument_rq() -> None:
    """Put RQ's own methods back."""
    if not _ORIGINAL:
        return
    Queue.enqueue_job = _ORIGINAL.pop("enqueue_job")  # type: ignore[method-assign]
    Job.perform = _ORIGINAL.pop("perform")  # type: ignore[method-assign]
