"""Settings for :func:`stackwatch.instrumentation.instrument`: standard env vars, then keyword overrides.

Every setting has an environment twin. The OpenTelemetry, Sentry and client_python variables keep
their standard names; stackwatch's own use the ``STACKWATCH_`` prefix. A bad value raises
:class:`ConfigError` naming the key and the value (DSNs redacted) instead of being ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stackwatch.core.option_fields import field_options, option
from stackwatch.core.options import from_environment, non_negative_float, positive_float, positive_int, ratio
from stackwatch.core.redact import redact
from stackwatch.thresholds import HTTP

from .errors import ConfigError

__all__ = ["DEFAULT_N_PLUS_ONE_THRESHOLD", "OTLP_PROTOCOLS", "SAMPLERS", "Settings"]

SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)

OTLP_PROTOCOLS = ("http/protobuf", "grpc", "http/json")
SERVER_ERRORS = frozenset(range(500, 600))

# The checklist's N+1 repeat count, shared with the alert rules and `stackwatch check`.
DEFAULT_N_PLUS_ONE_THRESHOLD = HTTP.n_plus_one_repeat_count


def _text(raw: str) -> str:
    return raw.strip()


def _optional_text(raw: str) -> str | None:
    return raw.strip() or None


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true/false, got {raw!r}")


def _number(parse: Callable[[str], Any], expected: str) -> Callable[[str], Any]:
    """A setting parser made of one of the shared number parsers (:mod:`stackwatch.core.options`,
    the exporter's and the check's too); its error says what was expected and the value."""
    def parsed(raw: str) -> Any:
        try:
            return parse(raw)
        except ValueError:
            raise ValueError(f"expected {expected}, got {raw!r}") from None

    return parsed


_ratio = _number(ratio, "a number between 0 and 1")
_positive_float = _number(positive_float, "a positive number of seconds")
_positive_int = _number(positive_int, "a positive integer")
_seconds = _number(non_negative_float, "a number of seconds >= 0")


def _statements(raw: str) -> tuple[str, ...]:
    """Statements or fingerprints separated by ``;`` or new lines."""
    return tuple(part.strip() for part in raw.replace("\n", ";").split(";") if part.strip())


def _patterns(raw: str | Iterable[str]) -> tuple[str, ...]:
    """Comma-separated regular expressions (OpenTelemetry's excluded-URLs and captured-headers format)."""
    parts = raw.split(",") if isinstance(raw, str) else raw
    patterns = tuple(str(part).strip() for part in parts if str(part).strip())
    for pattern in patterns:
        _regex(pattern)
    return patterns


def _regex(pattern: Any) -> None:
    try:
        re.compile(pattern)
    except (re.error, TypeError) as error:
        raise ValueError(f"{pattern!r} is not a regular expression ({error})") from None


def _port(raw: str) -> int | None:
    if not raw.strip():
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise ValueError(f"expected a TCP port (0-65535), got {raw!r}")
    return value


def _sampler(raw: str) -> str:
    value = raw.strip().lower()
    if value not in SAMPLERS:
        raise ValueError(f"expected one of {', '.join(SAMPLERS)}, got {raw!r}")
    return value


def _path(raw: str) -> str:
    value = raw.strip()
    if not value.startswith("/"):
        raise ValueError(f"expected a path starting with '/', got {raw!r}")
    return value


def _url(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"expected an http(s) URL, got {redact(value)!r}")
    return value


def _dsn(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if "://" not in value or "@" not in value:
        raise ValueError(f"expected a Sentry DSN like https://KEY@host/PROJECT, got {redact(value)!r}")
    return value


def _protocol(raw: str) -> str | None:
    value = raw.strip().lower()
    if not value:
        return None
    if value not in OTLP_PROTOCOLS:
        raise ValueError(f"expected one of {', '.join(OTLP_PROTOCOLS)}, got {raw!r}")
    return value


def _status_codes(raw: str | Iterable[int]) -> frozenset[int]:
    """``500-599,403`` (or an iterable of ints) as a set of HTTP status codes."""
    codes: set[int] = set()
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        low, _, high = text.partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            first, last = 0, 0
        if not 100 <= first <= last <= 599:
            raise ValueError(f"expected HTTP status codes or ranges like 500-599,429, got {raw!r}")
        codes.update(range(first, last + 1))
    return frozenset(codes)


def _parsed(parse: Callable[[Any], Any], key: str, raw: Any) -> Any:
    """``raw`` parsed; a bad value is a :class:`ConfigError` naming ``key`` (the variable or keyword it
    came from) and the value."""
    try:
        return parse(raw)
    except ValueError as error:
        raise ConfigError(f"{key}: {error}") from None


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. Build with :meth:`resolve`; fields are documented in docs/instrumentation.md."""

    service_name: str = option(None, "OTEL_SERVICE_NAME", "`service.name` resource attribute",
                               default="unknown_service", parse=_text)
    traces: bool = option(None, "STACKWATCH_TRACES", "`false` = metrics only, no spans", default="true", parse=_bool)
    otlp_endpoint: str | None = option(
        None, "OTEL_EXPORTER_OTLP_ENDPOINT", "OTLP/HTTP base URL; spans go to `<base>/v1/traces`. Unset: spans "
        "are created (for exemplars, logs, Sentry) but not exported", parse=_url)
    otlp_traces_endpoint: str | None = option(None, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                                              "full traces URL, wins over the base", parse=_url)
    otlp_protocol: str | None = option(
        None, "OTEL_EXPORTER_OTLP_PROTOCOL", "`http/protobuf` when unset; `grpc` needs "
        "`opentelemetry-exporter-otlp-proto-grpc` (not a dependency; the endpoint is then used as is); without "
        "it, and for `http/json` (no Python exporter), a `RuntimeWarning` says so and spans are not exported: "
        "requests are served as usual", parse=_protocol)
    otlp_traces_protocol: str | None = option(None, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                                              "the traces' protocol, wins over `otlp_protocol`", parse=_protocol)
    sdk_disabled: bool = option(
        None, "OTEL_SDK_DISABLED", "`true`: stackwatch builds no tracer provider (a configured global one is "
        "used; the SDK disables itself)", default="false", parse=_bool)
    sampler: str = option(
        None, "OTEL_TRACES_SAMPLER", "`always_on`, `always_off`, `traceidratio`, `parentbased_always_on`, "
        "`parentbased_always_off`, `parentbased_traceidratio`", default="parentbased_traceidratio", parse=_sampler)
    sampler_arg: float = option(None, "OTEL_TRACES_SAMPLER_ARG", "ratio 0–1", default="1.0", parse=_ratio)
    sentry_dsn: str | None = option(None, "SENTRY_DSN", "enables Sentry", parse=_dsn)
    sentry_environment: str | None = option(None, "SENTRY_ENVIRONMENT", "Sentry's `environment`",
                                            parse=_optional_text)
    sentry_release: str | None = option(None, "SENTRY_RELEASE", "Sentry's `release`", parse=_optional_text)
    sentry_traces_sample_rate: float = option(
        None, "SENTRY_TRACES_SAMPLE_RATE", "share of requests recorded as Sentry transactions (`http.server`, "
        "named by route template, continuing an incoming `sentry-trace`, else with the request's OpenTelemetry "
        "trace id); 0 = none", default="0.0", parse=_ratio)
    sentry_failed_request_status_codes: frozenset[int] = option(
        None, "STACKWATCH_SENTRY_FAILED_REQUEST_STATUS_CODES", "response statuses reported to Sentry "
        "(`500-599,429`; a keyword takes a set of ints); unhandled exceptions are always reported",
        default="500-599", parse=_status_codes, coerce=True)
    capture_request_headers: tuple[str, ...] = option(
        None, "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "request header names or regular "
        "expressions (comma separated, case-insensitive, whole name), as in OpenTelemetry's instrumentations; "
        "span attributes `http.request.header.<name>` (lower case, list of values)", default="", parse=_patterns,
        coerce=True)
    capture_response_headers: tuple[str, ...] = option(
        None, "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE", "the same for response headers "
        "(`http.response.header.<name>`)", default="", parse=_patterns, coerce=True)
    capture_headers_sanitize: tuple[str, ...] = option(
        None, "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS",
        "captured headers whose value becomes `[REDACTED]`", default="", parse=_patterns, coerce=True)
    multiproc_dir: str | None = option(None, "PROMETHEUS_MULTIPROC_DIR", "multiprocess mode, see below",
                                       parse=_optional_text)
    metrics: bool = option(None, "STACKWATCH_METRICS", "`false` = no Prometheus metrics, no `/metrics`",
                           default="true", parse=_bool)
    exemplars: bool = option(None, "STACKWATCH_EXEMPLARS", "exemplars on the request histogram", default="true",
                             parse=_bool)
    metrics_path: str = option(None, "STACKWATCH_METRICS_PATH", "where `/metrics` answers; a path the app serves "
                               "itself stays the app's (below)", default="/metrics", parse=_path)
    metrics_port: int | None = option(
        None, "STACKWATCH_METRICS_PORT", "serve metrics on this port instead of the app (0 = any free port; "
        "`Instrumentation.metrics_server.port`)", parse=_port)
    metrics_addr: str = option(None, "STACKWATCH_METRICS_ADDR", "address of that port", default="0.0.0.0",
                               parse=_text)
    health_path: str = option(None, "STACKWATCH_HEALTH_PATH", "where `/health` answers; a path the app serves "
                              "itself stays the app's (below)", default="/health", parse=_path)
    liveness_path: str = option(None, "STACKWATCH_LIVENESS_PATH", "where the liveness endpoint answers (the same)",
                                default="/health/live", parse=_path)
    readiness_path: str = option(None, "STACKWATCH_READINESS_PATH", "where the readiness endpoint answers (the "
                                 "same)", default="/health/ready", parse=_path)
    health_timeout: float = option(None, "STACKWATCH_HEALTH_TIMEOUT", "seconds per check", default="2",
                                   parse=_positive_float)
    health_interval: float = option(
        None, "STACKWATCH_HEALTH_INTERVAL", "seconds between background runs of the checks (`0` = only when "
        "`/health` is requested)", default="15", parse=_seconds)
    n_plus_one_threshold: int = option(
        None, "STACKWATCH_N_PLUS_ONE_THRESHOLD", "repeats of one normalized statement in one request that count "
        "as N+1 (default: the checklist's, `stackwatch.thresholds.HTTP.n_plus_one_repeat_count`)",
        default=DEFAULT_N_PLUS_ONE_THRESHOLD, parse=_positive_int)
    n_plus_one_strict: bool = option(
        None, "STACKWATCH_N_PLUS_ONE_STRICT", "raise `NPlusOneError` instead of only reporting (for a service's "
        "own tests)", default="false", parse=_bool)
    excluded_urls: tuple[str, ...] = option(
        None, "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", "comma-separated regular expressions (a list for the keyword); "
        "a request or WebSocket whose path one matches (`re.search`, as OpenTelemetry's instrumentations do, "
        "which match the whole URL) is neither traced nor counted", default="", parse=_patterns,
        fallback="OTEL_PYTHON_EXCLUDED_URLS")
    n_plus_one_allow: tuple[str, ...] = option(
        None, "STACKWATCH_N_PLUS_ONE_ALLOW", "statements (as written in the code) or fingerprints that are never "
        "N+1, such as a keyset pagination loop; the variable separates them with `;` or new lines",
        default="", parse=_statements)
    n_plus_one_min_duration: float = option(
        None, "STACKWATCH_N_PLUS_ONE_MIN_DURATION", "seconds the repeats of one fingerprint must also take in "
        "total to count as N+1 (Sentry's detector has such a floor); `0` = any", default="0", parse=_seconds)
    event_loop: bool = option(
        None, "STACKWATCH_EVENT_LOOP", "`false`: no event-loop lag or blocked-route signals (no heartbeat, no "
        "watchdog thread)", default="true", parse=_bool)
    event_loop_block_threshold: float = option(
        None, "STACKWATCH_EVENT_LOOP_BLOCK_THRESHOLD", "seconds a callback must hold the loop to count as "
        "blocking it; the heartbeat runs every half of it (default: the checklist's, "
        "`stackwatch.thresholds.HTTP.event_loop_block_seconds`)", default=HTTP.event_loop_block_seconds,
        parse=_positive_float)

    @classmethod
    def resolve(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Defaults, then ``environ``, then ``overrides`` (keyword arguments win)."""
        known = dict(field_options(cls))
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}; known: {', '.join(known)}")
        values: dict[str, Any] = {}
        for name, opt in known.items():
            if name in overrides:
                value = overrides[name]
                if isinstance(value, str) or (opt.coerce and value is not None):
                    value = _parsed(opt.parse, name, value)
                values[name] = value
            elif (found := from_environment(opt, environ, keep_empty=True)) is not None:
                text, variable = found
                values[name] = _parsed(opt.parse, variable, text)
        settings = cls(**values)
        settings._validate()
        return settings

    @classmethod
    def env_name(cls, name: str) -> str:
        """The environment variable of setting ``name``."""
        return dict(field_options(cls))[name].env

    @property
    def traces_endpoint(self) -> str | None:
        """The OTLP/HTTP traces URL: the signal-specific one as is, else ``<base>/v1/traces``."""
        if self.otlp_traces_endpoint:
            return self.otlp_traces_endpoint
        if self.otlp_endpoint:
            return self.otlp_endpoint.rstrip("/") + "/v1/traces"
        return None

    @property
    def traces_protocol(self) -> str:
        """The OTLP protocol for traces: the signal-specific setting, the general one, else http/protobuf."""
        return self.otlp_traces_protocol or self.otlp_protocol or "http/protobuf"

    def _validate(self) -> None:
        if self.sampler_arg is not None and not 0.0 <= float(self.sampler_arg) <= 1.0:
            raise ConfigError(f"sampler_arg: expected a number between 0 and 1, got {self.sampler_arg!r}")
        if self.n_plus_one_threshold < 1:
            raise ConfigError(f"n_plus_one_threshold: expected a positive integer, got {self.n_plus_one_threshold!r}")
        if not float(self.n_plus_one_min_duration) >= 0:
            raise ConfigError("n_plus_one_min_duration: expected a number of seconds >= 0, "
                              f"got {self.n_plus_one_min_duration!r}")
        allow: object = self.n_plus_one_allow  # a str from a caller's mistake is iterable too
        if isinstance(allow, str) or not all(isinstance(x, str) for x in self.n_plus_one_allow):
            raise ConfigError(f"n_plus_one_allow: expected statements or fingerprints, got {self.n_plus_one_allow!r}")
        for pattern in self.excluded_urls:
            _parsed(_regex, "excluded_urls", pattern)
        if not float(self.event_loop_block_threshold) > 0:
            raise ConfigError("event_loop_block_threshold: expected a positive number of seconds, "
                              f"got {self.event_loop_block_threshold!r}")
        if self.health_timeout <= 0:
            raise ConfigError(f"health_timeout: expected a positive number of seconds, got {self.health_timeout!r}")
        if not float(self.health_interval) >= 0:
            raise ConfigError(f"health_interval: expected a number of seconds >= 0, got {self.health_interval!r}")
        paths = [self.metrics_path, self.health_path, self.liveness_path, self.readiness_path]
        for name, value in zip(("metrics_path", "health_path", "liveness_path", "readiness_path"), paths):
            if not str(value).startswith("/"):
                raise ConfigError(f"{name}: expected a path starting with '/', got {value!r}")
