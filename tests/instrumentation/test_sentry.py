"""Sentry through the real sentry-sdk against a local receiver: a team's own client is kept, each
request has its own scope, request data is scrubbed, transactions are named by route template."""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import parse_qs

import fastapi
import httpx
import pytest
import sentry_sdk

from stackwatch.instrumentation import ConfigError, instrument, uninstrument

from .apps import make_app
from .fresh import ROOT, run_python

SECRET_HEADERS = {"cookie": "session=s3cr3t", "authorization": "Bearer t0ken"}

TEAM_SETUP = """
import asyncio, httpx, sentry_sdk
sentry_sdk.init(dsn={dsn!r}, environment="prod-eu", traces_sample_rate=1.0, auto_enabling_integrations={auto})
from stackwatch.instrumentation import instrument, uninstrument
from tests.instrumentation.apps import make_app
app = make_app()
instrument(app, environ={{"SENTRY_DSN": {dsn!r}, "SENTRY_ENVIRONMENT": "production"}})
async def go():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                 base_url="http://t") as c:
        assert [(await c.get(p)).status_code for p in ("/items/1", "/items/2", "/boom")] == [200, 200, 500]
asyncio.run(go())
uninstrument(app)
client = sentry_sdk.get_client()
print(client.is_active(), client.options["environment"])
sentry_sdk.flush(5)
"""


@pytest.mark.parametrize("framework_integration", [True, False])
def test_a_sentry_client_the_team_initialised_is_used_as_it_is(sentry_receiver, framework_integration):
    code = TEAM_SETUP.format(dsn=sentry_receiver.dsn, auto=framework_integration)
    assert run_python(code) == "True prod-eu"  # still the team's client, untouched by uninstrument
    transactions = sentry_receiver.wait_for_transactions(3)
    assert {t["environment"] for t in transactions} == {"prod-eu"}
    (event,) = sentry_receiver.wait_for_events(1)
    assert event["environment"] == "prod-eu"
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert len(sentry_receiver.events) == 1  # reported once: by Sentry's integration or by stackwatch


SENTRY_3 = ROOT / ".tmp" / "sentry-sdk-3"  # installed there by scripts/install-test-deps

UNSUPPORTED_SDK = """
import asyncio, logging, httpx, sentry_sdk
said = []
logging.getLogger("stackwatch.instrumentation").addHandler(logging.Handler())
logging.getLogger("stackwatch.instrumentation").handlers[-1].emit = lambda record: said.append(record.getMessage())
from stackwatch.instrumentation import instrument, uninstrument
from tests.instrumentation.apps import make_app
app = make_app()
instrument(app, environ={{"SENTRY_DSN": {dsn!r}}})
async def go():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                 base_url="http://t") as c:
        return [(await c.get(p)).status_code for p in ("/items/1", "/boom")]
codes = asyncio.run(go())
uninstrument(app)
print(sentry_sdk.VERSION.split(".")[0], codes, " | ".join(m for m in said if "sentry-sdk" in m))
"""


def test_an_unsupported_sentry_sdk_is_named_and_left_alone(sentry_receiver):
    """sentry-sdk 3 has no transactions: stackwatch says so and reports nothing, instead of losing
    every event without a word (what it did before the check)."""
    assert (SENTRY_3 / "sentry_sdk").is_dir(), "run `make deps`: it installs sentry-sdk 3 into .tmp for this test"
    out = run_python(UNSUPPORTED_SDK.format(dsn=sentry_receiver.dsn), PYTHONPATH=f"{SENTRY_3}:{ROOT}")
    assert out.startswith("3 [200, 500] stackwatch reports to Sentry with sentry-sdk 2.x; sentry-sdk 3.0.0b2 is "
                          "installed, so stackwatch reports nothing to Sentry"), out
    assert sentry_receiver.events == []


