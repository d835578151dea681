"""CPU instructions per request of each instrumentation variant, counted by valgrind's callgrind.

Timing on a shared machine moves by +-2-5 µs from run to run, more than most single changes to the
request path save; an instruction count does not depend on the load. Each variant runs in its own
process under callgrind twice, with ``--requests`` and three times as many requests after the same
warm-up, and the difference divided by the extra requests is the count per request (start-up,
imports and warm-up cancel out). Counts are not times: a cache miss costs no instructions, which
is why the SDK's span takes about twice as long inside a request as in a tight loop for the same
count (docs/benchmarks.md).

Run from the repository root:  python bench/instrumentation/instructions.py [VARIANT ...]
[--requests N].  Needs valgrind (apt-get install valgrind); about a minute per variant.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

from run import _batch
from variants import BREAKDOWN, VARIANTS, build

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


def per_request(variant: str, requests: int) -> int:
    """Instructions per request of ``variant``: the difference of two runs over the extra requests."""
    return (_collected(variant, 3 * requests) - _collected(variant, requests)) // (2 * requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="*", default=["bare", "stackwatch_full", "stackwatch_metrics_only"],
                        help=f"any of {', '.join((*VARIANTS, *BREAKDOWN))} (bare is always counted)")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _serve(args.child, args.requests)
        return
    counts = {v: per_request(v, args.requests) for v in dict.fromkeys(["bare", *args.variants])}
    for variant, count in counts.items():
        print(f"{variant:<40} {count:>9,} instructions/request  {count - counts['bare']:>+9,} over bare")
    print(json.dumps({"instructions_per_request": counts}, indent=2))


if __name__ == "__main__":
    main()
