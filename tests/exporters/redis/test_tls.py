"""rediss:// against a real TLS-enabled redis-server with a self-signed certificate."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stackwatch.exporters.collector import Intervals
from stackwatch.exporters.redis import COLLECTORS, RedisOptions, RedisTarget
from tests.fixtures.procs import free_port, require_binary

from .collect import sample


@pytest.fixture(scope="module")
def tls_redis(redis_factory, tmp_path_factory):
    openssl = require_binary("openssl", "openssl")
    certs: Path = tmp_path_factory.mktemp("tls")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(certs / "key.pem"), "-out", str(certs / "cert.pem"),
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    port = free_port()
    server = redis_factory(tls_port=str(port), tls_cert_file=str(certs / "cert.pem"),
                           tls_key_file=str(certs / "key.pem"), tls_ca_cert_file=str(certs / "cert.pem"),
                           tls_auth_clients="no", requirepass="tls-secret")
    return server, port, certs / "cert.pem"


def _poll(url: str) -> list:
    target = RedisTarget("tls", url, [cls() for cls in COLLECTORS], Intervals(), RedisOptions())
    target.refresh()
    families = target.families()
    target.close()
    return families


def test_rediss_with_the_servers_ca(tls_redis) -> None:
    _, port, ca = tls_redis
    families = _poll(f"rediss://:tls-secret@127.0.0.1:{port}/0?ssl_ca_certs={ca}")
    assert sample(families, "redis_up") == 1
    assert sample(families, "redis_scrape_collector_success", collector="ttl_sampler") == 1


def test_rediss_with_an_untrusted_certificate(tls_redis) -> None:
    _, port, _ = tls_redis
    families = _poll(f"rediss://:tls-secret@127.0.0.1:{port}/0")
    assert sample(families, "redis_up") == 0
    assert sample(families, "redis_connection_error", reason="tls") == 1
