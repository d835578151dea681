"""The Redis target end to end against real servers: up/down across a restart, bad passwords,
unreachable ports, a least-privilege ACL user, requirepass, URL validation and the kind's
flags and targets-file entries."""

from __future__ import annotations

import logging
import time

import pytest
from rq import Queue

from stackwatch.core.options import OptionError
from stackwatch.core.redis import source
from stackwatch.core.redis.connection import InvalidURL, parse_redis_url, url_name
from stackwatch.core.redis.queue_spec import KNOWN_LAYOUTS, parse_queue_spec
from stackwatch.core.redis.source import OWN_READS_PER_TRANSACTION, RedisSource
from stackwatch.exporters.collector import Collector, Intervals, Tier
from stackwatch.exporters.kinds import Common
from stackwatch.exporters.redis import COLLECTORS, KIND, RedisOptions, RedisTarget
from stackwatch.exporters.server import Exporter
from tests.fixtures.procs import free_port

from .collect import sample, samples
from .queue_jobs import succeed

FAST = Intervals(fast=0.05, slow=0.05, rare=0.05)

#: The least privilege the exporter needs (documented in docs/metrics.md).
ACL_RULES = ["on", ">monitor-pw", "-@all", "+ping", "+info", "+config|get", "+slowlog|get", "+slowlog|len",
             "+latency|histogram",
             "+scan", "+pttl", "+dbsize", "+client|setname", "allkeys"]


def _target(url: str, options: RedisOptions | None = None) -> RedisTarget:
    return RedisTarget("t", url, [cls() for cls in COLLECTORS], FAST, options or RedisOptions())


def _poll(target: RedisTarget) -> list:
    time.sleep(FAST.fast)  # every collector is due again
    target.refresh()
    return target.families()


def _poll_until(target: RedisTarget, name: str, expected: float, timeout: float = 20) -> list:
    deadline = time.monotonic() + timeout
    while True:
        families = _poll(target)
        if sample(families, name) == expected or time.monotonic() > deadline:
            return families
        time.sleep(0.05)


def test_every_collector_succeeds(redis_server) -> None:
    target = _target(redis_server.url)
    families = _poll(target)
    assert sample(families, "redis_up") == 1
    for cls in COLLECTORS:
        assert sample(families, "redis_scrape_collector_success", collector=cls.name) == 1, cls.name
    assert sample(families, "redis_scrape_collector_series", collector="stats") > 0
    names = {c["name"] for c in redis_server.client().client_list()}
    assert "stackwatch" in names  # the connection is named for CLIENT LIST
    target.close()


def test_restart_shows_down_then_up_without_exporter_restart(redis_factory) -> None:
    server = redis_factory()
    target = _target(server.url)
    assert sample(_poll(target), "redis_up") == 1
    server.stop()
    down = _poll_until(target, "redis_up", 0)
    assert sample(down, "redis_up") == 0
    assert sample(down, "redis_connection_error", reason="connection_lost") == 1 or \
        sample(down, "redis_connection_error", reason="unreachable") == 1
    assert sample(down, "redis_memory_used_bytes") is None  # no stale snapshot while down
    again = _poll(target)  # the reconnect attempt while the server is still down
    assert sample(again, "redis_connection_error", reason="unreachable") == 1
    server.start()
    up = _poll_until(target, "redis_up", 1)
    assert sample(up, "redis_up") == 1
    assert sample(up, "redis_connection_error", reason="unreachable") is None
    assert sample(up, "redis_memory_used_bytes") > 0
    target.close()


def test_wrong_password(redis_factory, caplog: pytest.LogCaptureFixture) -> None:
    server = redis_factory(requirepass="right-secret")
    url = f"redis://:wrong-secret@{server.host}:{server.port}/0"
    with caplog.at_level(logging.WARNING):
        families = _poll(_target(url))
    assert sample(families, "redis_up") == 0
    assert sample(families, "redis_connection_error", reason="authentication") == 1
    assert "wrong-secret" not in caplog.text
    no_password = _poll(_target(f"redis://{server.host}:{server.port}/0"))
    assert sample(no_password, "redis_connection_error", reason="authentication") == 1


