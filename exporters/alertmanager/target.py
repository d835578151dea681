"""An Alertmanager as an exporter target: its API v2 at one base URL, read with bounded GETs.

Reachability is checked when the lane opens (``/api/v2/status``, which also tells an Alertmanager
from any other web server); afterwards a failed request is a lost connection, so the target shows
``stackwatch_alertmanager_up 0`` with the reason and reopens with backoff, as the other kinds do.
``user:password@`` in the URL is sent as basic authentication and never shown (principle 7).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from stackwatch.core.option_fields import option
from stackwatch.core.options import positive_float
from stackwatch.core.redact import redact
from stackwatch.core.web import get

from ..target import ConnectedTarget

__all__ = ["AlertmanagerError", "AlertmanagerOptions", "AlertmanagerSource", "AlertmanagerTarget", "check_url",
           "url_name"]


@dataclass(frozen=True)
class AlertmanagerOptions:
    """Knobs of the Alertmanager reader; each declares its flag and environment twin."""

    timeout: float = option("--alertmanager-timeout-seconds", "STACKWATCH_ALERTMANAGER_TIMEOUT_SECONDS",
                            "timeout of each request to Alertmanager", default=5.0, parse=positive_float,
                            metavar="SECONDS")


class AlertmanagerError(RuntimeError):
    """Alertmanager answered, but not as an Alertmanager does; ``reason`` is exported as a label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def check_url(url: str) -> None:
    """Raise ValueError, without the URL's password, when ``url`` is not an http(s) base URL."""
    shown = redact(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise ValueError(f"invalid Alertmanager URL {shown}: {error}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"invalid Alertmanager URL {shown}: scheme must be http:// or https://")
    if not parts.hostname:
        raise ValueError(f"invalid Alertmanager URL {shown}: missing host")
    if port == 0:
        raise ValueError(f"invalid Alertmanager URL {shown}: port must be 1-65535")
    if parts.query or parts.fragment:
        raise ValueError(f"invalid Alertmanager URL {shown}: give the base URL (e.g. http://alertmanager:9093), "
                         "without a query or fragment")


def url_name(url: str) -> str:
    """``host:port`` (and a route prefix): a readable target name that carries no secret."""
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname or ""
    return (f"{host}:{parts.port}" if parts.port else host) + parts.path.rstrip("/")


class AlertmanagerSource:
    """Alertmanager's API v2 under one base URL."""

    def __init__(self, url: str, options: AlertmanagerOptions) -> None:
        self.url = url.rstrip("/")
        self.options = options

    def api(self, path: str) -> Any:
        """The JSON of ``GET <url>/api/v2/<path>``; raises OSError when unreachable and
        :class:`AlertmanagerError` when the answer is not an Alertmanager's."""
        response = get(f"{self.url}/api/v2/{path}", self.options.timeout)
        if response.status in (401, 403):
            raise AlertmanagerError("authentication", f"/api/v2/{path}: HTTP {response.status} (check the user and "
                                    "password in the URL)")
        if response.status != 200:
            raise AlertmanagerError("http_error", f"/api/v2/{path}: HTTP {response.status}")
        try:
            return json.loads(response.body)
        except ValueError:
            raise AlertmanagerError("not_alertmanager", f"/api/v2/{path}: not JSON (is the URL an Alertmanager's?)") \
                from None


class AlertmanagerTarget(ConnectedTarget[AlertmanagerSource, AlertmanagerOptions]):
    prefix = "stackwatch_alertmanager"
    address_key = "url"

    @staticmethod
    def check_address(address: str) -> None:
        check_url(address)

    def open(self) -> AlertmanagerSource:
        source = AlertmanagerSource(self.address, self.options)
        status = source.api("status")
        if not isinstance(status, dict) or "versionInfo" not in status:
            raise AlertmanagerError("not_alertmanager", "/api/v2/status has no versionInfo (is the URL an "
                                    "Alertmanager's?)")
        return source

    def classify_error(self, error: BaseException) -> str:
        if isinstance(error, AlertmanagerError):
            return error.reason
        return "timeout" if isinstance(error, TimeoutError) else "unreachable"

    def is_connection_lost(self, error: BaseException, source: AlertmanagerSource) -> bool:
        return isinstance(error, (OSError, AlertmanagerError))

    def lost_reason(self, error: BaseException | None) -> str:
        return self.classify_error(error) if error is not None else "connection_lost"
