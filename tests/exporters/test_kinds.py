"""What every connected kind (PostgreSQL, Redis) gets from :class:`ConnectedKind`: addresses
checked the same way from the flags and from the targets file, named without their password."""

from __future__ import annotations

from typing import Any

import pytest

from stackwatch.core.options import OptionError
from stackwatch.core.postgres.source import PostgresOptions
from stackwatch.core.redis.source import RedisOptions
from stackwatch.exporters import alertmanager, postgres, redis
from stackwatch.exporters.alertmanager.target import AlertmanagerOptions, AlertmanagerTarget
from stackwatch.exporters.collector import Intervals
from stackwatch.exporters.kinds import Common, ConnectedKind
from stackwatch.exporters.main import KINDS as ALL_KINDS
from stackwatch.exporters.postgres.target import PostgresTarget
from stackwatch.exporters.redis.target import RedisTarget
from stackwatch.exporters.target import ConnectedTarget
from stackwatch.promql import EXPORTER_KINDS

BAD = {
    "pg": "postgresql://app:hunter2secret@db:5432/app?no_such_parameter=1",
    "redis": "redis://:hunter2secret@cache:6379/abc",
    "stackwatch_alertmanager": "ftp://watcher:hunter2secret@alertmanager:9093",
}
KINDS = [postgres.KIND, redis.KIND, alertmanager.KIND]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.prefix)
def test_a_malformed_address_is_refused_where_it_was_given_without_its_password(kind: ConnectedKind[object]) -> None:
    bad = BAD[kind.prefix]
    with pytest.raises(OptionError) as from_flags:
        kind.targets({kind.targets_file_key: [bad]}, Common())
    flag = next(o for o in kind.options if o.dest == kind.targets_file_key)
    assert str(from_flags.value).startswith(f"{flag.flag}/${flag.env}: ")
    with pytest.raises(OptionError) as from_file:
        kind.probe_target("orders", {kind.targets_file_key: bad}, {}, Common())
    assert str(from_file.value).startswith("targets file, target 'orders': ")
    for error in (from_flags.value, from_file.value):
        assert "hunter2secret" not in str(error)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.prefix)
def test_an_entry_for_another_kind_is_left_to_it(kind: ConnectedKind[object]) -> None:
    other = next(key for key in ("postgres_dsn", "redis_url") if key != kind.targets_file_key)
    assert kind.probe_target("orders", {other: "whatever"}, {}, Common()) is None
    assert kind.targets({}, Common()) == []



@pytest.mark.parametrize(("target_class", "options", "good", "bad", "key"), [
    (PostgresTarget, PostgresOptions(), "postgresql://app:hunter2secret@127.0.0.1:1/app", BAD["pg"], "dsn"),
    (RedisTarget, RedisOptions(), "redis://:hunter2secret@127.0.0.1:1/0", BAD["redis"], "url"),
    (AlertmanagerTarget, AlertmanagerOptions(), "http://u:hunter2secret@127.0.0.1:1", BAD["stackwatch_alertmanager"],
     "url"),
], ids=["pg", "redis", "alertmanager"])
def test_a_target_fails_fast_on_a_bad_address_and_describes_itself_without_the_password(
        target_class: type[ConnectedTarget[Any, Any]], options: object, good: str, bad: str, key: str) -> None:
    """:class:`ConnectedTarget`: the address is checked before any thread starts, shown redacted."""
    described = target_class("t", good, [], Intervals(), options).describe_target()
    assert "hunter2secret" not in str(described) and "127.0.0.1" in str(described[key])
    with pytest.raises(ValueError) as error:
        target_class("t", bad, [], Intervals(), options)
    assert "hunter2secret" not in str(error.value)


def test_the_rules_watch_every_kind() -> None:
    """The collector alerts and the Checklist's collector stat select every kind's self-observability
    families by prefix (stackwatch.promql, which the rules import without the exporter)."""
    assert sorted(EXPORTER_KINDS.split("|")) == sorted(kind.prefix for kind in ALL_KINDS)
