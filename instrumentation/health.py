"""``/health``, liveness and readiness: the checklist's health endpoint with bounded checks.

A check is a callable (sync or async) that raises or returns ``False`` when its dependency is
unhealthy. Checks run concurrently, each bounded by a timeout; sync checks run in threads of their
own so a hung socket cannot block the event loop, and a check still hung from an earlier
evaluation is waited on again rather than started beside it (one thread per check at most). The
body carries uptime, a timestamp, memory and one entry per check with its status, duration and
-- on failure -- only the exception class name, so nothing secret (DSNs, hosts, passwords) can
leak. Every evaluation sets ``health_check_status`` and ``health_check_last_run_timestamp_seconds``.

Checks also run on a timer (:meth:`Health.start_timer`, every ``health_interval`` seconds, in the
service's event loop, where async clients live), so the status Prometheus scrapes is fresh even when
nothing requests ``/health``: a failing dependency pages without a prober, and an old timestamp
says the checks stopped running.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import psutil

from .metrics import Metrics

__all__ = ["Check", "Health", "database_check", "redis_check"]

logger = logging.getLogger("stackwatch.instrumentation")

Check = Callable[[], Awaitable[Any] | Any]


class Health:
    """Evaluates named checks and renders the three health endpoints."""

    def __init__(self, checks: Mapping[str, Check], timeout: float, metrics: Metrics | None) -> None:
        self.checks = dict(checks)
        self.timeout = timeout
        self.metrics = metrics
        self.started = time.time()
        self._process = psutil.Process()
        self._running: dict[str, asyncio.Future[Any]] = {}
        self._timer: asyncio.Task[None] | None = None

    def _in_thread(self, name: str, check: Check) -> asyncio.Future[Any]:
        """The run of sync ``check`` in a daemon thread of its own; the one still running, if any.

        A hung check keeps its thread; a new run is not started beside it (the next evaluation
        waits on the same one), so hung checks hold at most one thread each, never fill the event
        loop's default executor, which the service itself needs (``getaddrinfo``, ``to_thread``),
        and never hold up the process's exit.
        """
        loop = asyncio.get_running_loop()
        running = self._running.get(name)
        if running is not None and not running.done() and running.get_loop() is loop:
            return running
        future: asyncio.Future[Any] = loop.create_future()
        future.add_done_callback(_retrieve)  # a run that ends after its timeout still has its error read

        def run() -> None:
            outcome, error = None, None
            try:
                outcome = check()
            except Exception as exc:  # noqa: BLE001 -- handed to the awaiting evaluation
                error = exc
            except BaseException as exc:  # noqa: BLE001 -- SystemExit and the like cannot go into a future
                error = RuntimeError(type(exc).__name__)
            try:
                loop.call_soon_threadsafe(_settle, future, outcome, error)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

        self._running[name] = future
        threading.Thread(target=run, name=f"stackwatch-health-{name}", daemon=True).start()
        return future

    def start_timer(self, interval: float) -> None:
        """Evaluate the checks every ``interval`` seconds in the running event loop, from now on.

        Idempotent per loop (the middleware calls it on lifespan startup and on requests, so a
        server run without lifespan gets it too); nothing when there are no checks or ``interval``
        is 0.
        """
        if not self.checks or interval <= 0:
            return
        loop = asyncio.get_running_loop()
        timer = self._timer
        if timer is not None and not timer.done() and timer.get_loop() is loop:
            return
        self._timer = loop.create_task(self._every(interval), name="stackwatch-health-timer")

    def stop_timer(self) -> None:
        """Cancel the timer (lifespan shutdown, :meth:`close`)."""
        timer, self._timer = self._timer, None
        if timer is not None and not timer.done():
            try:
                timer.cancel()
            except RuntimeError:  # its loop is closed already
                pass

    async def _every(self, interval: float) -> None:
        while True:
            try:
                await self.evaluate()
            except Exception:  # noqa: BLE001 -- the timer outlives one bad evaluation (logged, retried)
                logger.exception("health checks: evaluation failed")
            await asyncio.sleep(interval)

    def close(self) -> None:
        """Stop the timer and forget the runs in flight (a hung one is not waited for)."""
        self.stop_timer()
        self._running.clear()

    async def _run(self, name: str, check: Check) -> dict[str, Any]:
        began = time.perf_counter()
        result: dict[str, Any] = {"status": "ok"}
        try:
            if inspect.iscoroutinefunction(check):
                outcome = await asyncio.wait_for(check(), self.timeout)
            else:
                outcome = await asyncio.wait_for(asyncio.shield(self._in_thread(name, check)), self.timeout)
                if inspect.isawaitable(outcome):
                    outcome = await asyncio.wait_for(outcome, self.timeout)
            if outcome is False:
                result = {"status": "fail", "error": "check returned false"}
        except TimeoutError:
            result = {"status": "fail", "error": f"timeout after {self.timeout:g}s"}
        except Exception as exc:  # noqa: BLE001 -- a failing dependency is data here, not an error of /health
            result = {"status": "fail", "error": type(exc).__name__}
        result["duration_seconds"] = round(time.perf_counter() - began, 6)
        if self.metrics is not None:
            self.metrics.health_status.labels(name).set(1 if result["status"] == "ok" else 0)
            self.metrics.health_last_run.labels(name).set(time.time())
        return result

    async def evaluate(self) -> tuple[bool, dict[str, Any]]:
        """Run every check; ``(healthy, body)``."""
        names = list(self.checks)
        results = await asyncio.gather(*(self._run(n, self.checks[n]) for n in names))
        checks = dict(zip(names, results))
        healthy = all(r["status"] == "ok" for r in results)
        body = {
            "status": "ok" if healthy else "fail",
            "uptime_seconds": round(time.time() - self.started, 3),
            "timestamp": time.time(),
            "memory": {"rss_bytes": self._process.memory_info().rss},
            "checks": checks,
        }
        return healthy, body

    def liveness(self) -> dict[str, Any]:
        """The process is up and serving: no dependency is consulted."""
        return {"status": "ok", "uptime_seconds": round(time.time() - self.started, 3), "timestamp": time.time()}

    async def respond(self, kind: str, send: Any) -> None:
        """Send the ``health`` (full), ``live`` or ``ready`` response."""
        if kind == "live":
            healthy, body = True, self.liveness()
        else:
            healthy, body = await self.evaluate()
        payload = json.dumps(body).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"cache-control", b"no-store"),
        ]
        await send({"type": "http.response.start", "status": 200 if healthy else 503, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def _settle(future: asyncio.Future[Any], outcome: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(outcome)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def database_check(pool: Any) -> Check:
    """A ``SELECT 1`` check for a psycopg_pool (sync/async), an asyncpg Pool or a SQLAlchemy engine (sync/async)."""
    module = type(pool).__module__
    if module.startswith("asyncpg"):

        async def asyncpg_check() -> None:
            async with pool.acquire() as conn:
                await conn.fetchval("SELECT 1")

        return asyncpg_check
    if module.startswith("sqlalchemy"):
        from sqlalchemy import text

        if hasattr(pool, "sync_engine"):  # an AsyncEngine: its connections are async context managers

            async def sqlalchemy_async_check() -> None:
                async with pool.connect() as conn:
                    await conn.execute(text("SELECT 1"))

            return sqlalchemy_async_check

        def sqlalchemy_check() -> None:
            with pool.connect() as conn:
                conn.execute(text("SELECT 1"))

        return sqlalchemy_check
    if type(pool).__name__ == "AsyncConnectionPool" or inspect.iscoroutinefunction(getattr(pool, "getconn", None)):

        async def psycopg_async_check() -> None:
            async with pool.connection() as conn:
                await conn.execute("SELECT 1")

        return psycopg_async_check

    def psycopg_check() -> None:
        with pool.connection() as conn:
            conn.execute("SELECT 1")

    return psycopg_check


def redis_check(client: Any) -> Check:
    """A ``PING`` check for a redis-py client, sync or asyncio."""
    if type(client).__module__.startswith("redis.asyncio") or inspect.iscoroutinefunction(client.ping):

        async def redis_async_check() -> None:
            await client.ping()

        return redis_async_check

    def redis_sync_check() -> None:
        client.ping()

    return redis_sync_check
