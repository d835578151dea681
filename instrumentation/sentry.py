"""Sentry error tracking that respects a team's own Sentry setup.

* A Sentry client that is already initialised (``sentry_sdk.init`` called by the service) is
  used as it is: stackwatch never initialises Sentry over it, never changes its options and never
  closes it. If that client runs Sentry's own Starlette/FastAPI integration, the integration
  already reports requests, so stackwatch reports nothing itself (no duplicate events).
* Otherwise, when ``SENTRY_DSN`` is set, stackwatch initialises a client with Sentry's automatic
  framework integrations off (they monkeypatch Starlette for every app in the process) and reports
  unhandled exceptions and the responses whose status is in ``sentry_failed_request_status_codes``
  (default 5xx) itself. Without a DSN or an existing client, ``sentry_sdk`` is not even imported.

Each request runs in its own Sentry isolation scope, starting without breadcrumbs, so an event
carries only the breadcrumbs of its own request. Events get the ``request`` (method, URL and
headers filtered by sentry-sdk's own header filter; the query string and client address as the
client's ``data_collection`` allows, or else only with ``send_default_pii``), the transaction
named by the route template (source ``route``) and the OpenTelemetry trace id (tag
``otel.trace_id`` and ``contexts.trace``). When the client has tracing enabled
(``SENTRY_TRACES_SAMPLE_RATE`` > 0 or a ``traces_sampler``), each request is a Sentry transaction
(``http.server``) that continues an incoming ``sentry-trace`` header, or else the request's
OpenTelemetry trace (same trace id, sampled by Sentry's own rate).
"""

from __future__ import annotations

import base64
import binascii
import importlib
import logging
import re
import sys
import weakref
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote_plus

from .config import Settings
from .tracing import span_ids

__all__ = ["SentryReporter", "SentryRequest"]

logger = logging.getLogger("stackwatch.instrumentation")
_FRAMEWORK_INTEGRATIONS = ("starlette", "fastapi")
_FILTERED = "[Filtered]"  # sentry-sdk's own stand-in for removed data
_SHORTEST_SECRET = 4  # shorter withheld values are not searched for: they would match everywhere
#: headers that describe the request, not who sends it: withheld or not, never searched for
_PLAIN_HEADERS = frozenset({"host", "accept", "accept-encoding", "accept-language", "connection", "content-length",
                            "content-type", "user-agent", "cache-control", "pragma", "te", "upgrade"})
_ours: weakref.WeakSet[Any] = weakref.WeakSet()  # clients stackwatch initialised (one per instrumented app)


def _supported(sdk: Any) -> bool:
    """Whether this sentry-sdk is a 2.x (3.x replaced transactions with spans): with another, say
    so and leave Sentry to the service, rather than report nothing without a word."""
    version = str(getattr(sdk, "VERSION", "?"))
    if version.split(".")[0] == "2":
        return True
    logger.warning("stackwatch reports to Sentry with sentry-sdk 2.x; sentry-sdk %s is installed, so stackwatch "
                   "reports nothing to Sentry (use Sentry's own FastAPI integration, or sentry-sdk<3)", version)
    return False


def _service_client(sdk: Any) -> Any:
    """The active client the service initialised itself, or None."""
    client = sdk.get_client()
    return client if client.is_active() and client not in _ours else None


class SentryReporter:
    """Reports request failures through the Sentry client stackwatch initialised or found."""

    def __init__(self, settings: Settings, options: dict[str, Any] | None = None) -> None:
        import sentry_sdk

        self._sdk = sentry_sdk
        self.failed_status = settings.sentry_failed_request_status_codes
        existing = _service_client(sentry_sdk)
        self.owned = existing is None
        if self.owned:
            config: dict[str, Any] = {
                "dsn": settings.sentry_dsn,
                "environment": settings.sentry_environment,
                "release": settings.sentry_release,
                "traces_sample_rate": settings.sentry_traces_sample_rate,
                "auto_enabling_integrations": False,
            }
            config.update(options or {})
            sentry_sdk.init(**config)
            # The client init just made global; events of this app go to it even after another app
            # initializes its own, and close() closes this one only.
            self._client = sentry_sdk.get_global_scope().client
            _ours.add(self._client)
        else:
            self._client = existing
            if options:
                logger.warning("Sentry is already initialised: sentry_options are not applied to the existing client")
        client_options = self._client.options
        # A rate of 0 "enables" tracing in Sentry's terms but samples nothing: start no transactions.
        self.tracing = bool(client_options.get("traces_sampler") or client_options.get("traces_sample_rate"))

    @classmethod
    def create(cls, settings: Settings, options: dict[str, Any] | None = None) -> SentryReporter | None:
        """A reporter when ``SENTRY_DSN`` is set or a Sentry client is active; None when Sentry
        reports requests itself."""
        sdk = sys.modules.get("sentry_sdk")
        existing = None if sdk is None else _service_client(sdk)
        if existing is None and not settings.sentry_dsn:
            return None
        if existing is not None and any(name in existing.integrations for name in _FRAMEWORK_INTEGRATIONS):
            logger.info("Sentry's own Starlette/FastAPI integration reports requests; stackwatch leaves it to it")
            return None
        if not _supported(sdk or importlib.import_module("sentry_sdk")):
            return None
        return cls(settings, options)

    def begin(self, asgi_scope: dict[str, Any], span: Any, route: Callable[[], str]) -> SentryRequest:
        """Enter a fresh isolation scope for one request (``span``: its OpenTelemetry span or None);
        ``route()`` gives the route template when asked."""
        return SentryRequest(self, asgi_scope, span, route)

    def close(self) -> None:
        """Flush and shut down the client stackwatch initialised (a found one is left alone)."""
        if not self.owned:
            return
        self._client.close(timeout=2)
        scope = self._sdk.get_global_scope()
        if scope.client is self._client:
            scope.set_client(None)


