"""The wal collector: segment files in pg_wal, as the server lists them."""

from __future__ import annotations

from stackwatch.exporters.postgres.wal import WalCollector
from tests.exporters.postgres.collect import collect_once, value
from tests.fixtures.postgres import PostgresServer


def test_segments_and_size_match_the_directory(postgres_any_version: PostgresServer) -> None:
    server = postgres_any_version
    families = collect_once(WalCollector(), server)
    segments, size, segment_size = server.query(
        "SELECT count(*), sum(size), (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size') "
        "FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'")[0]
    assert value(families, "pg_wal_segments") == segments >= 1
    assert value(families, "pg_wal_size_bytes") == size == segments * segment_size
