"""Service overview: is the service healthy for its users, and where does a request's time go?

RED by route (rate, errors, duration) with exemplars that open the trace behind a slow
request, the event loop's lag and the routes that block it, then what each request costs
downstream: queries per request, N+1 loops, the connection pool and the application cache.
"""

from __future__ import annotations

from grafanalib.core import Dashboard

from alerts.catalog import ERRORS_BY_INSTANCE, LATENCY_BY_INSTANCE, REQUESTS_BY_INSTANCE
from stackwatch.promql import compressed_share, n_plus_one_detections, pool_wait_mean
from stackwatch.thresholds import CACHE, HTTP, POOL, SELECTORS

from ..common import (
    Grid,
    dashboard,
    label_variable,
    no_threshold,
    q,
    selector,
    stat,
    state_mapping,
    timeseries,
    too_high,
    too_low,
)

__all__ = ["build"]

#: the raw series of one service's requests, narrowed by every variable
RAW = selector("job", "instance", "route")
#: the per-route recorded series carry job and http_route only (they sum over instances)
REC = selector("job", "route")
JOB = selector("job")
INST = selector("job", "instance")
WINDOW = "$__rate_interval"
#: recorded series carry no exemplars: latency panels add the raw p99, which brings the trace ids
EXEMPLARS = q(f"histogram_quantile(0.99, sum by (le) "
              f"(rate(http_server_request_duration_seconds_bucket{{{RAW}}}[{WINDOW}])))",
              "p99 (raw, with exemplars)", exemplar=True)


def _requests(g: Grid) -> None:
    g.row("Requests: rate, errors, duration")
    g.add(stat("Request rate", "Requests per second over the selected services and instances, all routes "
               "(recorded per instance, 5m rate).",
               f"sum({REQUESTS_BY_INSTANCE}{{{INST}}})", "reqps", no_threshold()), w=6, h=4)
    g.add(stat("Error ratio (5xx)", "Share of requests answered with a 5xx status over 5 minutes, selected "
               "instances, all routes. Red above the checklist's error-rate threshold.",
               f"sum({ERRORS_BY_INSTANCE}{{{INST}}}) / sum({REQUESTS_BY_INSTANCE}{{{INST}}})",
               "percentunit", too_high(HTTP.error_ratio)), w=6, h=4)
    g.add(stat("p99 latency", "Slowest selected instance's 99th percentile request duration over 5 minutes, "
               "all routes (recorded per instance). Red above the p99 budget.",
               f'max({LATENCY_BY_INSTANCE}{{{selector("job", "instance", quantile="0.99")}}})',
               "s", too_high(HTTP.latency_p99_seconds)), w=6, h=4)
    g.add(stat("In-flight requests", "Requests being served right now, summed over instances.",
               f"sum(http_server_active_requests{{{INST}}})", "short", no_threshold()), w=6, h=4)

    g.add(timeseries("Request rate by route", "Which routes carry the traffic?", [
        (f"sum by (http_route) (rate(http_server_request_duration_seconds_count{{{RAW}}}[{WINDOW}]))",
         "{{http_route}}"),
    ], "reqps", stacked=True), w=8)
    g.add(timeseries("Error ratio by route", "Which routes fail? 5xx share per route over 5 minutes (recorded); "
                     "the dashed line is the alert threshold.", [
        (f"job_http_route:http_server_request_errors:ratio_rate5m{{{REC}}}", "{{job}} {{http_route}}"),
    ], "percentunit", thresholds=too_high(HTTP.error_ratio)), w=8)
    g.add(timeseries("Responses by status code", "What are clients getting back?", [
        (f"sum by (http_response_status_code) (rate(http_server_request_duration_seconds_count{{{RAW}}}[{WINDOW}]))",
         "{{http_response_status_code}}"),
    ], "reqps", stacked=True), w=8)