class SentryRequest:
    """The Sentry side of one request: its isolation scope, request data, maybe a transaction."""

    __slots__ = ("_asgi", "_ids", "_isolation", "_reporter", "_route", "_transaction")

    def __init__(self, reporter: SentryReporter, asgi_scope: dict[str, Any], span: Any,
                 route: Callable[[], str]) -> None:
        sdk = reporter._sdk
        self._reporter = reporter
        self._asgi = asgi_scope
        self._route = route
        self._ids = span_ids(span)
        self._isolation = sdk.isolation_scope()
        scope = self._isolation.__enter__()
        scope.set_client(reporter._client)
        scope.clear_breadcrumbs()
        scope.add_event_processor(self._process)
        self._transaction: Any = None
        if reporter.tracing:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in asgi_scope.get("headers", ())
                       if k in (b"sentry-trace", b"baggage")}
            if "sentry-trace" not in headers and self._ids is not None:
                headers = {"sentry-trace": "-".join(self._ids)}  # no sampling flag: Sentry's rate decides
            transaction = sdk.continue_trace(headers, op="http.server", name=asgi_scope["path"], source="url",
                                             origin="auto.http.stackwatch")
            self._transaction = sdk.start_transaction(transaction)
            self._transaction.__enter__()

    def _process(self, event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        try:
            request, withheld = request_data(self._asgi)
            event.setdefault("request", request)
            if not event.get("transaction"):
                event["transaction"] = self._route()
                event["transaction_info"] = {"source": "route"}
            return scrubbed(event, withheld)
        except Exception as error:  # noqa: BLE001 -- sentry-sdk would send it as it was: fail closed instead
            # a warning, not an error: Sentry's logging integration would make an error an event of its own
            logger.warning("could not scrub a Sentry event (%s); its local variables are left out",
                           type(error).__name__)
            return _without_locals(event)

    def end(self, error: BaseException | None, status: int, method: str, route: str) -> None:
        """Report ``error`` or a failed status, finish the transaction, leave the isolation scope."""
        reporter = self._reporter
        sdk = reporter._sdk
        transaction = self._transaction
        try:
            if transaction is not None:
                sdk.get_current_scope().set_transaction_name(route, source="route")
                transaction.set_http_status(status)
            if error is not None or status in reporter.failed_status:
                with sdk.new_scope() as scope:
                    scope.set_tag("http.request.method", method)
                    scope.set_tag("http.route", route)
                    scope.set_tag("http.response.status_code", str(status))
                    if self._ids is not None:
                        trace_id, span_id = self._ids
                        scope.set_tag("otel.trace_id", trace_id)
                        if transaction is None:
                            scope.set_context("trace", {"trace_id": trace_id, "span_id": span_id, "op": "http.server"})
                    if error is not None:
                        scope.capture_exception(error)
                    else:
                        scope.capture_message(f"HTTP {status} {method} {route}", level="error")
        finally:
            if transaction is not None:
                transaction.__exit__(None, None, None)
            self._isolation.__exit__(None, None, None)


def request_data(asgi_scope: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The event's ``request`` as sentry-sdk's ASGI integration builds it, stricter on the query
    string, and the values it withheld (for :func:`scrubbed`).

    Headers go through sentry-sdk's own filter (cookies, ``Authorization``, forwarding headers
    removed unless the client's settings allow them; the client's event scrubber removes more by
    name after this, and those count as withheld too). The query string and client address follow
    the client's ``data_collection`` when the team configured it (sentry-sdk 2.76+: its
    ``url_query_params`` filter and ``user_info``, which win over ``send_default_pii`` as they do
    in sentry-sdk itself); otherwise they are sent only with ``send_default_pii`` (query strings
    carry user ids and tokens).
    """
    import sentry_sdk
    from sentry_sdk.integrations._wsgi_common import _filter_headers

    sentry = sentry_sdk.get_client()
    raw = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in asgi_scope.get("headers", ())]
    headers: dict[str, str] = {}
    for name, value in raw:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    scheme = asgi_scope.get("scheme", "http")
    host = headers.get("host")
    if host is None and asgi_scope.get("server"):
        address, port = asgi_scope["server"][:2]
        host = f"{address}:{port}"
    path, root = asgi_scope.get("path", ""), asgi_scope.get("root_path", "")
    if root and path != root and not path.startswith(root + "/"):  # ASGI servers differ on this
        path = root + path
    sent = _filter_headers(headers)
    data: dict[str, Any] = {"method": asgi_scope.get("method"), "url": f"{scheme}://{host}{path}" if host else path,
                            "headers": sent}
    denied = set(getattr(sentry.options.get("event_scrubber"), "denylist", ()))
    secret = {name for name, value in headers.items() if name.lower() not in _PLAIN_HEADERS
              and (sent.get(name) != value or name.lower().replace("-", "_") in denied)}
    withheld = [part for name, value in raw if name in secret for part in _parts(value)]
    raw_query = asgi_scope.get("query_string", b"").decode("latin-1")
    query, address = _personal(sentry, raw_query)
    if query:
        data["query_string"] = query
    if raw_query and query != raw_query:
        kept = set(parse_qsl(query or "", keep_blank_values=True))
        withheld += [raw_query, unquote_plus(raw_query)]
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            if (key, value) not in kept:
                withheld += [value, quote(value, safe=""), quote_plus(value, safe="")]
    client = asgi_scope.get("client")
    if client and address:
        data["env"] = {"REMOTE_ADDR": client[0]}
    elif client:
        withheld.append(str(client[0]))
    return data, withheld


def _parts(value: str) -> list[str]:
    """One withheld header value and the secrets inside it: each cookie's value, each address of
    a forwarding list, the credentials after an ``Authorization`` scheme (decoded for Basic)."""
    scheme, _, credentials = value.partition(" ")
    credentials = credentials.strip()
    parts = [value, credentials]
    parts += [piece.partition("=")[2].strip().strip('"') for piece in re.split(r"[;,]", value)]
    parts += [piece.strip() for piece in value.split(",")]
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("latin-1")
        except (binascii.Error, ValueError):
            decoded = ""
        parts += [decoded, decoded.partition(":")[2]]
    return parts


def scrubbed(event: dict[str, Any], withheld: list[str]) -> dict[str, Any]:
    """``event`` with every withheld value of four characters or more replaced by ``[Filtered]``
    where the raw request can show up: the stack frames' local variables (the ASGI scope,
    headers objects), ``extra`` and the breadcrumbs (an access-log line with the query string).

    The request, the exception's type and message, level, transaction and tags are left as they
    are: the withheld values are the client's, and a client must not be able to rewrite them.
    Only whole words are replaced, so a short cookie value cannot eat into longer ones.
    """
    secrets = sorted({w for w in withheld if len(w) >= _SHORTEST_SECRET}, key=len, reverse=True)
    if not secrets:
        return event
    pattern = re.compile("|".join(rf"(?<!\w){re.escape(w)}(?!\w)" for w in secrets))
    inside: set[int] = set()  # the containers being walked: a structure that holds itself ends there

    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            return pattern.sub(_FILTERED, value)
        if isinstance(value, (bytes, bytearray)):
            return _FILTERED if pattern.search(value.decode("latin-1")) else value
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if not isinstance(value, (Mapping, list, tuple, set, frozenset)):
            return _FILTERED if pattern.search(repr(value)) else value
        if id(value) in inside:
            return _FILTERED
        inside.add(id(value))
        try:
            if isinstance(value, Mapping):
                return {k: scrub(v) for k, v in value.items()}
            return [scrub(v) for v in value]
        finally:
            inside.discard(id(value))

    for frame in _frames(event):
        if "vars" in frame:
            frame["vars"] = scrub(frame["vars"])
    if "extra" in event:
        event["extra"] = scrub(event["extra"])
    crumbs = event.get("breadcrumbs")
    if isinstance(crumbs, dict) and "values" in crumbs:
        crumbs["values"] = scrub(crumbs["values"])
    return event


def _frames(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The stack frames of the event's exceptions and threads."""
    frames: list[Any] = []
    for section in ("exception", "threads"):
        values = (event.get(section) or {}).get("values") or []
        for value in values:
            frames += ((value.get("stacktrace") or {}).get("frames") or []) if isinstance(value, dict) else []
    return [f for f in frames if isinstance(f, dict)]


def _without_locals(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` with no frame variables, ``extra`` or breadcrumbs: what is sent when scrubbing failed."""
    for frame in _frames(event):
        frame.pop("vars", None)
    event.pop("extra", None)
    event.pop("breadcrumbs", None)
    return event


def _personal(client: Any, query: str) -> tuple[str | None, bool]:
    """The query string ``client``'s settings let through (or ``None``), and whether they let the
    client address through."""
    collection = client.options.get("data_collection")
    if isinstance(collection, dict) and collection.get("provided_by_user"):
        from sentry_sdk.data_collection import _apply_data_collection_filtering_to_query_string as filtered

        return (filtered(query, collection["url_query_params"]) if query else None), bool(collection["user_info"])
    pii = bool(client.should_send_default_pii())
    return (query if pii else None), pii
