"""The ``stackwatch`` command and its subcommands.

A subcommand's module (and the database clients it needs) is imported only when that subcommand
is run: ``stackwatch --version`` and ``stackwatch --help`` import no client library.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from stackwatch.core.options import SafeArgumentParser

from . import __version__

__all__ = ["main", "build_parser"]


def _exporter(parser: argparse.ArgumentParser) -> None:
    from stackwatch.exporters import main as exporter_main

    exporter_main.add_arguments(parser)
    parser.set_defaults(run=exporter_main.run)


def _check(parser: argparse.ArgumentParser) -> None:
    from .check import cli as check_cli

    parser.description = check_cli.DESCRIPTION
    check_cli.add_arguments(parser)
    parser.set_defaults(run=check_cli.run)


#: subcommand -> (help, how to fill its parser once it is chosen)
_SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "exporter": ("serve PostgreSQL, Redis and process metrics for Prometheus", _exporter),
    "check": ("audit live PostgreSQL, Redis, Prometheus and the app against the checklist", _check),
}


class _LazySubcommands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """Adds a subcommand's options when it is chosen, right before its arguments are parsed."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        chosen = self._name_parser_map.get(values[0])
        if chosen is not None and not getattr(chosen, "_stackwatch_filled", False):
            _SUBCOMMANDS[values[0]][1](chosen)
            chosen._stackwatch_filled = True
        super().__call__(parser, namespace, values, option_string)


def build_parser() -> argparse.ArgumentParser:
    parser = SafeArgumentParser(
        prog="stackwatch",
        description="The backend performance checklist, made observable and enforceable.",
    )
    parser.add_argument("--version", action="version", version=f"stackwatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, action=_LazySubcommands)
    sub.add_parser("exporter", help=_SUBCOMMANDS["exporter"][0],
                   description="Poll PostgreSQL, Redis and processes in tiers and serve the latest snapshot on "
                               "/metrics (and /probe?target=NAME). Every flag has an environment twin; secrets "
                               "also read <VAR>_FILE.",
                   formatter_class=argparse.RawDescriptionHelpFormatter)
    sub.add_parser("check", help=_SUBCOMMANDS["check"][0], formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