def _latency(g: Grid) -> None:
    g.row("Latency")
    g.add(timeseries("Latency p50 / p95 / p99", "How long do requests take for most users and for the unlucky "
                     "ones? Recorded quantiles per instance, all routes; the dashed line is the p99 budget. The "
                     "dots are exemplars: click one to open that request's trace.", [
        (f"{LATENCY_BY_INSTANCE}{{{INST}}}", "{{instance}} p{{quantile}}"),
        EXEMPLARS,
    ], "s", thresholds=too_high(HTTP.latency_p99_seconds)), w=12, h=9)
    g.add(timeseries("p99 latency by route, with exemplars", "Which route is slow? Each dot is an exemplar: a "
                     "real request with its trace id; click it to open the trace in Tempo.", [
        q(f"histogram_quantile(0.99, sum by (le, http_route) "
          f"(rate(http_server_request_duration_seconds_bucket{{{RAW}}}[{WINDOW}])))",
          "{{http_route}}", exemplar=True),
    ], "s", thresholds=too_high(HTTP.latency_p99_seconds)), w=12, h=9)
    g.add(timeseries("p50 / p95 / p99 by route (recorded)", "The same quantiles per route from the recording "
                     "rules the alerts use, over all instances of the service: what the latency alert sees "
                     "(exemplars as dots).", [
        (f"job_http_route:http_server_request_duration_seconds:quantile_rate5m{{{REC}}}",
         "{{http_route}} p{{quantile}}"),
        EXEMPLARS,
    ], "s", thresholds=too_high(HTTP.latency_p99_seconds)), w=24, h=8)

    g.add(timeseries("Event loop lag", "Is the event loop free to serve requests? How late its heartbeat "
                     "ran (p99 and p50 per instance): every request on the loop waits as long. Above the dashed "
                     "line a callback blocked the loop (synchronous work in async code).", [
        (f"histogram_quantile(0.99, sum by (instance, le) "
         f"(rate(python_event_loop_lag_seconds_bucket{{{INST}}}[{WINDOW}])))", "{{instance}} p99"),
        (f"histogram_quantile(0.5, sum by (instance, le) "
         f"(rate(python_event_loop_lag_seconds_bucket{{{INST}}}[{WINDOW}])))", "{{instance}} p50"),
    ], "s", thresholds=too_high(HTTP.event_loop_block_seconds)), w=12)
    g.add(timeseries("Event loop blocked, by route", "Which route blocks the loop? Share of the time requests "
                     "of the route held it (stalls of "
                     f"{HTTP.event_loop_block_seconds:g} s or more); the dashed line is the alert threshold.", [
        (f"sum by (http_route) (rate(http_server_event_loop_blocked_seconds_total{{{RAW}}}[{WINDOW}]))",
         "{{http_route}}"),
    ], "percentunit", thresholds=too_high(HTTP.event_loop_blocked_ratio)), w=12)


def _per_request(g: Grid) -> None:
    g.row("Database and cache, per request")
    g.add(timeseries("Queries per request (mean) by route", "How many SQL statements does one request run? "
                     "A route whose count grows with the data is an N+1 loop.", [
        (f"sum by (http_route) (rate(db_client_queries_per_request_sum{{{RAW}}}[{WINDOW}])) / "
         f"sum by (http_route) (rate(db_client_queries_per_request_count{{{RAW}}}[{WINDOW}]))", "{{http_route}}"),
    ], "short"), w=8)
    g.add(timeseries("N+1 detections by route", "Statements that ran at least "
                     f"{HTTP.n_plus_one_repeat_count} times in one request: loops that should be a join or an IN "
                     "list (a route's first detections included, as in the alert).", [
        (n_plus_one_detections(WINDOW, "http_route", f"{{{RAW}}}"), "{{http_route}}"),
    ], "short", thresholds=too_high(HTTP.n_plus_one_detections), drawStyle="bars"), w=8)
    g.add(timeseries("Database operation p99 by operation", "Which kind of statement is slow, seen from the "
                     "client (includes network and pool checkout)?", [
        (f"histogram_quantile(0.99, sum by (le, db_operation_name) "
         f"(rate(db_client_operation_duration_seconds_bucket{{{INST}}}[{WINDOW}])))", "{{db_operation_name}}"),
    ], "s"), w=8)

    g.add(timeseries("Pool connections: used vs max", "Is the connection pool big enough? Used connections "
                     "close to the maximum mean requests will queue.", [
        (f'sum by (pool_name) (db_client_connection_count{{{selector("job", "instance", state="used")}}})',
         "{{pool_name}} used"),
        (f"sum by (pool_name) (db_client_connection_max{{{INST}}})", "{{pool_name}} max"),
    ], "short"), w=8)
    g.add(timeseries("Pool: requests waiting", "Requests queued for a connection right now; any sustained "
                     "queue means the pool is the bottleneck.", [
        (f"sum by (pool_name) (db_client_connection_pending_requests{{{INST}}})", "{{pool_name}}"),
    ], "short", thresholds=too_high(POOL.pending_requests)), w=8)
    g.add(timeseries("Pool: mean wait for a connection", "Time spent before any work starts; the dashed line "
                     "is the alert threshold.", [
        (pool_wait_mean("pool_name", WINDOW, f"{{{INST}}}"), "{{pool_name}}"),
    ], "s", thresholds=too_high(POOL.wait_mean_seconds)), w=8)

    g.add(timeseries("Application cache hit ratio", "Share of the application's cache lookups that hit "
                     "(recorded per service and cache over all its instances, 5m); the checklist's target is "
                     "the dashed line.", [
        (f"job_cache:cache_requests_hits:ratio_rate5m{{{JOB}}}", "{{job}} {{cache}}"),
    ], "percentunit", thresholds=too_low(CACHE.hit_ratio)), w=12)
    g.add(stat("Health checks", "The service's /health checks as last evaluated (1 passing, 0 failing).",
               q(f"min by (check) (health_check_status{{{INST}}})", "{{check}}"), "none",
               too_low(1), mappings=state_mapping(1, "passing", "FAILING"), textMode="value_and_name"), w=12)


