"""What the job-queue collector costs Redis: commands per poll for many queues and a huge one.

One redis-server holding 1,000 RQ queues of a few jobs each, one RQ queue of ``--jobs`` jobs
(default 1,000,000) and 100,000 unrelated keys; the collector reads ``rq:rq:queue:*`` as the
exporter does. Reported from INFO commandstats deltas (the only client is the collector):

* the first polls, while the glob walk (SCAN, resumed across polls within the TTL sampler's key
  budget) is still discovering queues, and a steady poll once every queue is known;
* commands per queue in a steady poll (a fixed handful, whatever a queue's length);
* the wall time of a steady poll (median of ``--polls``);
* how long Redis is held by the transactions of a steady poll (``EXEC``'s server time from
  commandstats, all of a poll's transactions together: the longest holds Redis at most that long;
  the reads run in ``MULTI``/``EXEC`` so that their keyspace hits and misses can be measured).

No peer: no packaged exporter reads RQ, Celery, arq, Dramatiq and Bull layouts. Run from the
repository root:  python bench/redis/queues.py  [--jobs N] [--polls N]. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from stackwatch.core.redis.queue_spec import parse_queue_spec  # noqa: E402
from stackwatch.core.redis.source import RedisOptions  # noqa: E402
from stackwatch.exporters.redis.queues import QueuesCollector  # noqa: E402
from tests.exporters.redis.collect import real_source  # noqa: E402
from tests.fixtures.redis import RedisServer  # noqa: E402

QUEUES = 1000


def fill(server: RedisServer, jobs: int) -> None:
    client = server.client()
    pipe = client.pipeline(transaction=False)
    for n in range(QUEUES):
        pipe.rpush(f"rq:queue:q{n}", *(f"job-{n}-{i}" for i in range(3)))
        pipe.sadd("rq:queues", f"rq:queue:q{n}")
    for n in range(100_000):
        pipe.set(f"user:{n}", "x")
        if len(pipe) >= 10_000:
            pipe.execute()
    pipe.execute()
    for start in range(0, jobs, 10_000):
        client.rpush("rq:queue:huge", *(f"id-{i}" for i in range(start, min(jobs, start + 10_000))))


def commands(server: RedisServer) -> dict[str, int]:
    stats = server.client().info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info"}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def _exec_usec(server: RedisServer) -> int:
    return int(server.client().info("commandstats").get("cmdstat_exec", {}).get("usec", 0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--polls", type=int, default=20)
    args = parser.parse_args()
    server = RedisServer()
    try:
        fill(server, args.jobs)
        options = RedisOptions(queues=(parse_queue_spec("rq:rq:queue:*"),), queues_max=60)  # reads up to 1,200
        collector = QueuesCollector()
        discovery = []
        with real_source(server.url, options) as source:
            while True:  # until a poll discovers nothing new
                known = len(collector._known)  # noqa: SLF001 - the bench watches discovery finish
                before = commands(server)
                collector.collect(source)
                discovery.append(delta(before, commands(server)))
                if len(collector._known) == known:  # noqa: SLF001
                    break
            durations, steady = [], {}
            exec_usec = _exec_usec(server)
            for _ in range(args.polls):
                before = commands(server)
                start = time.perf_counter()
                collector.collect(source)
                durations.append(time.perf_counter() - start)
                steady = delta(before, commands(server))
        queues = len(collector._known)  # noqa: SLF001
        held = (_exec_usec(server) - exec_usec) / args.polls
        steady_total = sum(steady.values())
        print(json.dumps({
            "queues": queues, "largest_queue_jobs": args.jobs, "other_keys": 100_000,
            "discovery_polls": len(discovery),
            "discovery_commands_per_poll": [sum(d.values()) for d in discovery],
            "steady_commands_per_poll": steady_total, "steady_commands": steady,
            "steady_commands_per_queue": round(steady_total / queues, 2),
            "steady_poll_seconds_p50": round(statistics.median(durations), 4),
            "exec_server_ms_per_poll": round(held / 1000, 2),
        }, indent=2))
    finally:
        server.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
