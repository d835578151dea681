"""``stackwatch exporter``: parse options, build targets, serve until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stackwatch.core.option_fields import from_values, nested, option, options_of
from stackwatch.core.options import Option, OptionError, add_options, resolve_options
from stackwatch.core.redact import redact_text

from .kinds import Common, ExporterKind, check_collector_names
from .logformat import LOG_FORMAT, OneLineFormatter
from .server import Exporter, ExporterHTTPServer
from .target import Target
from .targets_file import load_targets_file
from .webconfig import WebConfigFile

__all__ = ["COMMON_OPTIONS", "KINDS", "ServerOptions", "add_arguments", "all_options", "build", "parse_listen", "run"]

log = logging.getLogger("stackwatch.exporters")


def _kinds() -> list[ExporterKind]:
    from . import alertmanager, postgres, process, redis

    return [postgres.KIND, redis.KIND, process.KIND, alertmanager.KIND]


KINDS: Sequence[ExporterKind] = _kinds()


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9188`` for IPv6; ``:9188`` for every interface; port 0 picks a free one)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:9188")
    return host.strip("[]") or "0.0.0.0", int(port)


def _log_level(text: str) -> str:
    if text.lower() not in ("debug", "info", "warning", "error"):
        raise ValueError("expected debug, info, warning or error")
    return text.lower()


@dataclass(frozen=True)
class ServerOptions:
    """The exporter server's own options, and those every kind shares (:class:`Common`)."""

    listen: tuple[str, int] = option("--listen", "STACKWATCH_LISTEN", "address to serve /metrics, /probe and "
                                     "/-/ready on", default="127.0.0.1:9188", parse=parse_listen, metavar="HOST:PORT")
    targets_file: str | None = option(
        "--targets-file", "STACKWATCH_TARGETS_FILE",
        "YAML file of named targets for /probe?target=NAME (credentials stay out of URLs)", metavar="PATH")
    common: Common = nested(Common)
    log_level: str = option("--log-level", "STACKWATCH_LOG_LEVEL", "debug, info, warning or error", default="info",
                            parse=_log_level, metavar="LEVEL")
    web_config_file: str | None = option(
        "--web.config.file", "STACKWATCH_WEB_CONFIG_FILE", "exporter-toolkit web config (YAML) that turns on "
        "TLS and/or basic auth for every endpoint; see docs/exporter-security.md", metavar="PATH")


COMMON_OPTIONS: Sequence[Option] = options_of(ServerOptions)


def all_options() -> list[Option]:
    return [*COMMON_OPTIONS, *(opt for kind in KINDS for opt in kind.options)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, COMMON_OPTIONS, "server")
    for kind in KINDS:
        add_options(parser, kind.options, kind.title)


def build(values: Mapping[str, Any]) -> Exporter:
    """The exporter described by resolved option values (raises OptionError on bad input)."""
    server = from_values(ServerOptions, values)
    common = server.common
    check_collector_names(KINDS, common)
    targets: list[Target[Any]] = [t for kind in KINDS for t in kind.targets(values, common)]
    names = [(t.prefix, t.name) for t in targets]
    twice = sorted({name for prefix, name in names if names.count((prefix, name)) > 1})
    if twice:  # their series would be exact duplicates (same families, same server label)
        raise OptionError(f"--postgres-dsn/--redis-url/--alertmanager-url: more than one target named "
                          f"{', '.join(twice)} (the same host, port and database given twice)")
    probe: dict[str, Target[Any]] = {t.name: t for t in targets}
    if server.targets_file:
        keys = [kind.targets_file_key for kind in KINDS if kind.targets_file_key]
        for name, entry in load_targets_file(server.targets_file, keys).items():
            probe[name] = next(t for kind in KINDS if (t := kind.probe_target(name, entry, values, common)))
    return Exporter(targets, probe)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT; returns the process exit code."""
    try:
        values = resolve_options(all_options(), args)
        options = from_values(ServerOptions, values)
        _configure_logging(options.log_level)
        web = WebConfigFile(options.web_config_file) if options.web_config_file else None
        exporter = build(values)
    except OptionError as error:
        print(f"stackwatch exporter: {redact_text(str(error))}", file=sys.stderr)
        return 2
    server = _bind(options.listen, exporter, web)
    if server is None:
        return 2
    _stop_on_signals(server)
    _log_start(exporter, server, web)
    _serve(server, exporter)
    return 0


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter(LOG_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])


def _bind(listen: tuple[str, int], exporter: Exporter, web: WebConfigFile | None) -> ExporterHTTPServer | None:
    """The server listening on ``listen``, or None once the reason it cannot is printed."""
    try:
        return ExporterHTTPServer(listen, exporter, web)
    except OptionError as error:  # the certificate changed since the web config was checked
        print(f"stackwatch exporter: {error}", file=sys.stderr)
    except OSError as error:
        print(f"stackwatch exporter: --listen {listen[0]}:{listen[1]}: {error.strerror}", file=sys.stderr)
    return None


def _stop_on_signals(server: ExporterHTTPServer) -> None:
    """SIGTERM and SIGINT shut the server down, through a thread waiting for them from the start.

    The handler only notes the signal and sets an event: it runs inside whatever the main thread
    was doing, and a signal that lands while the main thread writes a log line (blocked on a full
    stderr pipe, say) would make a log line of its own a reentrant write (RuntimeError) and the
    shutdown would never start; starting a thread there could as well deadlock on the lock of a
    thread the main thread was starting. The waiting thread logs and shuts down.
    """
    received: list[int] = []
    signalled = threading.Event()

    def stop() -> None:
        signalled.wait()
        log.info("received signal %s, shutting down", received[0])
        server.shutdown()

    def handle(signum: int, frame: Any) -> None:
        received.append(signum)
        signalled.set()

    threading.Thread(target=stop, name="stackwatch-signal-stop", daemon=True).start()
    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def _log_start(exporter: Exporter, server: ExporterHTTPServer, web: WebConfigFile | None) -> None:
    if not exporter.all_targets():
        log.warning("no targets configured: pass --postgres-dsn, --redis-url or --process-group "
                    "(see --help); serving self-metrics only")
    for target in exporter.all_targets():
        log.info("target %s", target.describe_target())
    host, port = str(server.server_address[0]), server.server_address[1]
    log.info("listening on %s://%s:%s (basic auth %s)", server.scheme, f"[{host}]" if ":" in host else host, port,
             "on" if web is not None and web.config.users else "off")


def _serve(server: ExporterHTTPServer, exporter: Exporter) -> None:
    """Poll and serve until the server is shut down, then let requests in flight finish."""
    exporter.start()
    try:
        server.serve_forever()
    finally:
        server.server_close()
        if not server.drain(timeout=10.0):
            log.warning("shutting down with requests still in flight after 10 s")
        exporter.stop()
        log.info("stopped")