def build() -> Dashboard:
    g = Grid()
    _requests(g)
    _latency(g)
    _per_request(g)
    _delivery(g)
    return dashboard("service", __doc__.split("\n")[0], g, [
        label_variable("job", "job", "http_server_request_duration_seconds_count"),
        label_variable("instance", "instance", "http_server_request_duration_seconds_count", parents=["job"]),
        label_variable("route", "http_route", "http_server_request_duration_seconds_count", parents=["job"]),
    ])


def _delivery(g: Grid) -> None:
    """How requests reach the instances (the load balancer) and how responses may be cached."""
    g.row("Load balancing and caching headers")
    g.add(timeseries("Request share per instance", "Is the load balancer spreading the requests? Each "
                     "instance's share of its service's requests (recorded, 5m); with n instances up each should "
                     "be near 1/n. One far above takes a disproportionate share, one near 0 is out of rotation.", [
        (f"job_instance:http_server_requests:share_rate5m{{{INST}}}", "{{job}} {{instance}}"),
    ], "percentunit"), w=8)
    g.add(stat("Instances up", "Instances of each service Prometheus scrapes successfully (of those the "
               f"instance picker selects): load balancing needs at least {HTTP.min_instances}.",
               q(f"count by (job) (up{{{SELECTORS.services}, {INST}}} == 1)", "{{job}}"), "short",
               too_low(HTTP.min_instances), textMode="value_and_name"), w=4)
    g.add(timeseries("Responses by Cache-Control class", "How may browsers, proxies and a CDN keep what each "
                     "route returns? public-immutable for fingerprinted assets, public for shared data, "
                     "private-no-cache for user data, no-store for secrets; none means caches guess.", [
        (f"sum by (http_route, cache_control) "
         f"(rate(http_server_responses_cache_control_total{{{selector('job', 'instance', 'route')}}}[{WINDOW}]))",
         "{{http_route}} {{cache_control}}"),
    ], "reqps", stacked=True), w=12)
    g.add(timeseries("Compressed responses by route", "Does each route compress what is worth it? The share of "
                     "its responses of a text type (sent encoded, or of 1 KiB and more) that went out with a "
                     "Content-Encoding; a route low while others are near 100% bypasses the compression.", [
        (compressed_share("http_route", WINDOW, f"{{{RAW}}}"), "{{http_route}}"),
    ], "percentunit", thresholds=too_low(HTTP.compressed_ratio)), w=12)
    g.add(timeseries("Requests by CDN", "Do static assets come through a CDN? Requests per route by the CDN "
                     "their headers name (none: straight from clients or a plain load balancer).", [
        (f"sum by (http_route, cdn) (rate(http_server_requests_cdn_total{{{RAW}}}[{WINDOW}]))",
         "{{http_route}} {{cdn}}"),
    ], "reqps", stacked=True), w=12)
