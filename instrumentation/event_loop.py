"""Event-loop lag, and the routes that block the loop: the synchronous-processing pitfall of async services.

An async service answers every request on one event loop. A synchronous call in an ``async def``
endpoint (``time.sleep``, a blocking client, heavy computation) holds the loop, and every other
request waits that long. From an instrumented app's first request on, for each loop it serves on:

* ``python_event_loop_lag_seconds`` (histogram): a heartbeat callback, due every half threshold,
  records how late the loop ran it;
* ``http_server_event_loop_blocked_seconds_total{http_route}``: a heartbeat at least the threshold
  late (``event_loop_block_threshold``, 100 ms by default) is a blocked loop, and its lateness is
  charged to the route of the request that held the loop. A watchdog thread finds that request:
  while the heartbeat is overdue it reads which task the loop is running (the thread gets the GIL:
  a blocking call releases it, pure Python computation yields it every few milliseconds), and the
  middleware registered each request's task; a task it does not know (the inner task of a
  ``BaseHTTPMiddleware``, ``@app.middleware("http")``) is matched by the request ``scope`` among the
  locals of the loop thread's frames. Blocking outside any request (a task the app created on its
  own) shows in the lag only.

The lateness undercounts a stall by at most half a threshold (the heartbeat falls due after the
stall began). The cost is two callbacks per threshold on the loop and a thread that wakes as often
while requests are in flight; with none, a stall has no request to be charged to, and the thread
waits for the next one (looking at the loop once a second, to notice a stopped or closed loop).
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import weakref
from typing import Any

from .metrics import Metrics, observe
from .routes import RouteTemplates

__all__ = ["LoopWatch"]

# (scope, route before routing, root_path before routing, the resolver of the app's templates)
_Request = tuple[Any, Any, str, RouteTemplates]
_IDLE_LOOK = 1.0  # seconds between the watchdog's looks at a loop that serves no request


class _LoopMonitor:
    """The heartbeat on one loop and its watchdog thread, for one set of metrics."""

    def __init__(self, loop: asyncio.AbstractEventLoop, metrics: Metrics, threshold: float) -> None:
        self.loop = loop
        self.requests: dict[Any, _Request] = {}
        self.threshold = threshold
        self.interval = threshold / 2
        self._lag = metrics.event_loop_lag
        self._blocked = metrics.event_loop_blocked
        self._suspect: _Request | None = None
        self._paused = False
        self.idle = False  # the watchdog waits for a request: LoopWatch.enter sets ``wake``
        self.wake = threading.Event()
        self._thread = threading.get_ident()  # created on the loop's thread, by a request
        # time.monotonic, not loop.time(): uvloop's clock stands still while the loop is blocked.
        self._due = time.monotonic() + self.interval
        loop.call_later(self.interval, self._beat)
        threading.Thread(target=self._watch, name="stackwatch-event-loop-watchdog", daemon=True).start()

    def _beat(self) -> None:
        """On the loop: record the lateness; charge a blocking one to the suspect; schedule the next."""
        now = time.monotonic()
        lag = max(now - self._due, 0.0)
        suspect, self._suspect = self._suspect, None
        if self._paused:  # the loop was stopped in between (run_until_complete): not a lag
            self._paused = False
        else:
            observe(self._lag, lag)
            if lag >= self.threshold and suspect is not None:
                scope, entry_route, entry_root, templates = suspect
                self._blocked.labels(templates.template(scope, entry_route, entry_root)).inc(lag)
        self._due = now + self.interval
        self.loop.call_later(self.interval, self._beat)

    def _watch(self) -> None:
        """On the watchdog thread: while the heartbeat is overdue, note the request the loop runs."""
        loop = self.loop
        while not loop.is_closed():
            if not self.requests:
                # No request to charge a stall to: wait for one (LoopWatch.enter sets ``wake``).
                self.idle = True
                # looked again after saying so: no request goes unnoticed
                woken = bool(self.requests) or self.wake.wait(_IDLE_LOOK)
                self.idle = False
                self.wake.clear()
                if not woken:
                    if not loop.is_running():
                        self._paused = True
                    continue
                # Woken by a request: look after the interval as while one is in flight, even if it
                # is over by then; idling again at once would take the GIL from the loop per request.
            time.sleep(self.interval)
            if not loop.is_running():
                self._paused = True
            elif self._suspect is None and time.monotonic() >= self._due:
                # The first request seen in a stall holds it (it ran since before the heartbeat
                # was due); a later look could catch the next task the moment the loop is back.
                task = asyncio.current_task(loop)
                request = self.requests.get(task) if task is not None else None
                if request is None and task is not None:
                    request = self._request_on_stack()
                if request is not None:
                    self._suspect = request

    def _request_on_stack(self) -> _Request | None:
        """The request whose ``scope`` a frame of the (stuck) loop thread holds, innermost first."""
        by_scope = {id(request[0]): request for request in list(self.requests.values())}
        frame = sys._current_frames().get(self._thread)
        while frame is not None and by_scope:
            scope = frame.f_locals.get("scope")
            if scope is not None and id(scope) in by_scope:
                return by_scope[id(scope)]
            frame = frame.f_back
        return None


_lock = threading.Lock()
_monitors: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, weakref.WeakKeyDictionary[Metrics, _LoopMonitor]] = (
    weakref.WeakKeyDictionary())


def _monitor(loop: asyncio.AbstractEventLoop, metrics: Metrics, threshold: float) -> _LoopMonitor:
    """The monitor of ``loop`` for ``metrics``, started on first use (one per loop and registry)."""
    with _lock:
        by_metrics = _monitors.setdefault(loop, weakref.WeakKeyDictionary())
        monitor = by_metrics.get(metrics)
        if monitor is None:
            monitor = by_metrics[metrics] = _LoopMonitor(loop, metrics, threshold)
        return monitor


class LoopWatch:
    """The middleware's side: registers the task of each request while it runs."""

    def __init__(self, metrics: Metrics, templates: RouteTemplates, threshold: float) -> None:
        self.metrics = metrics
        self.templates = templates
        self.threshold = threshold
        self._monitor: _LoopMonitor | None = None

    def enter(self, scope: Any, entry_route: Any, entry_root: str) -> tuple[_LoopMonitor, Any, _Request] | None:
        """Register the current task as serving ``scope``; the token for :meth:`leave` (None outside a task)."""
        task = asyncio.current_task()
        if task is None:
            return None
        monitor = self._monitor
        loop = task.get_loop()
        if monitor is None or monitor.loop is not loop:
            monitor = self._monitor = _monitor(loop, self.metrics, self.threshold)
        request = (scope, entry_route, entry_root, self.templates)
        monitor.requests[task] = request
        if monitor.idle:  # woken once, not by every request until the watchdog thread gets the GIL
            monitor.idle = False
            monitor.wake.set()
        return monitor, task, request

    @staticmethod
    def leave(token: tuple[_LoopMonitor, Any, _Request]) -> None:
        monitor, task, request = token
        if monitor.requests.get(task) is request:
            del monitor.requests[task]
