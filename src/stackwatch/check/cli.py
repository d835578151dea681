"""``stackwatch check``: the checklist as an audit of live systems, with an exit code for CI.

Exit codes: 0 nothing fails, 1 something fails (or warns, with ``--fail-on warn``), 2 usage
errors or a system that could not be reached. Every flag has a ``STACKWATCH_*`` environment
twin; the DSN and URLs also read ``<VAR>_FILE``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit

from stackwatch.core.options import Option, OptionError, add_options, positive_float, positive_int, resolve_options
from stackwatch.core.redact import redact_text

from .items import APP_ITEMS, CACHE_CONTROL, CDN, LOAD_BALANCING, POSTGRES_ITEMS, PROMETHEUS_ITEMS, REDIS_ITEMS
from .model import Status
from .render import FORMATS, render
from .runner import Budget, Progress, Report, Source, run_checks

__all__ = ["OPTIONS", "DESCRIPTION", "add_arguments", "run", "exit_code"]

DESCRIPTION = """\
Audit live PostgreSQL, Redis, Prometheus and the service against the backend performance
checklist: every item pass, warn, fail or unknown, with the evidence and a fix. Read-only; every
query and request has a timeout and the whole check a deadline.

Exit codes: 0 nothing fails, 1 something fails (or warns, with --fail-on warn), 2 usage errors
or a system that could not be reached. Every flag has an environment twin; the DSN and URLs also
read <VAR>_FILE."""


def _http_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL with a host")
    return text.rstrip("/")


def _choice(*choices: str) -> Any:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return text
    return parse


def _dsn(text: str) -> str:
    from stackwatch.core.postgres.connection import checked_dsn  # psycopg, only when a DSN is given

    return checked_dsn(text)


def _queue_spec(text: str) -> Any:
    """The exporter's ``--redis-queue`` parser, imported when used (its package imports redis)."""
    from stackwatch.core.redis.queue_spec import parse_queue_option

    return parse_queue_option(text)


def _redis_url(text: str) -> str:
    from stackwatch.core.redis.connection import checked_url  # redis-py, only when a URL is given

    return checked_url(text)


def _path(text: str) -> str:
    if not text.startswith("/"):
        raise ValueError("expected a path starting with /")
    return text


