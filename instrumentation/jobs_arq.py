"""arq: job metrics, trace context from the enqueuing request, N+1 inside jobs.

arq has no message headers and its worker hooks see neither the function nor the outcome, so
``instrument_arq()`` wraps three things for the whole process, as OpenTelemetry's instrumentors do:

* ``serialize_job`` (producer side, ``ArqRedis.enqueue_job``) adds the trace context under one
  extra key of the job's serialized dict; arq reads only its own keys, so a worker without
  stackwatch runs these jobs unchanged, and this worker runs jobs enqueued without it (no parent);
* ``deserialize_job_raw`` (worker side) hands that context to the run, in the job's own task;
* ``Worker.__init__`` wraps each registered function (cron jobs included) so that its run is
  measured under its arq name, on the worker's queue (``arq:queue`` by default, the name the
  exporter's ``queues`` collector uses). The wait is measured from arq's own enqueue time.

Results: a return is ``success``; ``arq.worker.Retry`` is ``retry``; a cancellation before the
function's timeout is ``retry`` (arq re-runs jobs of a worker that shuts down); anything else,
timeouts included, is ``failure``. Workers created before ``instrument_arq()`` are not measured.
Call it in the producer (the web app) and in the worker (for instance in the settings module).
"""

from __future__ import annotations

import asyncio
import functools
import pickle
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import replace
from typing import Any

import arq.connections
import arq.worker
from arq.worker import Retry, Worker
from opentelemetry import trace
from prometheus_client import CollectorRegistry

from .jobs import JobTracker, Result

__all__ = ["CARRIER_KEY", "instrument_arq", "uninstrument_arq"]

#: the key of arq's serialized job dict that holds the trace context
CARRIER_KEY = "stackwatch"

_carrier: ContextVar[dict[str, Any] | None] = ContextVar("stackwatch_arq_carrier", default=None)
_ORIGINAL: dict[str, Any] = {}


def _outcome(error: BaseException, elapsed: float, timeout_s: float | None) -> Result:
    if isinstance(error, Retry):
        return "retry"
    if isinstance(error, asyncio.CancelledError) and (timeout_s is None or elapsed < timeout_s):
        return "retry"
    return "failure"


def _measured(tracker: JobTracker, worker: Worker, name: str, coroutine: Callable[..., Awaitable[Any]],
              timeout_s: float | None) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(coroutine)
    async def run_measured(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        enqueued = ctx.get("enqueue_time")
        run = tracker.start(worker.queue_name, name, _carrier.get(),
                            enqueued_at=enqueued.timestamp() if enqueued is not None else None)
        try:
            result = await coroutine(ctx, *args, **kwargs)
        except BaseException as error:
            run.finish(_outcome(error, run.elapsed(), timeout_s), error)
            raise
        run.finish("success")
        return result

    run_measured.__stackwatch_wrapped__ = coroutine  # type: ignore[attr-defined]
    return run_measured


def instrument_arq(*, registry: CollectorRegistry | None = None, tracer_provider: trace.TracerProvider | None = None,
                   n_plus_one_threshold: int | None = None, n_plus_one_strict: bool = False) -> None:
    """Measure and trace every arq job of this process (idempotent; :func:`uninstrument_arq` undoes it)."""
    if _ORIGINAL:
        return
    options = {} if n_plus_one_threshold is None else {"n_plus_one_threshold": n_plus_one_threshold}
    tracker = JobTracker("arq", registry=registry, tracer_provider=tracer_provider,
                         n_plus_one_strict=n_plus_one_strict, **options)
    serialize_job, deserialize_job_raw, worker_init = (
        arq.connections.serialize_job, arq.worker.deserialize_job_raw, Worker.__init__)

    def traced_serialize_job(*args: Any, serializer: Callable[[dict[str, Any]], bytes] | None = None,
                             **kwargs: Any) -> bytes:
        carrier = dict(tracker.carrier())
        dump = serializer or pickle.dumps
        serialized: bytes = serialize_job(*args, serializer=lambda data: dump({**data, CARRIER_KEY: carrier}),
                                          **kwargs)
        return serialized

    def traced_deserialize_job_raw(raw: bytes, *, deserializer: Callable[[bytes], Any] | None = None) -> Any:
        load = deserializer or pickle.loads

        def load_carrier(payload: bytes) -> Any:
            data = load(payload)
            carrier = data.get(CARRIER_KEY) if isinstance(data, dict) else None
            _carrier.set(carrier if isinstance(carrier, dict) else None)
            return data

        return deserialize_job_raw(raw, deserializer=load_carrier)

    def traced_init(self: Worker, *args: Any, **kwargs: Any) -> None:
        worker_init(self, *args, **kwargs)
        for name, function in list(self.functions.items()):
            timeout_s = function.timeout_s if function.timeout_s is not None else self.job_timeout_s
            coroutine = _measured(tracker, self, name, function.coroutine, timeout_s)
            self.functions[name] = replace(function, coroutine=coroutine)

    _ORIGINAL.update(serialize_job=serialize_job, deserialize_job_raw=deserialize_job_raw, worker_init=worker_init)
    arq.connections.serialize_job = traced_serialize_job
    arq.worker.deserialize_job_raw = traced_deserialize_job_raw
    Worker.__init__ = traced_init


def uninstrument_arq() -> None:
    """Put arq's own functions back (workers created meanwhile keep measuring)."""
    if not _ORIGINAL:
        return
    arq.connections.serialize_job = _ORIGINAL.pop("serialize_job")
    arq.worker.deserialize_job_raw = _ORIGINAL.pop("deserialize_job_raw")
    Worker.__init__ = _ORIGINAL.pop("worker_init")
