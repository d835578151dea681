"""The Redis flags through the exporter's own option pipeline: flags, environment twins,
``*_FILE`` secrets and ``redis_url`` entries of the targets file (for ``/probe``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from stackwatch.core.options import OptionError, resolve_options
from stackwatch.exporters import main
from stackwatch.exporters.redis import RedisTarget


def _build(argv: list[str], environ: dict[str, str] | None = None):
    parser = argparse.ArgumentParser()
    main.add_arguments(parser)
    values = resolve_options(main.all_options(), parser.parse_args(argv), environ or {})
    return values, main.build(values)


def test_flags_and_defaults(redis_server) -> None:
    _, exporter = _build(["--redis-url", redis_server.url, "--redis-ttl-sample-keys", "77",
                               "--redis-ttl-prefix-delimiter", "/"])
    (target,) = [t for t in exporter.targets if isinstance(t, RedisTarget)]
    assert target.options.ttl_sample_keys == 77
    assert target.options.ttl_prefix_delimiter == "/"
    assert target.options.ttl_sample_seconds == 2.0
    assert target.options.ttl_prefixes_max == 20


def test_url_file_with_several_urls(redis_server, tmp_path: Path) -> None:
    secret = tmp_path / "urls"
    secret.write_text(f"{redis_server.url}\nredis://:pw@other.example:6380/1\n")
    _, exporter = _build([], {"STACKWATCH_REDIS_URL_FILE": str(secret),
                              "STACKWATCH_REDIS_TTL_SAMPLE_SECONDS": "0.5"})
    targets = [t for t in exporter.targets if isinstance(t, RedisTarget)]
    assert [t.name for t in targets][1] == "other.example:6380/1"
    assert targets[0].options.ttl_sample_seconds == 0.5


def test_bad_numbers_name_the_option() -> None:
    with pytest.raises(OptionError, match="--redis-ttl-sample-keys"):
        _build(["--redis-ttl-sample-keys", "0"])
    with pytest.raises(OptionError, match="STACKWATCH_REDIS_TTL_SAMPLE_SECONDS"):
        _build([], {"STACKWATCH_REDIS_TTL_SAMPLE_SECONDS": "-1"})


def test_targets_file_redis_entry_for_probe(redis_server, tmp_path: Path) -> None:
    url_file = tmp_path / "cache_url"
    url_file.write_text(redis_server.url + "\n")
    targets = tmp_path / "targets.yml"
    targets.write_text(f"targets:\n  cache:\n    redis_url_file: {url_file}\n")
    _, exporter = _build(["--targets-file", str(targets)])
    probe = exporter.probe_targets["cache"]
    assert isinstance(probe, RedisTarget)
    probe.refresh()
    registry = exporter.probe_registry("cache")
    assert registry is not None and registry.get_sample_value("redis_up", {"server": "cache"}) == 1
    probe.close()


def test_targets_file_bad_redis_url_is_redacted(tmp_path: Path) -> None:
    targets = tmp_path / "targets.yml"
    targets.write_text("targets:\n  cache:\n    redis_url: 'redis://:hunter2@h:6379/x'\n")
    with pytest.raises(OptionError) as raised:
        _build(["--targets-file", str(targets)])
    assert "cache" in str(raised.value) and "hunter2" not in str(raised.value)