def test_requirepass(redis_factory) -> None:
    server = redis_factory(requirepass="s3cret")
    families = _poll(_target(server.url))
    assert sample(families, "redis_up") == 1
    assert sample(families, "redis_scrape_collector_success", collector="ttl_sampler") == 1


def test_least_privilege_acl_user(redis_factory) -> None:
    server = redis_factory()
    admin = server.client()
    admin.execute_command("ACL", "SETUSER", "stackwatch", *ACL_RULES)
    admin.set("user:1", 1)
    target = _target(f"redis://stackwatch:monitor-pw@{server.host}:{server.port}/0")
    families = _poll(target)
    assert sample(families, "redis_up") == 1
    for cls in COLLECTORS:
        assert sample(families, "redis_scrape_collector_success", collector=cls.name) == 1, cls.name
    assert {dict(k)["collector"] for k, v in samples(families, "redis_scrape_collector_disabled").items() if v} == set()
    assert sample(families, "redis_ttl_keys_sampled") == 1
    assert sample(families, "redis_config_maxclients") > 0
    target.close()


def test_wrong_acl_password(redis_factory) -> None:
    server = redis_factory()
    server.client().execute_command("ACL", "SETUSER", "stackwatch", *ACL_RULES)
    families = _poll(_target(f"redis://stackwatch:nope@{server.host}:{server.port}/0"))
    assert sample(families, "redis_connection_error", reason="authentication") == 1


def test_unreachable() -> None:
    families = _poll(_target(f"redis://127.0.0.1:{free_port()}/0"))
    assert sample(families, "redis_up") == 0
    assert sample(families, "redis_connection_error", reason="unreachable") == 1


def test_sampler_lookups_stay_out_of_the_hit_ratio(redis_factory) -> None:
    server = redis_factory()
    client = server.client()
    pipe = client.pipeline(transaction=False)
    for i in range(2000):
        pipe.set(f"k:{i}", 1)
    pipe.execute()
    target = _target(server.url)
    _poll(target)  # first window; the sampler checks 2000 keys (2000 PTTL "hits")
    client.get("k:1")
    client.get("missing")
    families = _poll(target)  # the sampler runs again in this window
    assert sample(families, "redis_keyspace_hit_ratio") == pytest.approx(0.5)
    target.close()


def test_other_clients_ttl_lookups_stay_out_of_the_hit_ratio(redis_factory) -> None:
    """Another sampler's PTTLs and TTLs (stackwatch check, a second exporter) count as hits in
    INFO just as the exporter's own do."""
    server = redis_factory()
    client = server.client()
    client.mset({f"k:{i}": 1 for i in range(500)})
    target = _target(server.url)
    _poll(target)
    pipe = client.pipeline(transaction=False)
    for i in range(500):
        pipe.pttl(f"k:{i}")
        pipe.ttl(f"k:{i}")
    pipe.execute()
    client.get("k:1")
    for _ in range(3):
        client.get("missing")
    families = _poll(target)
    assert sample(families, "redis_keyspace_hit_ratio") == pytest.approx(0.25)
    target.close()


def _app_lookups(families: list) -> tuple[float, float]:  # type: ignore[type-arg]
    """Exported hits and misses as the recording rules read them: every PTTL taken off the hits."""
    pttl = sample(families, "redis_commands_total", cmd="pttl") or 0.0
    return (sample(families, "redis_keyspace_hits_total") or 0.0) - pttl, \
        sample(families, "redis_keyspace_misses_total") or 0.0


def _raw_lookups(client) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    stats = client.info("stats")
    return stats["keyspace_hits"], stats["keyspace_misses"]


