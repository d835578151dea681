"""Dramatiq: job metrics, trace context from the enqueuing request, N+1 inside actors.

``instrument_dramatiq(broker)`` adds a broker middleware: ``before_enqueue`` stores the trace
context and the enqueue time in ``message.options`` (which travel with the message; a delayed or
retried message waits from when it was due, Dramatiq's ``eta``),
``before_process_message``/``after_process_message`` open and close the run. It sits before
Dramatiq's ``Retries`` middleware, so when it records a failed run Retries has already decided:
a message it failed for good is ``failure``, one it will retry is ``retry``.
"""

from __future__ import annotations

from typing import Any

from dramatiq import Broker, Middleware
from dramatiq.middleware import Retries
from opentelemetry import trace
from prometheus_client import CollectorRegistry

from .jobs import JobRun, JobTracker, Result

__all__ = ["StackwatchJobsMiddleware", "instrument_dramatiq", "uninstrument_dramatiq"]

_CARRIER = "stackwatch"


class StackwatchJobsMiddleware(Middleware):
    """The broker middleware behind :func:`instrument_dramatiq`."""

    def __init__(self, tracker: JobTracker) -> None:
        self.tracker = tracker
        self._runs: dict[str, JobRun] = {}

    def before_enqueue(self, broker: Broker, message: Any, delay: int) -> None:
        # a delayed message is enqueued again when its time comes, and a retried one after a
        # failure: both keep the trace of the request that first enqueued them
        message.options.setdefault(_CARRIER, dict(self.tracker.carrier()))

    def before_process_message(self, broker: Broker, message: Any) -> None:
        eta = message.options.get("eta")  # delays and retry backoffs: the wait starts when it is due
        self._runs[message.message_id] = self.tracker.start(
            message.queue_name.removesuffix(".DQ"), message.actor_name, message.options.get(_CARRIER),
            enqueued_at=eta / 1000 if isinstance(eta, (int, float)) else None)

    def after_process_message(self, broker: Broker, message: Any, *, result: Any = None,
                              exception: BaseException | None = None) -> None:
        run = self._runs.pop(message.message_id, None)
        if run is not None:
            outcome: Result = "success" if exception is None else ("failure" if message.failed else "retry")
            run.finish(outcome, exception)

    def after_skip_message(self, broker: Broker, message: Any) -> None:
        run = self._runs.pop(message.message_id, None)
        if run is not None:
            run.finish("failure")


def instrument_dramatiq(broker: Broker, *, registry: CollectorRegistry | None = None,
                        tracer_provider: trace.TracerProvider | None = None, n_plus_one_threshold: int | None = None,
                        n_plus_one_strict: bool = False) -> StackwatchJobsMiddleware:
    """Add the middleware to ``broker`` (idempotent: the same middleware comes back)."""
    for middleware in broker.middleware:
        if isinstance(middleware, StackwatchJobsMiddleware):
            return middleware
    options = {} if n_plus_one_threshold is None else {"n_plus_one_threshold": n_plus_one_threshold}
    middleware = StackwatchJobsMiddleware(JobTracker("dramatiq", registry=registry, tracer_provider=tracer_provider,
                                                     n_plus_one_strict=n_plus_one_strict, **options))
    has_retries = any(isinstance(m, Retries) for m in broker.middleware)
    broker.add_middleware(middleware, before=Retries if has_retries else None)
    return middleware


def uninstrument_dramatiq(broker: Broker) -> None:
    """Remove the middleware :func:`instrument_dramatiq` added."""
    broker.middleware[:] = [m for m in broker.middleware if not isinstance(m, StackwatchJobsMiddleware)]
