"""The ``stackwatch`` command and its subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from stackwatch.exporters.options import SafeArgumentParser

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = SafeArgumentParser(
        prog="stackwatch",
        description="The backend performance checklist, made observable and enforceable.",
    )
    parser.add_argument("--version", action="version", version=f"stackwatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    from .exporters import main as exporter_main

    exporter = sub.add_parser(
        "exporter",
        help="serve PostgreSQL, Redis and process metrics for Prometheus",
        description="Poll PostgreSQL, Redis and processes in tiers and serve the latest snapshot on "
                    "/metrics (and /probe?target=NAME). Every flag has an environment twin; secrets "
                    "also read <VAR>_FILE.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    exporter_main.add_arguments(exporter)
    exporter.set_defaults(run=exporter_main.run)

    from .check import cli as check_cli

    check = sub.add_parser("check", help="audit live PostgreSQL, Redis, Prometheus and the app against the checklist",
                           description=check_cli.DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    check_cli.add_arguments(check)
    check.set_defaults(run=check_cli.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