def _queues(server) -> RedisOptions:  # type: ignore[no-untyped-def]
    """Queues whose reads hit (an RQ queue holding a job, a stream) and miss (RQ's empty
    registries, a list that does not exist, ``auto``'s libraries that are not in use)."""
    client = server.client()
    Queue("emails", connection=client).enqueue(succeed, 1)
    client.xadd("events", {"n": 1})
    client.xgroup_create("events", "mailers", id="0")
    client.set("page:1", "cached")
    specs = [parse_queue_spec("list:absent"), parse_queue_spec("stream:events"), *KNOWN_LAYOUTS]
    return RedisOptions(queues=tuple(specs))


@pytest.mark.parametrize("per_transaction", [OWN_READS_PER_TRANSACTION, 2])
def test_queue_reads_stay_out_of_the_keyspace_counters_and_the_hit_ratio(redis_factory, monkeypatch,
                                                                         per_transaction: int) -> None:
    """The exporter's reads of queue keys are keyspace hits and misses in INFO: measured by Redis
    inside their own transactions and left out, so only the application's GETs move the counters;
    exact too when the reads are cut into many short transactions (Redis serves no one else
    while one runs)."""
    monkeypatch.setattr(source, "OWN_READS_PER_TRANSACTION", per_transaction)
    server = redis_factory()
    client = server.client()
    target = _target(server.url, _queues(server))
    first = _poll(target)
    assert sample(first, "job_queue_depth", system="rq", queue="emails", state="queued") == 1
    raw = _raw_lookups(client)
    for _ in range(3):
        families = _poll(target)
        assert _app_lookups(families) == _app_lookups(first)
    grown = [_raw_lookups(client)[i] - raw[i] for i in (0, 1)]
    # per poll 8 misses (LLEN absent, RQ's 4 registries and workers set, EXISTS arq:queue and celery)
    assert grown[1] == 3 * 8
    # and every lookup Redis counted is one the exporter measured: its queue reads and its PTTLs
    own = [sum((sample(f, f"redis_exporter_keyspace_{kind}_total", reader=r) or 0) * sign
               for f, sign in ((families, 1), (first, -1)) for r in ("queues", "ttl_sampler"))
           for kind in ("hits", "misses")]
    assert own == grown and grown[0] > 3 * 5

    client.get("page:1")  # the application: one hit, one miss
    client.get("page:2")
    families = _poll(target)
    hits, misses = _app_lookups(families)
    assert (hits, misses) == (_app_lookups(first)[0] + 1, _app_lookups(first)[1] + 1)
    assert sample(families, "redis_keyspace_hit_ratio") == 0.5
    target.close()


def test_queue_reads_stay_out_across_a_stats_reset(redis_factory) -> None:
    """After ``CONFIG RESETSTAT`` (or a restart) the counters hold none of the earlier reads: none
    is taken off them, and the counters never go below the application's lookups."""
    server = redis_factory()
    client = server.client()
    target = _target(server.url, _queues(server))
    _poll(target)
    _poll(target)
    client.config_resetstat()
    client.get("page:1")
    for _ in range(3):
        assert _app_lookups(_poll(target)) == (1, 0)
    target.close()


@pytest.mark.parametrize("url, message", [
    ("http://h:6379", "scheme must be redis:// or rediss://"),
    ("redis://:pw@h:99999/0", "Port out of range"),
    ("redis://:pw@h:6379/abc", "database number"),
    ("redis://:pw@:6379/0", "missing host"),
    ("redis://:p@ss/word@h:6379/0", "percent-encode"),
])
def test_malformed_urls_name_the_problem_not_the_password(url: str, message: str) -> None:
    with pytest.raises(InvalidURL) as raised:
        parse_redis_url(url)
    assert message in str(raised.value)
    for secret in ("pw", "ss/word"):
        assert f":{secret}@" not in str(raised.value)
    with pytest.raises(OptionError) as option_error:
        KIND.targets({"redis_url": [url]}, Common())
    assert "--redis-url" in str(option_error.value)
    assert ":pw@" not in str(option_error.value) and "ss/word" not in str(option_error.value)


