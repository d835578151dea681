"""What every connected kind (PostgreSQL, Redis) gets from :class:`ConnectedKind`: addresses
checked the same way from the flags and from the targets file, named without their password."""

from __future__ import annotations

import pytest

from stackwatch.core.options import OptionError
from stackwatch.exporters import postgres, redis
from stackwatch.exporters.kinds import Common, ConnectedKind

BAD = {
    "pg": "postgresql://app:hunter2secret@db:5432/app?no_such_parameter=1",
    "redis": "redis://:hunter2secret@cache:6379/abc",
}


@pytest.mark.parametrize("kind", [postgres.KIND, redis.KIND], ids=lambda k: k.prefix)
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


@pytest.mark.parametrize("kind", [postgres.KIND, redis.KIND], ids=lambda k: k.prefix)
def test_an_entry_for_another_kind_is_left_to_it(kind: ConnectedKind[object]) -> None:
    other = next(key for key in ("postgres_dsn", "redis_url") if key != kind.targets_file_key)
    assert kind.probe_target("orders", {other: "whatever"}, {}, Common()) is None
    assert kind.targets({}, Common()) == []
