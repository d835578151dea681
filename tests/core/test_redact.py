from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stackwatch.core.redact import redact, redact_text


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("postgresql://app:s3cr%40t@db:5432/orders", "postgresql://app:***@db:5432/orders"),
        ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
        ("rediss://user:pw@cache/1", "rediss://user:***@cache/1"),
        ("postgresql://app@db/orders", "postgresql://app@db/orders"),
        ("postgresql://db/orders?password=x&sslmode=require", "postgresql://db/orders?password=***&sslmode=require"),
        ("host=db user=app password=s3cret dbname=x", "host=db user=app password=*** dbname=x"),
        ("host=db password='a b\\'c' dbname=x", "host=db password=*** dbname=x"),
    ],
)
def test_redact_removes_passwords(dsn: str, expected: str) -> None:
    assert redact(dsn) == expected


def test_redact_text_finds_urls_inside_messages() -> None:
    message = 'connection to "postgresql://u:topsecret@h/db" failed; password=other'
    out = redact_text(message)
    assert "topsecret" not in out and "other" not in out
    assert "postgresql://u:***@h/db" in out


def test_url_password_with_an_unencoded_at_is_hidden_whole() -> None:
    assert redact_text("cannot reach postgresql://app:p@ss@db:5432/orders now") == \
        "cannot reach postgresql://app:***@db:5432/orders now"
    assert redact("postgresql://app:p@ss@db:5432/orders") == "postgresql://app:***@db:5432/orders"


_UNITS = ["a", "a://", "a://:", "://:", "password='", "password=", "password ", "@", " ", "x:y@", "'\\"]


@settings(max_examples=40, deadline=timedelta(seconds=1))
@given(st.lists(st.sampled_from(_UNITS), min_size=1, max_size=3))
def test_hundred_kilobyte_messages_are_redacted_in_linear_time(units: list[str]) -> None:
    """The old URL pattern was quadratic on runs of letters (59 s for 100 KB)."""
    unit = "".join(units)
    redact_text(unit * (100_000 // len(unit) + 1))


@settings(max_examples=200, deadline=timedelta(milliseconds=500))
@given(st.text(alphabet="abZq:/@ =' \\", max_size=30), st.sampled_from(["postgresql", "redis", "rediss"]),
       st.text(alphabet="ab -:/'", max_size=10))
def test_no_url_or_kv_password_survives(password: str, scheme: str, around: str) -> None:
    secret = "Zq" + password.replace("Zq", "") .replace(" ", "").replace("/", "")
    for text in (f"{around}{scheme}://user:{secret}@host:1/db{around}", f"{around}password={secret}{around}".replace(
            "password= ", "password=")):
        assert "Zq" not in redact_text(text), text