def shop_app():
    """Two endpoints that log (Sentry breadcrumbs) and then wait for each other: requests in pairs overlap."""
    app = make_app()
    log = logging.getLogger("shop")
    pair = asyncio.Barrier(2)

    async def note(user: str) -> None:
        log.info("handling user %s", user)
        await asyncio.wait_for(pair.wait(), 10)

    @app.get("/orders/{order_id}/slow")
    async def slow(order_id: int, user: str) -> dict[str, int]:
        await note(user)
        return {"order": order_id}

    @app.get("/orders/{order_id}/fail")
    async def fail(order_id: int, user: str) -> None:
        await note(user)
        raise RuntimeError("kaboom")

    return app


@pytest.fixture
def shop_logger():
    logger = logging.getLogger("shop")
    level = logger.level
    logger.setLevel(logging.INFO)
    yield logger
    logger.setLevel(level)


async def concurrently(app, *paths: str, base_url: str = "http://t") -> list[int]:
    """GET ``paths`` at the same time, in-process (``app``) or from a real server (``app=None``, ``base_url``)."""
    transport = None if app is None else httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=base_url, headers=SECRET_HEADERS) as client:
        responses = await asyncio.gather(*(client.get(p) for p in paths))
    return [r.status_code for r in responses]


async def test_each_request_has_its_own_scope_and_scrubbed_request_data(sentry_receiver, registry, provider,
                                                                        shop_logger):
    app = shop_app()
    instrument(app, registry=registry, tracer_provider=provider, sentry_dsn=sentry_receiver.dsn, environ={})
    assert await concurrently(app, "/orders/3/slow?user=u3", "/orders/4/slow?user=u4") == [200, 200]
    assert await concurrently(app, "/orders/1/slow?user=u1", "/orders/2/fail?user=u7") == [200, 500]
    uninstrument(app)
    (event,) = sentry_receiver.wait_for_events(1)
    crumbs = [b["message"] for b in event["breadcrumbs"]["values"] if b.get("category") == "shop"]
    assert crumbs == ["handling user u7"]
    text = json.dumps(event)
    assert not any(other in text for other in ("u1", "u3", "u4"))
    assert event["transaction"] == "/orders/{order_id}/fail"
    assert event["transaction_info"] == {"source": "route"}
    request = event["request"]
    assert request["method"] == "GET" and request["url"] == "http://t/orders/2/fail"
    assert "query_string" not in request and "env" not in request
    assert "s3cr3t" not in json.dumps(request) and "t0ken" not in json.dumps(request)
    assert request["headers"]["host"] == "t"
    assert any(frame.get("vars") for frame in event["exception"]["values"][-1]["stacktrace"]["frames"])
    for withheld in ("s3cr3t", "t0ken", "user=u7", "127.0.0.1"):  # the frames' locals hold the raw ASGI scope
        assert withheld not in text, withheld


def test_through_uvicorn_an_event_has_only_its_own_access_log_lines(serve, sentry_receiver, registry, shop_logger):
    app = shop_app()
    instrument(app, registry=registry, traces=False, sentry_dsn=sentry_receiver.dsn, environ={})
    with serve(app, log_level="info", access_log=True) as base:
        assert asyncio.run(concurrently(None, "/orders/3/slow?user=u3", "/orders/4/slow?user=u4",
                                        base_url=base)) == [200, 200]
        assert asyncio.run(concurrently(None, "/orders/1/slow?user=u1", "/orders/2/fail?user=u7",
                                        base_url=base)) == [200, 500]
    uninstrument(app)
    (event,) = sentry_receiver.wait_for_events(1)
    crumbs = [b.get("message", "") for b in event["breadcrumbs"]["values"]]
    assert "handling user u7" in crumbs
    assert not any(other in json.dumps(event) for other in ("user=u1", "user=u3", "user=u4", "user u1"))
    assert event["transaction"] == "/orders/{order_id}/fail"
    assert "s3cr3t" not in json.dumps(event) and "t0ken" not in json.dumps(event)  # uvicorn's frames hold them too


