from __future__ import annotations

import pytest

from stackwatch.exporters.redact import redact, redact_text


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
