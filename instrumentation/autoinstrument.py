"""Cooperation with OpenTelemetry auto-instrumentation and FastAPI's native telemetry: one span per request.

* ``opentelemetry-instrument`` (or ``FastAPIInstrumentor().instrument()`` / ``instrument_app``)
  wraps each FastAPI app in OpenTelemetry's ASGI middleware, which starts the server span.
  stackwatch places its middleware just inside that middleware (or, without it, just inside
  Starlette's outermost ``ServerErrorMiddleware``, which is where ``instrument_app`` expects to
  find it when it is called after :func:`instrument`); the middleware then adopts the span that is
  already current instead of starting a second one (see ``StackwatchMiddleware``).
* The launcher instruments every FastAPI app, also one mounted in another, whose middleware then
  adds a second, INTERNAL span (and its send/receive spans) for the same request. In the apps
  mounted in an instrumented app, stackwatch builds the stack without that inner middleware.
* Recent FastAPI releases start their own server span per app, and for a mounted FastAPI app
  that span starts a new, unlinked trace, with operation spans under it. stackwatch turns that
  tracing off for the app and every FastAPI app mounted in it.

:class:`Cooperation` records each change so that ``uninstrument`` undoes it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

from starlette.middleware.errors import ServerErrorMiddleware

__all__ = ["Cooperation", "insert_middleware"]

_MAX_DEPTH = 16


def _otel_middleware(node: Any) -> bool:
    cls = type(node)
    return cls.__module__ == "opentelemetry.instrumentation.asgi" and cls.__name__ == "OpenTelemetryMiddleware"


def _outer_chain(stack: Any) -> Iterator[tuple[Any, Any]]:
    """``(parent, node)`` down the server-error and OpenTelemetry middlewares at the top of ``stack``."""
    parent = None
    node = stack
    for _ in range(_MAX_DEPTH):
        yield parent, node
        if not (isinstance(node, ServerErrorMiddleware) or _otel_middleware(node)):
            return
        parent, node = node, node.app


def insert_middleware(stack: Any, wrap: Callable[[Any], Any]) -> Any:
    """``stack`` with ``wrap(inner)`` inside its outer server-error and OpenTelemetry ASGI middlewares."""
    parent, node = list(_outer_chain(stack))[-1]
    if parent is None:
        return wrap(stack)
    parent.app = wrap(node)
    return stack


def _without_otel(stack: Any) -> Any:
    """``stack`` without OpenTelemetry's ASGI middleware among its outer layers."""
    for parent, node in _outer_chain(stack):
        if _otel_middleware(node):
            if parent is None:
                return node.app
            parent.app = node.app
            return stack
    return stack


def _apps(app: Any, seen: set[int], depth: int = 0) -> Iterator[tuple[int, Any]]:
    """``(depth, app)`` for ``app`` and the apps mounted in it (``Mount``/``Host`` routes)."""
    if id(app) in seen or depth > _MAX_DEPTH:
        return
    seen.add(id(app))
    yield depth, app
    for route in getattr(app, "routes", ()) or ():
        sub = getattr(route, "app", None)
        if sub is not None and (hasattr(sub, "_telemetry") or hasattr(route, "routes")):
            yield from _apps(sub, seen, depth + 1)


class Cooperation:
    """The changes made to an app tree so that a request has one span; :meth:`undo` reverts them."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []
        self._done: set[int] = set()

    def apply(self, app: Any) -> None:
        """Native FastAPI tracing off in ``app`` and below; OpenTelemetry's middleware out of mounted apps."""
        for depth, node in _apps(app, set()):
            config = getattr(node, "_telemetry", None)
            if isinstance(config, dict):
                if id(config) not in self._done:
                    self._done.add(id(config))
                    self._undo.append(functools.partial(config.__setitem__, "tracing", config.get("tracing", True)))
                config["tracing"] = False
            if depth and getattr(node, "_is_instrumented_by_opentelemetry", False) and id(node) not in self._done:
                self._done.add(id(node))
                self._strip(node)

    def _strip(self, app: Any) -> None:
        had_own = "build_middleware_stack" in app.__dict__
        previous = app.build_middleware_stack

        def build_middleware_stack() -> Any:
            return _without_otel(previous())

        def undo() -> None:
            if had_own:
                app.build_middleware_stack = previous
            else:
                del app.build_middleware_stack
            app.middleware_stack = None

        app.build_middleware_stack = build_middleware_stack
        app.middleware_stack = None
        self._undo.append(undo)

    def undo(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        self._done.clear()
