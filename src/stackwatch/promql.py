"""PromQL fragments shared by the alert rules and ``stackwatch check``.

Standard library only: imported at runtime by the CLI.
"""

from __future__ import annotations

from stackwatch.thresholds import POSTGRES, SELECTORS, UNJUDGED_COMMANDS

__all__ = ["CONTENT_ENCODING_FAMILY", "DATA_FILESYSTEMS", "EXPORTER_KINDS", "TTL_COMMANDS", "cache_request_rate",
           "compressed_share", "database_growth_forecast", "filesystem_avail_ratio", "http_request_quantile",
           "http_request_rate", "instance_request_share", "instances_up", "job_queue_oldest_age", "le_matcher",
           "memory_used_ratio", "n_plus_one_detections", "pg_sessions_per_transaction", "pool_wait_mean",
           "recent_increase", "redis_lookup_rate", "select_rows_per_call", "statement_mean_seconds"]


#: the prefixes of the exporter's target kinds, which every kind's self-observability families carry
#: (``<prefix>_up``, ``<prefix>_scrape_collector_success``...): a regex alternation for ``__name__``
EXPORTER_KINDS = "pg|redis|process|stackwatch_alertmanager"


#: commands that read a key's TTL: stackwatch's TTL sampling (the exporter's sampler and
#: ``stackwatch check``) sends one per sampled key, and Redis counts each as a keyspace lookup
TTL_COMMANDS = ("pttl", "ttl")


#: node_exporter's filesystems that hold data: virtual ones (tmpfs, overlay...) and read-only images
#: (squashfs) left out, as the node mixin does
DATA_FILESYSTEMS = 'fstype!="", fstype!~"tmpfs|ramfs|squashfs|overlay|nsfs|fuse.lxcfs", mountpoint!=""'


def filesystem_avail_ratio(matchers: str = "") -> str:
    """Share of each data filesystem left to ordinary users (``avail``: root's reserved blocks
    count as used, as they are for PostgreSQL and Redis); ``matchers`` narrow it further."""
    m = ", ".join(x for x in (DATA_FILESYSTEMS, matchers) if x)
    return f"node_filesystem_avail_bytes{{{m}}} / node_filesystem_size_bytes{{{m}}}"


def memory_used_ratio(matchers: str = "") -> str:
    """Share of a host's memory in use, MemAvailable counted as free (page cache the kernel can
    reclaim is not pressure)."""
    m = f"{{{matchers}}}" if matchers else ""
    return f"1 - node_memory_MemAvailable_bytes{m} / node_memory_MemTotal_bytes{m}"


def _narrowed(selector: str, matcher: str) -> str:
    """``selector`` (``{...}`` or empty) with one more label matcher."""
    inner = selector.strip()[1:-1].strip() if selector.strip() else ""
    return "{" + ", ".join(m for m in (inner, matcher) if m) + "}"


def redis_lookup_rate(kind: str, by: str | None, window: str, selector: str = "") -> str:
    """Per-second Redis key lookups of ``kind`` (``hits`` or ``misses``) made by clients.

    Redis counts every ``PTTL``/``TTL`` as a keyspace hit (a miss for a vanished key), so TTL
    sampling -- the exporter's sampler, ``stackwatch check``, another exporter's -- would flatter
    a quiet cache's hit rate. Hits leave out every TTL command Redis executed
    (``redis_commands_total{cmd=~"pttl|ttl"}``, redis_exporter's family too), clamped at 0:
    counting the few sampled keys that vanished as hits removed errs towards a lower ratio,
    never a false pass. Misses are the raw rate. ``by=None`` sums everything; ``selector``
    (``{...}``) narrows every series.
    """
    total = "sum" if by is None else f"sum by ({by})"
    raw = f"{total} (rate(redis_keyspace_{kind}_total{selector}[{window}]))"
    if kind != "hits":
        return raw
    ttl = _narrowed(selector, f'cmd=~"{"|".join(TTL_COMMANDS)}"')
    sampling = f"{total} (rate(redis_commands_total{ttl}[{window}]))"
    return f"clamp_min({raw} - ({sampling} or {raw} * 0), 0)"


