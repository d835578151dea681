"""Settings for :func:`stackwatch.instrumentation.instrument`: standard env vars, then keyword overrides.

Every setting has an environment twin. The OpenTelemetry, Sentry and client_python variables keep
their standard names; stackwatch's own use the ``STACKWATCH_`` prefix. A bad value raises
:class:`ConfigError` naming the key and the value (DSNs redacted) instead of being ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from stackwatch.core.options import non_negative_float, positive_float, positive_int, ratio
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


def _text(key: str, raw: str) -> str:
    return raw.strip()


def _optional_text(key: str, raw: str) -> str | None:
    return raw.strip() or None


def _bool(key: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{key}: expected true/false, got {raw!r}")


def _number(parse: Callable[[str], Any], expected: str) -> Callable[[str, str], Any]:
    """A setting parser made of one of the shared number parsers (:mod:`stackwatch.core.options`,
    the exporter's and the check's too); its error names the key, what was expected and the value."""
    def parsed(key: str, raw: str) -> Any:
        try:
            return parse(raw)
        except ValueError:
            raise ConfigError(f"{key}: expected {expected}, got {raw!r}") from None

    return parsed


_ratio = _number(ratio, "a number between 0 and 1")
_positive_float = _number(positive_float, "a positive number of seconds")
_positive_int = _number(positive_int, "a positive integer")
_seconds = _number(non_negative_float, "a number of seconds >= 0")


def _statements(key: str, raw: str) -> tuple[str, ...]:
    """Statements or fingerprints separated by ``;`` or new lines."""
    return tuple(part.strip() for part in raw.replace("\n", ";").split(";") if part.strip())


def _patterns(key: str, raw: str | Iterable[str]) -> tuple[str, ...]:
    """Comma-separated regular expressions (OpenTelemetry's excluded-URLs and captured-headers format)."""
    parts = raw.split(",") if isinstance(raw, str) else raw
    patterns = tuple(str(part).strip() for part in parts if str(part).strip())
    for pattern in patterns:
        _regex(key, pattern)
    return patterns


def _regex(key: str, pattern: Any) -> None:
    try:
        re.compile(pattern)
    except (re.error, TypeError) as error:
        raise ConfigError(f"{key}: {pattern!r} is not a regular expression ({error})") from None


def _port(key: str, raw: str) -> int | None:
    if not raw.strip():
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise ConfigError(f"{key}: expected a TCP port (0-65535), got {raw!r}")
    return value


def _sampler(key: str, raw: str) -> str:
    value = raw.strip().lower()
    if value not in SAMPLERS:
        raise ConfigError(f"{key}: expected one of {', '.join(SAMPLERS)}, got {raw!r}")
    return value


def _path(key: str, raw: str) -> str:
    value = raw.strip()
    if not value.startswith("/"):
        raise ConfigError(f"{key}: expected a path starting with '/', got {raw!r}")
    return value


def _url(key: str, raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"{key}: expected an http(s) URL, got {redact(value)!r}")
    return value


def _dsn(key: str, raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if "://" not in value or "@" not in value:
        raise ConfigError(f"{key}: expected a Sentry DSN like https://KEY@host/PROJECT, got {redact(value)!r}")
    return value


def _protocol(key: str, raw: str) -> str | None:
    value = raw.strip().lower()
    if not value:
        return None
    if value not in OTLP_PROTOCOLS:
        raise ConfigError(f"{key}: expected one of {', '.join(OTLP_PROTOCOLS)}, got {raw!r}")
    return value


def _status_codes(key: str, raw: str | Iterable[int]) -> frozenset[int]:
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
            raise ConfigError(f"{key}: expected HTTP status codes or ranges like 500-599,429, got {raw!r}")
        codes.update(range(first, last + 1))
    return frozenset(codes)


def _setting(default: Any, env: str, parse: Callable[[str, str], Any], fallback: str | None = None,
             coerce: bool = False) -> Any:
    """A field read from ``env`` (or, when that is unset, from the more general ``fallback``).

    ``coerce``: a keyword value that is not a string goes through ``parse`` too (lists, sets).
    """
    return field(default=default, metadata={"env": env, "parse": parse, "fallback": fallback, "coerce": coerce})


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. Build with :meth:`resolve`; fields are documented in docs/instrumentation.md."""

    service_name: str = _setting("unknown_service", "OTEL_SERVICE_NAME", _text)
    traces: bool = _setting(True, "STACKWATCH_TRACES", _bool)
    otlp_endpoint: str | None = _setting(None, "OTEL_EXPORTER_OTLP_ENDPOINT", _url)
    otlp_traces_endpoint: str | None = _setting(None, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", _url)
    otlp_protocol: str | None = _setting(None, "OTEL_EXPORTER_OTLP_PROTOCOL", _protocol)
    otlp_traces_protocol: str | None = _setting(None, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", _protocol)
    sdk_disabled: bool = _setting(False, "OTEL_SDK_DISABLED", _bool)
    sampler: str = _setting("parentbased_traceidratio", "OTEL_TRACES_SAMPLER", _sampler)
    sampler_arg: float = _setting(1.0, "OTEL_TRACES_SAMPLER_ARG", _ratio)
    sentry_dsn: str | None = _setting(None, "SENTRY_DSN", _dsn)
    sentry_environment: str | None = _setting(None, "SENTRY_ENVIRONMENT", _optional_text)
    sentry_release: str | None = _setting(None, "SENTRY_RELEASE", _optional_text)
    sentry_traces_sample_rate: float = _setting(0.0, "SENTRY_TRACES_SAMPLE_RATE", _ratio)
    sentry_failed_request_status_codes: frozenset[int] = _setting(
        SERVER_ERRORS, "STACKWATCH_SENTRY_FAILED_REQUEST_STATUS_CODES", _status_codes, coerce=True)
    capture_request_headers: tuple[str, ...] = _setting(
        (), "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", _patterns, coerce=True)
    capture_response_headers: tuple[str, ...] = _setting(
        (), "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE", _patterns, coerce=True)
    capture_headers_sanitize: tuple[str, ...] = _setting(
        (), "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS", _patterns, coerce=True)
    multiproc_dir: str | None = _setting(None, "PROMETHEUS_MULTIPROC_DIR", _optional_text)
    metrics: bool = _setting(True, "STACKWATCH_METRICS", _bool)
    exemplars: bool = _setting(True, "STACKWATCH_EXEMPLARS", _bool)
    metrics_path: str = _setting("/metrics", "STACKWATCH_METRICS_PATH", _path)
    metrics_port: int | None = _setting(None, "STACKWATCH_METRICS_PORT", _port)
    metrics_addr: str = _setting("0.0.0.0", "STACKWATCH_METRICS_ADDR", _text)
    health_path: str = _setting("/health", "STACKWATCH_HEALTH_PATH", _path)
    liveness_path: str = _setting("/health/live", "STACKWATCH_LIVENESS_PATH", _path)
    readiness_path: str = _setting("/health/ready", "STACKWATCH_READINESS_PATH", _path)
    health_timeout: float = _setting(2.0, "STACKWATCH_HEALTH_TIMEOUT", _positive_float)
    #: seconds between background evaluations of the health checks; 0 runs them only on request
    health_interval: float = _setting(15.0, "STACKWATCH_HEALTH_INTERVAL", _seconds)
    n_plus_one_threshold: int = _setting(DEFAULT_N_PLUS_ONE_THRESHOLD, "STACKWATCH_N_PLUS_ONE_THRESHOLD", _positive_int)
    n_plus_one_strict: bool = _setting(False, "STACKWATCH_N_PLUS_ONE_STRICT", _bool)
    excluded_urls: tuple[str, ...] = _setting(
        (), "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", _patterns, fallback="OTEL_PYTHON_EXCLUDED_URLS"
    )
    n_plus_one_allow: tuple[str, ...] = _setting((), "STACKWATCH_N_PLUS_ONE_ALLOW", _statements)
    n_plus_one_min_duration: float = _setting(0.0, "STACKWATCH_N_PLUS_ONE_MIN_DURATION", _seconds)
    event_loop: bool = _setting(True, "STACKWATCH_EVENT_LOOP", _bool)
    event_loop_block_threshold: float = _setting(
        HTTP.event_loop_block_seconds, "STACKWATCH_EVENT_LOOP_BLOCK_THRESHOLD", _positive_float)

    @classmethod
    def resolve(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Defaults, then ``environ``, then ``overrides`` (keyword arguments win)."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}; known: {', '.join(known)}")
        values: dict[str, Any] = {}
        for name, spec in known.items():
            env = spec.metadata["env"]
            if name in overrides:
                value = overrides[name]
                if isinstance(value, str) or (spec.metadata["coerce"] and value is not None):
                    value = spec.metadata["parse"](name, value)
                values[name] = value
            elif env in environ:
                values[name] = spec.metadata["parse"](env, environ[env])
            elif spec.metadata["fallback"] and spec.metadata["fallback"] in environ:
                fallback = spec.metadata["fallback"]
                values[name] = spec.metadata["parse"](fallback, environ[fallback])
        settings = cls(**values)
        settings._validate()
        return settings

    @classmethod
    def env_name(cls, name: str) -> str:
        """The environment variable of setting ``name``."""
        return next(f.metadata["env"] for f in fields(cls) if f.name == name)  # type: ignore[no-any-return]

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
            _regex("excluded_urls", pattern)
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