@pytest.mark.filterwarnings("ignore:The send_default_pii option is deprecated:DeprecationWarning")  # sentry-sdk 2.76+
async def test_send_default_pii_sends_the_query_string(sentry_receiver, registry, shop_logger):
    app = shop_app()
    instrument(app, registry=registry, traces=False, sentry_dsn=sentry_receiver.dsn,
               sentry_options={"send_default_pii": True}, environ={})
    assert await concurrently(app, "/orders/1/slow?user=u1", "/orders/2/fail?user=u7") == [200, 500]
    uninstrument(app)
    (event,) = sentry_receiver.wait_for_events(1)
    assert event["request"]["query_string"] == "user=u7"
    assert event["request"]["headers"]["cookie"] == "[Filtered]"  # sentry-sdk filters cookies even then
    assert "u1" not in json.dumps(event)
    assert "s3cr3t" not in json.dumps(event)  # nor are they in the frames' locals


async def test_the_clients_values_are_scrubbed_but_cannot_rewrite_the_event(sentry_receiver, registry):
    """Repeated Cookie and Authorization headers, a raw headers object the app attached as extra and
    a dict that holds itself are all scrubbed; a cookie valued like the error changes nothing else."""
    app = make_app()

    @app.get("/attach")
    async def attach(request: fastapi.Request) -> None:
        loop: dict[str, object] = {"headers": request.headers}
        loop["self"] = loop
        sentry_sdk.set_extra("headers", request.headers)
        sentry_sdk.set_extra("loop", loop)
        raise RuntimeError("kaboom")

    instrument(app, registry=registry, traces=False, sentry_dsn=sentry_receiver.dsn, environ={})
    headers = [("cookie", "sid=Zk93qLpXsecret"), ("cookie", "a=RuntimeError; b=kaboom; c=error"),
               ("authorization", "Bearer aaaa1111"), ("authorization", "Basic dXNlcjpodW50ZXIy")]  # user:hunter2
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/attach", headers=headers)).status_code == 500
    uninstrument(app)
    (event,) = sentry_receiver.wait_for_events(1)
    for frame in event["exception"]["values"][-1]["stacktrace"]["frames"]:  # this file's source holds them
        for key in ("pre_context", "context_line", "post_context"):
            frame.pop(key, None)
    text = json.dumps(event)
    for withheld in ("Zk93qLpXsecret", "aaaa1111", "dXNlcjpodW50ZXIy", "hunter2"):
        assert withheld not in text, withheld
    error = event["exception"]["values"][-1]
    assert (error["type"], error["value"], event["level"], event["transaction"]) == (
        "RuntimeError", "kaboom", "error", "/attach")
    assert event["extra"]["headers"]["host"] == "t"  # what is not withheld stays


class _Unprintable:
    def __repr__(self) -> str:
        raise ValueError("no repr")


async def test_an_event_that_cannot_be_scrubbed_goes_without_locals(sentry_receiver, registry, caplog):
    """sentry-sdk sends an event as it was when a processor fails: the scrub fails closed instead."""
    app = make_app()

    @app.get("/odd")
    async def odd() -> None:
        sentry_sdk.set_extra("odd", _Unprintable())
        raise RuntimeError("kaboom")

    instrument(app, registry=registry, traces=False, sentry_dsn=sentry_receiver.dsn, environ={})
    assert await concurrently(app, "/odd") == [500]
    uninstrument(app)
    (event,) = sentry_receiver.wait_for_events(1)
    frames = event["exception"]["values"][-1]["stacktrace"]["frames"]
    assert frames and not any("vars" in frame for frame in frames)
    assert "extra" not in event and "s3cr3t" not in json.dumps(event)
    assert "could not scrub a Sentry event" in caplog.text


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # send_default_pii beside data_collection: the point
async def test_the_teams_data_collection_wins_over_send_default_pii(sentry_receiver, registry, shop_logger):
    """As in sentry-sdk (2.76+) itself: with both set, data_collection decides (no query string, no address)."""
    app = shop_app()
    instrument(app, registry=registry, traces=False, sentry_dsn=sentry_receiver.dsn,
               sentry_options={"send_default_pii": True,
                               "data_collection": {"url_query_params": {"mode": "off"}, "user_info": False}},
               environ={})
    assert await concurrently(app, "/orders/1/slow?user=u1", "/orders/2/fail?user=u7") == [200, 500]
    uninstrument(app)
    (event,) = sentry_receiver.wait_for_events(1)
    assert "query_string" not in event["request"] and "env" not in event["request"]
    assert "user=u7" not in json.dumps(event["request"])


