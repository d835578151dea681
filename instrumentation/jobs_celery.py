"""Celery: job metrics, trace context from the enqueuing request, N+1 inside tasks.

``instrument_celery(app)`` connects to Celery's signals: ``before_task_publish`` puts the trace
context and the enqueue time into the message headers (Celery hands custom headers to the task as
``task.request`` attributes), ``task_prerun``/``task_postrun`` open and close the run,
``task_failure`` keeps the exception for the span. Only tasks of ``app`` are measured.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, signals
from opentelemetry import trace
from prometheus_client import CollectorRegistry

from .jobs import ENQUEUED_AT, JobRun, JobTracker, Result

__all__ = ["instrument_celery", "uninstrument_celery"]

_STATES: dict[str, Result] = {"SUCCESS": "success", "FAILURE": "failure", "RETRY": "retry"}
_SIGNALS = ("before_task_publish", "task_prerun", "task_failure", "task_postrun")


class _CeleryHooks:
    def __init__(self, app: Celery, tracker: JobTracker) -> None:
        self.app = app
        self.tracker = tracker
        self.runs: dict[str, JobRun] = {}
        self.errors: dict[str, BaseException] = {}

    def before_task_publish(self, headers: dict[str, Any] | None = None, **_: Any) -> None:
        if headers is not None:
            self.tracker.carrier(headers)

    def task_prerun(self, task_id: str = "", task: Any = None, **_: Any) -> None:
        if task is None or task.app is not self.app:
            return
        request = task.request
        carrier = {key: getattr(request, key, None) for key in ("traceparent", "tracestate", ENQUEUED_AT)}
        queue = (request.delivery_info or {}).get("routing_key") or "celery"
        self.runs[task_id] = self.tracker.start(queue, task.name, {k: v for k, v in carrier.items() if v})

    def task_failure(self, task_id: str = "", exception: BaseException | None = None, **_: Any) -> None:
        if exception is not None and task_id in self.runs:
            self.errors[task_id] = exception

    def task_postrun(self, task_id: str = "", state: str | None = None, **_: Any) -> None:
        run = self.runs.pop(task_id, None)
        if run is not None:
            run.finish(_STATES.get(state or "", "failure"), self.errors.pop(task_id, None))


def instrument_celery(app: Celery, *, registry: CollectorRegistry | None = None,
                      tracer_provider: trace.TracerProvider | None = None, n_plus_one_threshold: int | None = None,
                      n_plus_one_strict: bool = False) -> None:
    """Measure and trace ``app``'s tasks (idempotent; :func:`uninstrument_celery` undoes it)."""
    if getattr(app, "_stackwatch_hooks", None) is not None:
        return
    options = {} if n_plus_one_threshold is None else {"n_plus_one_threshold": n_plus_one_threshold}
    hooks = _CeleryHooks(app, JobTracker("celery", registry=registry, tracer_provider=tracer_provider,
                                         n_plus_one_strict=n_plus_one_strict, **options))
    for name in _SIGNALS:
        getattr(signals, name).connect(getattr(hooks, name), weak=False, dispatch_uid=f"stackwatch-{id(app)}-{name}")
    app._stackwatch_hooks = hooks


def uninstrument_celery(app: Celery) -> None:
    """Disconnect what :func:`instrument_celery` connected for ``app``."""
    if getattr(app, "_stackwatch_hooks", None) is None:
        return
    for name in _SIGNALS:
        getattr(signals, name).disconnect(dispatch_uid=f"stackwatch-{id(app)}-{name}")
    app._stackwatch_hooks = None