def test_kind_builds_targets_from_flags_and_the_targets_file(redis_server) -> None:
    values = {"redis_url": [redis_server.url, "rediss://u:pw@cache.example:6380/2"],
              "redis_ttl_sample_keys": 500, "redis_ttl_prefixes_max": 5}
    targets = KIND.targets(values, Common(intervals=FAST, disabled=frozenset({"redis.ttl_sampler"})))
    assert [t.name for t in targets] == [url_name(redis_server.url), "cache.example:6380/2"]
    assert "ttl_sampler" not in [c.name for c in targets[0].collectors]
    assert targets[0].options.ttl_sample_keys == 500
    assert "pw" not in str(targets[1].describe_target())
    probe = KIND.probe_target("cache", {"redis_url": redis_server.url}, values, Common(intervals=FAST))
    assert probe is not None and probe.name == "cache"
    assert KIND.probe_target("db", {"postgres_dsn": "host=x"}, values, Common()) is None
    with pytest.raises(OptionError, match="target 'bad'"):
        KIND.probe_target("bad", {"redis_url": "redis://:pw@h:0/0"}, values, Common())


def test_exporter_serves_redis_with_server_label_and_probe(redis_server) -> None:
    target = _target(redis_server.url)
    target.refresh()
    exporter = Exporter([target], {"cache": target})
    registry = exporter.metrics_registry()
    assert registry.get_sample_value("redis_up", {"server": "t"}) == 1
    probe = exporter.probe_registry("cache")
    assert probe is not None and probe.get_sample_value("redis_up", {"server": "t"}) == 1
    target.close()


def test_one_info_per_poll_shared_by_every_collector(redis_factory) -> None:
    server = redis_factory()
    admin = server.client()
    target = _target(server.url)

    def info_calls() -> int:
        return int(admin.info("commandstats").get("cmdstat_info", {}).get("calls", 0))

    for _ in range(3):
        before = info_calls()
        _poll(target)
        assert info_calls() - before - 1 == 1  # minus this test's own INFO commandstats
    target.close()


class TickCounter(Collector[RedisSource]):
    """A fast-tier collector that only counts the ticks it runs in."""

    name = "tick_counter"
    tier = Tier.FAST

    def __init__(self) -> None:
        self.ticks = 0

    def collect(self, source: RedisSource) -> list:
        self.ticks += 1
        return []


def test_one_info_per_tick_over_real_scheduling(redis_factory) -> None:
    """The pollers run for seconds at a short interval: every tick sends exactly one INFO, shared by
    all the INFO-based collectors (their schedules never drift apart)."""
    server = redis_factory()
    admin = server.client()
    counter = TickCounter()
    target = RedisTarget("t", server.url, [cls() for cls in COLLECTORS] + [counter],
                         Intervals(fast=0.1, slow=0.7), RedisOptions())
    exporter = Exporter([target], {})

    def info_calls() -> int:
        return int(admin.info("commandstats").get("cmdstat_info", {}).get("calls", 0))

    before = info_calls()
    exporter.start()
    time.sleep(4.0)
    exporter.stop()
    calls = info_calls() - before - 1  # minus this test's first INFO commandstats
    assert counter.ticks >= 10
    assert calls == counter.ticks
    assert sample(target.families(), "redis_scrape_collector_success", collector="config") == 1


def test_user_without_ping_is_a_permission_error(redis_factory) -> None:
    server = redis_factory()
    server.client().execute_command("ACL", "SETUSER", "noping", "on", ">pw", "-@all", "+info", "+client|setname")
    families = _poll(_target(f"redis://noping:pw@{server.host}:{server.port}/0"))
    assert sample(families, "redis_up") == 0
    assert sample(families, "redis_connection_error", reason="permission") == 1
