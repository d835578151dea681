"""Real jobs enqueued with the real libraries, for the queue collector's tests.

RQ, Celery and Dramatiq share the test environment; arq (redis-py < 6) and BullMQ (Node) run in
environments of their own that ``scripts/install-test-deps`` makes under ``.tmp/``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from rq import SimpleWorker

from tests.fixtures.redis import RedisServer

__all__ = ["ARQ_PYTHON", "BULLMQ", "RqWorker", "enqueue_arq", "enqueue_bull", "fail", "linger", "succeed"]

ROOT = Path(__file__).resolve().parents[3]
ARQ_PYTHON = ROOT / ".tmp" / "venv-arq" / "bin" / "python"
BULLMQ = ROOT / ".tmp" / "node-bullmq"

_ARQ = """
import asyncio, sys
from arq import create_pool
from arq.connections import RedisSettings

async def main():
    pool = await create_pool(RedisSettings(host="127.0.0.1", port=int(sys.argv[1])))
    for n in range(int(sys.argv[2])):
        await pool.enqueue_job("build_report", n)
    await pool.enqueue_job("build_report", -1, _defer_by=600)
    await pool.aclose()

asyncio.run(main())
"""

_BULL = """
const {Queue} = require("bullmq");
const [port, name, jobs] = process.argv.slice(-3);
(async () => {
  const queue = new Queue(name, {connection: {host: "127.0.0.1", port: Number(port)}});
  for (let n = 0; n < Number(jobs); n++) await queue.add("send", {n});
  await queue.add("later", {}, {delay: 600000});
  await queue.close();
})().catch((e) => { console.error(e); process.exit(1); });
"""


class RqWorker(SimpleWorker):
    """RQ's in-process worker without its command channel: that pub/sub thread (only for remote
    stop/kill commands, which these tests never send) takes a minute to stop under redis-py 8."""

    def subscribe(self) -> None:
        pass

    def unsubscribe(self) -> None:
        pass


def succeed(n: int = 0) -> int:
    """A job that works (RQ imports it by dotted path)."""
    return n


def fail() -> None:
    """A job that raises, so the worker files it under failed."""
    raise RuntimeError("planted failure")


def enqueue_arq(server: RedisServer, jobs: int) -> None:
    """``jobs`` arq jobs ready now plus one deferred by 10 minutes, on arq's default queue."""
    assert ARQ_PYTHON.exists(), "arq's environment is missing: run `make deps`"
    subprocess.run([str(ARQ_PYTHON), "-c", _ARQ, str(server.port), str(jobs)], check=True, timeout=60)


def enqueue_bull(server: RedisServer, queue: str, jobs: int) -> None:
    """``jobs`` BullMQ jobs waiting plus one delayed by 10 minutes."""
    assert (BULLMQ / "node_modules" / "bullmq").exists(), "BullMQ is missing: run `make deps`"
    subprocess.run(["node", "-e", _BULL, str(server.port), queue, str(jobs)], check=True, timeout=60,
                   env={"NODE_PATH": str(BULLMQ / "node_modules"), "PATH": "/usr/bin:/bin"})


def linger(seconds: float) -> None:
    """A job that is still running when its worker is killed."""
    import time

    time.sleep(seconds)
