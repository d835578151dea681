"""``--filesystem NAME=PATH``: free and total bytes of real filesystems, and clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stackwatch.cli import build_parser
from stackwatch.core.options import OptionError, resolve_options
from stackwatch.exporters import main
from stackwatch.exporters.process import ProcessTarget

from .helpers import registry_of


def _targets(*args: str) -> list[ProcessTarget]:
    values = resolve_options(main.all_options(), build_parser().parse_args(["exporter", *args]), {})
    return [t for t in main.build(values).targets if isinstance(t, ProcessTarget)]


def test_free_and_total_bytes_of_the_declared_filesystem(tmp_path: Path) -> None:
    (target,) = _targets("--filesystem", f"main={tmp_path}")
    target.refresh()
    registry = registry_of(target.families())
    labels = {"filesystem": "main", "path": str(tmp_path)}
    avail = registry.get_sample_value("process_filesystem_avail_bytes", labels)
    size = registry.get_sample_value("process_filesystem_size_bytes", labels)
    stat = os.statvfs(tmp_path)
    assert size == stat.f_blocks * stat.f_frsize and size > 0
    assert avail is not None and 0 < avail <= size
    assert abs(avail - stat.f_bavail * stat.f_frsize) < 64 * 1024 * 1024  # other writers may be busy
    assert target.describe_target()["filesystems"] == ["main"]


def test_a_filesystem_is_named_as_the_postgres_server_it_holds(tmp_path: Path) -> None:
    """The disk-full forecast joins on the server label, ``host:port/dbname`` for a DSN."""
    from stackwatch.exporters.postgres import target_name

    server = target_name("postgresql://monitor@db.internal:5432/app")
    (target,) = _targets("--filesystem", f"{server}={tmp_path}")
    target.refresh()
    registry = registry_of(target.families())
    assert server == "db.internal:5432/app"
    assert registry.get_sample_value("process_filesystem_size_bytes", {"filesystem": server, "path": str(tmp_path)})


def test_a_missing_path_fails_the_collector_not_the_exporter(tmp_path: Path) -> None:
    (target,) = _targets("--filesystem", f"gone={tmp_path / 'nope'}")
    target.refresh()
    registry = registry_of(target.families())
    assert registry.get_sample_value("process_up") == 1
    assert registry.get_sample_value("process_scrape_collector_success", {"collector": "filesystem"}) == 0


@pytest.mark.parametrize(("value", "message"), [("main", "expected NAME=PATH"), ("main=relative/dir", "absolute"),
                                                ("bad name=/tmp", "must match")])
def test_bad_values_name_what_is_wrong(value: str, message: str) -> None:
    with pytest.raises(OptionError, match=message):
        _targets("--filesystem", value)
