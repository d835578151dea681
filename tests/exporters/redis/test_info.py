"""INFO parsing: canned Redis 6, Redis 7 and Valkey layouts, and hypothesis fuzzing."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from stackwatch.core.redis.info import parse_fields, parse_info, parse_number

from .collect import canned_text


def test_redis6_layout() -> None:
    info = parse_info(canned_text("redis6"))
    assert info.text("redis_version") == "6.0.16"
    assert info.number("used_memory") == 104857600
    assert info.text("maxmemory_policy") == "allkeys-lru"
    assert info.text("config_file") == "/etc/redis/redis.conf"
    assert not info.has_section("latencystats")
    assert info.has_section("commandstats")
    assert parse_fields(info.section("commandstats")["cmdstat_get"]) == {
        "calls": "600000", "usec": "1200000", "usec_per_call": "2.00"}
    assert info.section("keyspace")["db2"] == "keys=20,expires=0,avg_ttl=0"
    assert info.section("modules") == {}


def test_redis7_layout_with_crlf() -> None:
    info = parse_info(canned_text("redis7").replace("\n", "\r\n").encode())
    assert info.text("role") == "slave"
    assert info.number("maxclients") == 1000
    assert info.section("latencystats")["latency_percentiles_usec_get"] == "p50=1.003,p99=3.007,p99.9=10.047"
    assert "cmdstat_client|setname" in info.section("commandstats")
    assert info.section("errorstats")["errorstat_WRONGTYPE"] == "count=1"


def test_valkey_layout() -> None:
    info = parse_info(canned_text("valkey8"))
    assert info.text("server_name") == "valkey"
    assert info.text("valkey_version") == "8.0.1"
    assert info.text("redis_version") == "7.2.4"
    assert parse_fields(info.section("replication")["slave0"])["type"] == "replica"


def test_values_with_colons_and_odd_lines() -> None:
    info = parse_info("# Server\nexecutable:/usr/bin/redis-server\nno colon here\n:novalue\nos:Linux:x\n"
                      "#Weird Section\nk:v\n")
    assert info.text("executable") == "/usr/bin/redis-server"
    assert info.text("os") == "Linux:x"
    assert info.section("weird section") == {"k": "v"}
    assert info.text("") is None


def test_numbers() -> None:
    assert parse_number("1.5") == 1.5
    assert parse_number("-1") == -1
    assert parse_number("ok") is None
    assert parse_number("nan") is None
    assert parse_number("1.20M") is None
    assert parse_number("") is None


@settings(max_examples=300, deadline=None)
@given(st.text() | st.binary().map(lambda b: b.decode("latin-1")))
def test_never_raises_on_arbitrary_text(text: str) -> None:
    info = parse_info(text)
    for key in info.fields:
        info.number(key)
        parse_fields(info.fields[key])


@settings(max_examples=300, deadline=None)
@given(st.binary())
def test_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    parse_info(data)


_names = st.text(string.ascii_lowercase + string.digits + "_|", min_size=1, max_size=20)
_values = st.text(string.printable.replace("\n", "").replace("\r", "").replace("\x0b", "")
                  .replace("\x0c", ""), max_size=30).map(str.strip)
_sections = st.dictionaries(st.text(string.ascii_letters, min_size=1, max_size=12),
                            st.dictionaries(_names, _values, max_size=8), max_size=5)


@settings(max_examples=200, deadline=None)
@given(_sections)
def test_round_trips_known_fields(sections: dict[str, dict[str, str]]) -> None:
    text = "\r\n".join(f"# {name}\r\n" + "".join(f"{k}:{v}\r\n" for k, v in fields.items())
                       for name, fields in sections.items())
    info = parse_info(text)
    expected: dict[str, dict[str, str]] = {}
    for name, fields in sections.items():  # later sections with the same name merge, like INFO
        expected.setdefault(name.lower(), {}).update(fields)
    for name, fields in expected.items():
        assert dict(info.section(name)) == fields
    for fields in expected.values():
        for key in fields:
            assert info.text(key) is not None