async def test_data_collection_sends_the_query_string_through_its_filter(sentry_receiver, registry, shop_logger):
    """A team on data_collection alone gets the query string its filter lets through (not nothing)."""
    app = shop_app()
    instrument(app, registry=registry, traces=False, sentry_dsn=sentry_receiver.dsn,
               sentry_options={"data_collection": {"url_query_params": {"mode": "denylist"}}}, environ={})
    assert await concurrently(app, "/orders/1/slow?user=u1", "/orders/2/fail?user=u7&api_token=zq9x") == [200, 500]
    uninstrument(app)
    (event,) = sentry_receiver.wait_for_events(1)
    query = parse_qs(event["request"]["query_string"])
    assert query == {"user": ["u7"], "api_token": ["[Filtered]"]}, event["request"]
    assert not any(withheld in json.dumps(event) for withheld in ("zq9x", "u1", "s3cr3t", "t0ken"))


@pytest.mark.parametrize(("rate", "expected"), [("1.0", 2), ("0", 0)])
async def test_sentry_traces_sample_rate_records_transactions(sentry_receiver, registry, provider, spans, rate,
                                                             expected):
    app = make_app()
    instrument(app, registry=registry, tracer_provider=provider, sentry_dsn=sentry_receiver.dsn,
               environ={"SENTRY_TRACES_SAMPLE_RATE": rate})
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/items/7")).status_code == 200
        assert (await client.get("/v1/users/3/orders")).status_code == 200
        await client.get("/boom")  # the event makes the flush below observable for rate 0 too
    uninstrument(app)
    sentry_receiver.wait_for_events(1)
    transactions = sentry_receiver.wait_for_transactions(expected) if expected else sentry_receiver.transactions
    ok = sorted(t["transaction"] for t in transactions if t["contexts"]["trace"].get("status") == "ok")
    assert ok == (["/items/{item_id}", "/v1/users/{user_id}/orders"] if expected else [])
    assert all(t["transaction_info"]["source"] == "route" and t["contexts"]["trace"]["op"] == "http.server"
               for t in transactions)
    otel_traces = {format(s.context.trace_id, "032x") for s in spans.get_finished_spans()}
    assert {t["contexts"]["trace"]["trace_id"] for t in transactions} <= otel_traces  # one trace id in both


async def test_which_status_codes_go_to_sentry(sentry_receiver, registry):
    app = make_app()
    instrument(app, registry=registry, traces=False, sentry_dsn=sentry_receiver.dsn,
               environ={"STACKWATCH_SENTRY_FAILED_REQUEST_STATUS_CODES": "404,400-403"})
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        statuses = [(await client.get(p)).status_code for p in ("/missing", "/unavailable", "/boom", "/items/1")]
    assert statuses == [404, 503, 500, 200]
    uninstrument(app)
    events = sentry_receiver.wait_for_events(2)
    assert sorted(e["tags"]["http.response.status_code"] for e in events) == ["404", "500"]  # 500: an exception


def test_bad_status_codes_are_a_clear_error(registry):
    with pytest.raises(ConfigError, match="STACKWATCH_SENTRY_FAILED_REQUEST_STATUS_CODES: .* got '5xx'"):
        instrument(make_app(), registry=registry, environ={"STACKWATCH_SENTRY_FAILED_REQUEST_STATUS_CODES": "5xx"})