#: the flags by help section: what to check, how to report, how long, and what the items assume
GROUPS: Sequence[tuple[str, Sequence[Option]]] = (("systems to check", (
    Option("--postgres-dsn", "STACKWATCH_POSTGRES_DSN", "PostgreSQL DSN to check (URL or key=value); its "
           "database is the one whose indexes and statements are checked", secret=True, parse=_dsn, metavar="DSN"),
    Option("--redis-url", "STACKWATCH_REDIS_URL", "Redis URL to check (redis:// or rediss://; /N selects the "
           "database whose keys are sampled)", secret=True, parse=_redis_url, metavar="URL"),
    Option("--prometheus-url", "STACKWATCH_PROMETHEUS_URL", "Prometheus base URL, for pool waiting, N+1, "
           "alerting, targets, resource limits, the cache hit rate, the services' key metrics, tracing, error "
           "tracking and APM, response compression per route, and the read share; without "
           "--postgres-dsn/--redis-url/--app-url it also judges those systems' items from the exporter's series",
           secret=True, parse=_http_url,
           metavar="URL"),
    Option("--app-url", "STACKWATCH_APP_URL", "base URL of the service, for its health endpoint, compression "
           "and /metrics", secret=True, parse=_http_url, metavar="URL"),
    Option("--static-url", "STACKWATCH_STATIC_URL", "URL of one fingerprinted static asset as users fetch it "
           "(through the CDN when there is one), for its Cache-Control and the CDN item", secret=True,
           parse=_http_url, metavar="URL"),
)), ("output", (
    Option("--format", "STACKWATCH_CHECK_FORMAT", "table, json or markdown", default="table",
           parse=_choice(*FORMATS), metavar="FORMAT"),
    Option("--fail-on", "STACKWATCH_CHECK_FAIL_ON", "lowest status that makes the exit code 1: fail or warn",
           default="fail", parse=_choice("fail", "warn"), metavar="STATUS"),
    Option("--color", "STACKWATCH_CHECK_COLOR", "auto (when stdout is a terminal and NO_COLOR is unset), "
           "always or never", default="auto", parse=_choice("auto", "always", "never"), metavar="WHEN"),
    Option("--quiet", "STACKWATCH_CHECK_QUIET", "no progress on stderr (yes/no)", default=False,
           parse=lambda text: text.lower() in ("1", "yes", "true", "on"), metavar="yes|no"),
)), ("time limits", (
    Option("--deadline", "STACKWATCH_CHECK_DEADLINE", "seconds for the whole check; items not done by then "
           "are unknown", default=60.0, parse=positive_float, metavar="SECONDS"),
    Option("--timeout", "STACKWATCH_CHECK_TIMEOUT", "seconds for any one query or request", default=5.0,
           parse=positive_float, metavar="SECONDS"),
)), ("what the items assume", (
    Option("--plans", "STACKWATCH_CHECK_PLANS", "how many of the slowest SELECT statements to explain "
           "(generic plans, nothing executed)", default=10, parse=positive_int, metavar="N"),
    Option("--db-cores", "STACKWATCH_CHECK_DB_CORES", "CPU cores of the PostgreSQL server, for the "
           "(cores x 2) + spindles pool guidance (default: this host's when the DSN points here)",
           parse=positive_int, metavar="N"),
    Option("--db-spindles", "STACKWATCH_CHECK_DB_SPINDLES", "effective spindle count of the PostgreSQL "
           "server's storage (1 for an SSD)", default=1, parse=int, metavar="N"),
    Option("--redis-window", "STACKWATCH_CHECK_REDIS_WINDOW", "seconds between the two INFO readings the hit "
           "rate is measured over when Prometheus has no Redis rate", default=5.0, parse=positive_float,
           metavar="SECONDS"),
    Option("--redis-queue", "STACKWATCH_REDIS_QUEUES", "job queues to judge, as SYSTEM:PATTERN like the "
           "exporter's, or auto (the default: RQ, arq, Dramatiq, Bull and Celery's default queue); one per line in the "
           "environment", repeat=True, parse=_queue_spec, metavar="SYSTEM:PATTERN"),
    Option("--redis-sample-keys", "STACKWATCH_CHECK_REDIS_SAMPLE_KEYS", "most keys whose TTL is sampled "
           "(SCAN + PTTL)", default=1000, parse=positive_int, metavar="N"),
    Option("--app-health-path", "STACKWATCH_CHECK_APP_HEALTH_PATH", "health endpoint of the service",
           default="/health", parse=_path, metavar="PATH"),
    Option("--app-large-path", "STACKWATCH_CHECK_APP_LARGE_PATH", "a path with a response over 1 KiB for the "
           "compression item (default: /openapi.json, then /metrics)", parse=_path, metavar="PATH"),
)))
OPTIONS: Sequence[Option] = tuple(opt for _, options in GROUPS for opt in options)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for title, options in GROUPS:
        add_options(parser, options, title)


def exit_code(report: Report, fail_on: str) -> int:
    """2 when a system was unreachable, 1 when an item is at or above ``fail_on``, else 0."""
    if report.errors:
        return 2
    failing = {Status.FAIL} | ({Status.WARN} if fail_on == "warn" else set())
    return 1 if any(f.status in failing for f in report.findings) else 0


def _secrets(values: dict[str, Any]) -> list[str]:
    """Passwords in the given DSN/URLs, scrubbed from the output even where a server echoed them."""
    found: list[str] = []
    if values["postgres_dsn"]:
        from stackwatch.core.postgres.connection import parse_dsn

        found.append(parse_dsn(values["postgres_dsn"]).get("password", ""))
    for key in ("redis_url", "prometheus_url", "app_url", "static_url"):
        if values[key]:
            password = urlsplit(values[key]).password or ""
            found += [password, unquote(password)]  # as written, and as sent (p%40ss is p@ss)
    return [s for s in found if len(s) >= 4]