def cache_request_rate(by: str, window: str, result: str | None = None) -> str:
    """Per-second application cache lookups (``cache_requests_total``), of one ``result`` (``hit``,
    ``miss``) or all, summed ``by``: the hit rate as the service sees it, which no TTL sampling
    of Redis can touch."""
    selector = f'{{result="{result}"}}' if result else ""
    return f"sum by ({by}) (rate(cache_requests_total{selector}[{window}]))"


def n_plus_one_detections(window: str, by: str | None = None, selector: str = "") -> str:
    """N+1 detections (``db_client_n_plus_one_total``) in the last ``window``, summed ``by``
    (a route's counter is born with its first detection: :func:`recent_increase`)."""
    total = "sum" if by is None else f"sum by ({by})"
    return f"{total} ({recent_increase(f'db_client_n_plus_one_total{selector}', window)})"


#: responses where compression matters, by route and ``Content-Encoding`` class (the instrumentation's)
CONTENT_ENCODING_FAMILY = "http_server_responses_content_encoding_total"


def compressed_share(by: str | None, window: str, selector: str = "", *, recent: bool = False) -> str:
    """Share of the responses where compression matters (:data:`CONTENT_ENCODING_FAMILY`:
    compressible, sent encoded, or of 1 KiB and more to a client accepting compression) that went
    out encoded; 0 when none did.
    ``by=None`` sums everything; ``selector`` (``{...}``) narrows every series. ``recent`` counts
    with :func:`recent_increase` instead of ``rate``: the same share, but a route's series born
    inside the window counts whole (a one-off judgement such as ``stackwatch check``'s)."""
    total = "sum" if by is None else f"sum by ({by})"

    def counted(series: str) -> str:
        return f"{total} ({recent_increase(series, window) if recent else f'rate({series}[{window}])'})"

    encoded_only = _narrowed(selector, 'content_encoding!="identity"')
    every = counted(f"{CONTENT_ENCODING_FAMILY}{selector}")
    encoded = counted(f"{CONTENT_ENCODING_FAMILY}{encoded_only}")
    return f"({encoded} or {every} * 0) / {every}"


def database_growth_forecast(by: str, window: str, horizon_seconds: int, selector: str = "") -> str:
    """Bytes the PostgreSQL databases will have grown by in ``horizon_seconds``, at the linear
    trend of the last ``window``, summed ``by`` (``server`` among them)."""
    size = f"pg_database_size_bytes{selector}"
    return (f"sum by ({by}) (predict_linear({size}[{window}], {horizon_seconds}))"
            f" - sum by ({by}) ({size})")


def recent_increase(series: str, window: str) -> str:
    """What an application counter counted in the last ``window``, new series included.

    The instrumentation creates a counter's child with its first event, so a series born inside
    the window starts at its first value and ``increase()`` alone sees nothing of it (or only what
    came after). Series that existed a window ago count their increase; younger ones their whole value.
    """
    return f"(increase({series}[{window}]) and {series} offset {window}) or {series}"


def pool_wait_mean(by: str, window: str, selector: str = "") -> str:
    """Mean seconds a caller waited for a connection from a client pool over ``window``, ``by``.

    Pools that handed out no connection in the window are left out (not NaN).
    """
    family = "db_client_connection_wait_time_seconds"
    return (f"sum by ({by}) (rate({family}_sum{selector}[{window}]))"
            f" / sum by ({by}) (rate({family}_count{selector}[{window}]) > 0)")


def statement_mean_seconds(window: str, selector: str = "") -> str:
    """Mean seconds per call over ``window`` of each exported statement judged as the
    application's: what it does now, not since the statistics were last reset.

    Statements whose ``command`` is one of :data:`~stackwatch.thresholds.UNJUDGED_COMMANDS`
    (maintenance, monitoring) are left out, and so are those called fewer than
    ``POSTGRES.slow_statement_min_calls`` times in the window: a one-off data load or migration
    is slow once, not a slow path.
    """
    judged = _narrowed(selector, f'command!~"{"|".join(UNJUDGED_COMMANDS)}"')
    calls = f"pg_stat_statements_calls_total{judged}"
    return (f"(rate(pg_stat_statements_seconds_total{judged}[{window}]) / rate({calls}[{window}])"
            f" and increase({calls}[{window}]) >= {POSTGRES.slow_statement_min_calls})")


