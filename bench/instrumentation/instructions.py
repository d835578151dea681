"""CPU instructions per request of each instrumentation variant, counted by valgrind's callgrind.

Timing on a shared machine moves by +-2-5 µs from run to run, more than most single changes to the
request path save; an instruction count does not depend on the load. Each variant runs in its own
process under callgrind twice, with ``--requests`` and three times as many requests after the same
warm-up, and the difference divided by the extra requests is the count per request (start-up,
imports and warm-up cancel out). Counts are not times: a cache miss costs no instructions, which
is why the SDK's span takes about twice as long inside a request as in a tight loop for the same
count (docs/benchmarks.md).

With ``--uvicorn`` the variant is served by uvicorn (``serve.py``, one worker) under callgrind
instead, and the requests come over one keep-alive connection from this process: the whole
server's instructions per request, HTTP parsing and the event loop included, less what it does
as time passes (measured on two idle runs), and the ratio bare / variant is the throughput ratio
the instructions alone allow.

Run from the repository root:  python bench/instrumentation/instructions.py [VARIANT ...]
[--requests N] [--uvicorn].  Needs valgrind (apt-get install valgrind); about a minute per
variant (four or five through uvicorn).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

from run import _batch
from variants import BREAKDOWN, VARIANTS, build

from tests.fixtures.procs import free_port

_WARM_UP = 300


def _serve(variant: str, requests: int) -> None:
    """The child: build ``variant``, warm it up, serve ``requests`` requests in process."""
    app = build(variant)
    asyncio.run(_batch(app, _WARM_UP))
    asyncio.run(_batch(app, requests))


def _collected(variant: str, requests: int) -> int:
    """Instructions callgrind counts for a child serving ``requests`` requests of ``variant``."""
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
         "--child", variant, "--requests", str(requests)],
        capture_output=True, text=True, check=True, timeout=1800,
    ).stderr
    return int(re.search(r"Collected : (\d+)", out).group(1))


def _collected_through_uvicorn(variant: str, requests: int, idle: float = 0.0) -> tuple[int, float]:
    """Instructions callgrind counts for uvicorn serving ``variant`` from start to a Ctrl-C after
    the warm-up, ``requests`` requests on one keep-alive connection and ``idle`` seconds, and the
    seconds from the connection to the Ctrl-C."""
    port = free_port()
    log = tempfile.TemporaryFile("w+")  # a file, not a pipe: nobody reads until the end, and a pipe fills
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, str(HERE / "serve.py"),
         variant, str(port)], stdout=subprocess.DEVNULL, stderr=log, text=True)
    try:
        deadline = time.monotonic() + 600  # imports under valgrind take a minute or two
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                conn.connect()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"uvicorn serving {variant} did not start under valgrind") from None
                time.sleep(1)
        connected = time.monotonic()
        for _ in range(_WARM_UP + requests):
            conn.request("GET", "/items/42")
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"benchmark request failed with {response.status}")
        conn.close()
        time.sleep(idle)
        elapsed = time.monotonic() - connected
        server.send_signal(signal.SIGINT)
        server.wait(timeout=600)
        log.seek(0)
        err = log.read()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        log.close()
    return int(re.search(r"Collected : (\d+)", err).group(1)), elapsed


def _through_uvicorn(variant: str, requests: int) -> int:
    """Instructions per request through uvicorn, less what the server does as time passes.

    uvicorn's 10 Hz tick and the event-loop heartbeat run by the clock, and a request takes
    about 50 times longer under valgrind: two idle runs (5 and 25 s after the warm-up) give that
    rate per second, taken out of the extra requests' run by its extra seconds.
    """
    (few, few_s), (many, many_s) = (_collected_through_uvicorn(variant, n) for n in (requests, 3 * requests))
    (short, short_s), (long, long_s) = (_collected_through_uvicorn(variant, 0, idle) for idle in (5.0, 25.0))
    per_second = (long - short) / (long_s - short_s)
    clock = per_second * (many_s - few_s) / (2 * requests)
    print(f"{variant}: {per_second:,.0f} instructions/s idle under valgrind, {clock:,.0f} per request taken out",
          file=sys.stderr)
    return round((many - few) / (2 * requests) - clock)


def per_request(variant: str, requests: int, uvicorn: bool = False) -> int:
    """Instructions per request of ``variant``: the difference of two runs over the extra requests."""
    if uvicorn:
        return _through_uvicorn(variant, requests)
    return (_collected(variant, 3 * requests) - _collected(variant, requests)) // (2 * requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="*", default=["bare", "stackwatch_full", "stackwatch_metrics_only"],
                        help=f"any of {', '.join((*VARIANTS, *BREAKDOWN))} (bare is always counted)")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--uvicorn", action="store_true", help="count the whole uvicorn server's instructions")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _serve(args.child, args.requests)
        return
    counts = {v: per_request(v, args.requests, args.uvicorn) for v in dict.fromkeys(["bare", *args.variants])}
    for variant, count in counts.items():
        print(f"{variant:<40} {count:>9,} instructions/request  {count - counts['bare']:>+9,} over bare  "
              f"bare/this {counts['bare'] / count:.3f}")
    key = "instructions_per_request_through_uvicorn" if args.uvicorn else "instructions_per_request"
    print(json.dumps({key: counts}, indent=2))


if __name__ == "__main__":
    main()