def sources(values: dict[str, Any], budget: Budget) -> list[Source]:
    """Every source, with ``run`` set for those the options point at.

    A source's module, and so its client library, is imported only when it is checked. With
    ``--prometheus-url``, a system not given directly is judged from its series there.
    """
    prom_url = values["prometheus_url"]
    pg = redis_check = prom = application = None
    if values["postgres_dsn"]:
        from . import postgres
        from .promapi import Prometheus

        pg = postgres.PostgresCheck(values["postgres_dsn"], plans=values["plans"], cores=values["db_cores"],
                                    spindles=values["db_spindles"],
                                    prometheus=Prometheus(prom_url, budget) if prom_url else None).run
    elif prom_url:  # no credentials: what the exporter's series in Prometheus can tell
        from .postgres_series import PostgresSeriesCheck

        pg = PostgresSeriesCheck(prom_url).run
    if values["redis_url"]:
        from stackwatch.core.redis.queue_spec import queue_specs

        from . import redis
        from .promapi import Prometheus

        redis_check = redis.RedisCheck(values["redis_url"], window=values["redis_window"],
                                       sample_keys=values["redis_sample_keys"],
                                       queues=queue_specs(values["redis_queue"]),
                                       prometheus=Prometheus(prom_url, budget) if prom_url else None).run
    elif prom_url:
        from .redis_series import RedisSeriesCheck

        redis_check = RedisSeriesCheck(prom_url).run
    if prom_url:
        from . import prometheus

        prom = prometheus.PrometheusCheck(prom_url).run
    if values["app_url"]:
        from . import app
        from .promapi import Prometheus

        application = app.AppCheck(values["app_url"], values["app_health_path"], values["app_large_path"],
                                   prometheus=Prometheus(prom_url, budget) if prom_url else None).run
    elif prom_url:
        from .app_series import AppSeriesCheck

        application = AppSeriesCheck(prom_url).run
    return [
        *_delivery_sources(values),
        Source("postgres", POSTGRES_ITEMS, pg, "pass --postgres-dsn"),
        Source("prometheus", PROMETHEUS_ITEMS, prom, "pass --prometheus-url (the Prometheus scraping the "
               "service and the stackwatch exporter)"),
        Source("redis", REDIS_ITEMS, redis_check, "pass --redis-url"),
        Source("app", APP_ITEMS, application, "pass --app-url"),
    ]


def _delivery_sources(values: dict[str, Any]) -> list[Source]:
    """How responses reach users: Cache-Control, the CDN and the load balancer."""
    prom_url, static_url, app_url = values["prometheus_url"], values["static_url"], values["app_url"]
    cache_control = cdn = balancing = None
    if static_url or prom_url:
        from .cache_control import CacheControlCheck

        cache_control = CacheControlCheck(static_url, prom_url).run
    if static_url:
        from .cdn import CdnCheck

        cdn = CdnCheck(static_url).run
    if prom_url:
        from .load_balancing import LoadBalancingCheck

        balancing = LoadBalancingCheck(prom_url, app_url).run
    return [
        Source("cache-control", (CACHE_CONTROL,), cache_control, "pass --static-url (a fingerprinted static "
               "asset) and --prometheus-url (the services' http_server_responses_cache_control_total)"),
        Source("cdn", (CDN,), cdn, "pass --static-url (a static asset's public URL)"),
        Source("load-balancing", (LOAD_BALANCING,), balancing, "pass --prometheus-url (the Prometheus scraping "
               "every instance of the service) and --app-url (the load balancer's address)"),
    ]


def run(args: argparse.Namespace, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        values = resolve_options(OPTIONS, args)
    except OptionError as error:
        print(f"stackwatch check: {redact_text(str(error))}", file=err)
        return 2
    given = [values[k] for k in ("postgres_dsn", "redis_url", "prometheus_url", "app_url", "static_url")]
    if not any(given):
        print("stackwatch check: nothing to check: pass at least one of --postgres-dsn, --redis-url, "
              "--prometheus-url, --app-url, --static-url (or their STACKWATCH_* variables)", file=err)
        return 2
    budget = Budget(values["deadline"], values["timeout"])
    checks = sources(values, budget)
    total = sum(len(s.items) for s in checks if s.run is not None)
    report = run_checks(checks, budget, Progress(None if values["quiet"] else err, total))
    code = exit_code(report, values["fail_on"])
    color = values["color"] == "always" or (values["color"] == "auto" and out.isatty()
                                            and not os.environ.get("NO_COLOR"))
    out.write(render(report, values["format"], _secrets(values), code, color))
    out.flush()
    return code