def http_request_rate(by: str, window: str, selector: str = "") -> str:
    """Requests per second the instrumented services answered over ``window``, summed ``by``."""
    return f"sum by ({by}) (rate(http_server_request_duration_seconds_count{selector}[{window}]))"


def http_request_quantile(quantile: float, by: str, window: str, min_rate: float) -> str:
    """The ``quantile`` of the request duration over ``window``, ``by``, where more than
    ``min_rate`` requests per second were answered (fewer let a couple of requests decide)."""
    buckets = f"sum by ({by}, le) (rate(http_server_request_duration_seconds_bucket[{window}]))"
    return f"histogram_quantile({quantile:g}, {buckets}) and on ({by}) ({http_request_rate(by, window)} > {min_rate:g})"


def pg_sessions_per_transaction(window: str, selector: str = "", by: str = "job, instance, server") -> str:
    """New PostgreSQL sessions per transaction over ``window``, ``by`` (PostgreSQL 14+ counts
    sessions): near 1 when clients connect per request, near 0 behind a pool ("connection churn").
    Servers without transactions in the window are left out (not NaN)."""
    sessions = f"sum by ({by}) (rate(pg_stat_database_sessions{selector}[{window}]))"
    transactions = (f"sum by ({by}) (rate(pg_stat_database_xact_commit{selector}[{window}])"
                    f" + rate(pg_stat_database_xact_rollback{selector}[{window}]))")
    return f"{sessions} / ({transactions} > 0)"


def select_rows_per_call(window: str, selector: str = "") -> str:
    """Rows returned per call over ``window`` of each exported SELECT statement called at least
    ``POSTGRES.slow_statement_min_calls`` times in it ("unbounded queries": no LIMIT).

    Only ``command="select"``: rows of an UPDATE or DELETE are rows changed, not rows read.
    """
    selects = _narrowed(selector, 'command="select"')
    calls = f"pg_stat_statements_calls_total{selects}"
    return (f"(rate(pg_stat_statements_rows_total{selects}[{window}]) / rate({calls}[{window}])"
            f" and increase({calls}[{window}]) >= {POSTGRES.slow_statement_min_calls})")


def job_queue_oldest_age(by: str, matchers: str = "") -> str:
    """Seconds the longest-waiting job of each queue has waited, ``by``; 0 for a queue where
    nothing waits (the exporter then has no age to export, and an empty queue is not late).
    ``matchers`` are label matchers without braces (``job=~"$job"``)."""
    queued = ",".join(m for m in (matchers, 'state="queued"') if m)
    return (f"max by ({by}) (job_queue_oldest_age_seconds{{{matchers}}})"
            f" or max by ({by}) (job_queue_depth{{{queued}}}) * 0")


def le_matcher(boundary: float) -> str:
    """A matcher selecting the histogram bucket whose upper bound is ``boundary``.

    Clients spell bounds differently (Go and Prometheus 2 write ``1``, client_python and
    Prometheus 3, which normalises classic histograms on ingestion, write ``1.0``), so an exact
    ``le="1"`` finds nothing on one side: the regex accepts both spellings.
    """
    text = repr(float(boundary))
    spellings = [text, text.removesuffix(".0")] if text.endswith(".0") else [text]
    return 'le=~"' + "|".join(s.replace(".", "\\\\.") for s in spellings) + '"'


def instance_request_share(window: str) -> str:
    """Each instance's share (0..1) of its service's requests over ``window``, by ``job, instance``.

    Read from the instrumentation on every instance (what the load balancer actually did, whichever
    balancer it is); services without requests in the window are left out (no NaN).
    """
    rate = http_request_rate("job, instance", window)
    return f"{rate} / on (job) group_left () (sum by (job) ({rate}) > 0)"


def instances_up() -> str:
    """How many instances of each instrumented service Prometheus scrapes successfully, by ``job``:
    the count an instance's fair share of the traffic (1 / n) is reckoned with."""
    return f"count by (job) (up{{{SELECTORS.services}}} == 1)"
