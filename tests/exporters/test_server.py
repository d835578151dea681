"""The exporter's HTTP endpoints, over real targets (a real PostgreSQL and this host's processes),
plain and behind TLS + basic auth with a real HTTPS client."""

from __future__ import annotations

import gzip
import os
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import bcrypt
import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from stackwatch.cli import build_parser
from stackwatch.core.options import resolve_options
from stackwatch.exporters import main
from stackwatch.exporters.server import Exporter, ExporterHTTPServer
from stackwatch.exporters.webconfig import WebConfigFile

from ..fixtures.postgres import PostgresServer
from ..fixtures.procs import free_port, require_binary, stop_process, wait_until
from .pki import PKI, bcrypt_hash, make_pki

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


class Running:
    """An exporter serving on a free loopback port in a thread."""

    def __init__(self, exporter: Exporter, server: ExporterHTTPServer) -> None:
        self.exporter, self.server = exporter, server
        port = server.server_address[1]
        self.url = f"{server.scheme}://127.0.0.1:{port}"
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.exporter.stop()


def _build(args: list[str], environ: dict[str, str] | None = None) -> Exporter:
    namespace = build_parser().parse_args(["exporter", *args])
    return main.build(resolve_options(main.all_options(), namespace, environ or {}))


@pytest.fixture
def serve() -> Iterator[Callable[..., Running]]:
    running: list[Running] = []

    def start(args: list[str], web: WebConfigFile | None = None, start_polling: bool = True) -> Running:
        exporter = _build(args)
        server = ExporterHTTPServer(("127.0.0.1", 0), exporter, web)
        if start_polling:
            exporter.start()
            wait_until(exporter.ready, 30, "every target polled once")
        running.append(Running(exporter, server))
        return running[-1]

    yield start
    for r in running:
        r.stop()


@pytest.fixture
def targets_file(tmp_path: Path, postgres: PostgresServer) -> Path:
    secret = tmp_path / "orders.dsn"
    secret.write_text(postgres.monitor_dsn)
    path = tmp_path / "targets.yml"
    path.write_text(f"targets:\n  orders-db:\n    postgres_dsn_file: {secret}\n")
    return path


@pytest.fixture
def full(serve: Callable[..., Running], postgres: PostgresServer, targets_file: Path) -> Running:
    return serve(["--postgres-dsn", postgres.monitor_dsn, "--targets-file", str(targets_file),
                  "--process-group", "py=python", "--interval-fast", "1"])


def test_metrics_text_format_by_default(full: Running) -> None:
    response = httpx.get(full.url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    host = full.exporter.targets[-1].name
    assert any(s.labels == {"server": host, "group": "py"} and s.value >= 1
               for s in families["process_group_processes"].samples)
    pg_up = [s for s in families["pg_up"].samples]
    assert len(pg_up) == 1 and pg_up[0].value == 1 and pg_up[0].labels["server"].startswith("127.0.0.1:")
    assert [s.value for s in families["process_up"].samples] == [1]
    # the exporter's own client_python process metrics: their own names, no server label
    own = families["process_resident_memory_bytes"].samples
    assert len(own) == 1 and own[0].labels == {} and own[0].value > 0
    assert families["process_cpu_seconds"].type == "counter"


def test_family_names_do_not_clash(full: Running) -> None:
    """client_python's process_* and the process target's families share a prefix, never a name."""
    text = httpx.get(full.url + "/metrics").text
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(names) == len(set(names))
    own = {"process_cpu_seconds_total", "process_virtual_memory_bytes", "process_resident_memory_bytes",
           "process_start_time_seconds", "process_open_fds", "process_max_fds"}
    assert own <= set(names)
    assert {"process_group_processes", "process_group_cpu_seconds_total", "process_cgroup_memory_limited"} <= set(names)


def test_metrics_openmetrics_when_asked(full: Running) -> None:
    response = httpx.get(full.url + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.headers["content-type"].startswith(OPENMETRICS)
    assert response.text.endswith("# EOF\n")
    assert "# TYPE process_group_cpu_seconds counter" in response.text


def test_metrics_gzip_when_accepted(full: Running) -> None:
    request = urllib.request.Request(full.url + "/metrics", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        body = gzip.decompress(response.read()).decode()
    assert "process_group_processes{" in body


def test_probe_serves_only_the_named_target_labelled_with_its_name(full: Running) -> None:
    response = httpx.get(full.url + "/probe", params={"target": "orders-db"})
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert [(s.labels, s.value) for s in families["pg_up"].samples] == [({"server": "orders-db"}, 1.0)]
    assert "process_group_processes" not in families


def test_each_target_publishes_its_kind_on_metrics_and_probe(full: Running) -> None:
    """stackwatch_exporter_target_info lets the absent-style alerts watch, per exporter
    instance, only the kinds it was configured with (here PostgreSQL and process, no Redis)."""
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(full.url + "/metrics").text)}
    kinds = {(s.labels["kind"], s.labels["server"]) for s in families["stackwatch_exporter_target_info"].samples}
    assert kinds == {(t.prefix, t.name) for t in full.exporter.targets}
    assert {kind for kind, _ in kinds} == {"pg", "process"}
    probed = {f.name: f for f in text_string_to_metric_families(
        httpx.get(full.url + "/probe", params={"target": "orders-db"}).text)}
    assert [(s.name, s.labels, s.value) for s in probed["stackwatch_exporter_target_info"].samples] == [
        ("stackwatch_exporter_target_info", {"kind": "pg", "server": "orders-db"}, 1.0)]


@pytest.mark.parametrize("query", ["?target=nope", "", "?target="])
def test_probe_unknown_or_missing_target_lists_the_known_ones(full: Running, query: str) -> None:
    response = httpx.get(full.url + "/probe" + query)
    assert response.status_code == 400
    known = response.text.rsplit("known targets: ", 1)[1].strip().split(", ")
    # targets from flags are probe-able too, by their name
    assert sorted(known) == sorted(t.name for t in full.exporter.all_targets())
    assert "orders-db" in known
    assert "monitor-secret" not in response.text


def test_readiness_waits_for_the_first_poll(serve: Callable[..., Running]) -> None:
    running = serve(["--process-group", "py=python"], start_polling=False)
    response = httpx.get(running.url + "/-/ready")
    assert response.status_code == 503
    assert response.json()["ready"] is False
    running.exporter.start()
    wait_until(lambda: httpx.get(running.url + "/-/ready").status_code == 200, 30, "ready")
    body = httpx.get(running.url + "/-/ready").json()
    assert body["ready"] is True and body["targets"][0]["polled"] is True


def test_healthy_landing_head_and_404(full: Running) -> None:
    assert httpx.get(full.url + "/-/healthy").text == "OK\n"
    assert "/metrics" in httpx.get(full.url + "/").text
    head = httpx.head(full.url + "/metrics")
    assert head.status_code == 200 and head.content == b""
    missing = httpx.get(full.url + "/nope")
    assert missing.status_code == 404


# -- TLS and basic auth ----------------------------------------------------------------------
@pytest.fixture
def pki(tmp_path: Path) -> PKI:
    return make_pki(tmp_path)


def _trust(pki: PKI) -> ssl.SSLContext:
    """A client context that trusts the test CA (and so the server certificate)."""
    return ssl.create_default_context(cafile=str(pki.ca))


def _web(tmp_path: Path, pki: PKI, extra: str = "") -> WebConfigFile:
    path = tmp_path / "web.yml"
    path.write_text(f"tls_server_config:\n  cert_file: {pki.server_cert.name}\n  key_file: {pki.server_key.name}\n"
                    f"{extra}basic_auth_users:\n  prometheus: '{bcrypt_hash('scrape-pass')}'\n"
                    f"http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n")
    return WebConfigFile(str(path))


ENDPOINTS = ["/metrics", "/probe?target=orders-db", "/-/ready", "/-/healthy", "/", "/nope"]


@pytest.mark.parametrize("path", ENDPOINTS)
def test_tls_and_basic_auth_guard_every_endpoint(serve: Callable[..., Running], postgres: PostgresServer,
                                                 targets_file: Path, tmp_path: Path, pki: PKI, path: str) -> None:
    running = serve(["--targets-file", str(targets_file), "--process-group", "py=python"], web=_web(tmp_path, pki))
    assert running.url.startswith("https://")
    with httpx.Client(verify=_trust(pki)) as client:
        for auth in (None, ("prometheus", "wrong"), ("nobody", "scrape-pass")):
            denied = client.get(running.url + path, auth=auth)
            assert denied.status_code == 401
            assert denied.headers["www-authenticate"] == "Basic"
            assert denied.text == "Unauthorized\n"
            assert denied.headers["x-content-type-options"] == "nosniff"
            assert denied.headers["server"] == "stackwatch-exporter"
        allowed = client.get(running.url + path, auth=("prometheus", "scrape-pass"))
        assert allowed.status_code == (404 if path == "/nope" else 200)
        assert allowed.headers["x-content-type-options"] == "nosniff"


def test_plain_http_to_the_tls_port_gets_no_answer(serve: Callable[..., Running], tmp_path: Path, pki: PKI) -> None:
    running = serve(["--process-group", "py=python"], web=_web(tmp_path, pki))
    with pytest.raises(httpx.HTTPError):
        httpx.get(running.url.replace("https://", "http://") + "/metrics", timeout=5)
    # the server is still fine afterwards
    assert httpx.get(running.url + "/-/healthy", verify=_trust(pki), auth=("prometheus", "scrape-pass")).text == "OK\n"


def test_successful_bcrypt_checks_are_cached(serve: Callable[..., Running], tmp_path: Path, pki: PKI,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    running = serve(["--process-group", "py=python"], web=_web(tmp_path, pki))
    calls: list[int] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(1)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    with httpx.Client(verify=_trust(pki), auth=("prometheus", "scrape-pass")) as client:
        for _ in range(5):
            assert client.get(running.url + "/metrics").status_code == 200
    assert len(calls) == 1
    with httpx.Client(verify=_trust(pki), auth=("prometheus", "wrong")) as client:
        for _ in range(3):
            assert client.get(running.url + "/metrics").status_code == 401
    assert len(calls) == 4  # failures are never cached


def test_client_certificates_when_required(serve: Callable[..., Running], tmp_path: Path, pki: PKI) -> None:
    web = _web(tmp_path, pki, f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki.ca}\n"
                              f"  min_version: TLS13\n")
    running = serve(["--process-group", "py=python"], web=web)
    auth = ("prometheus", "scrape-pass")
    with pytest.raises(httpx.HTTPError):
        httpx.get(running.url + "/metrics", verify=_trust(pki), auth=auth, timeout=5)
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(pki.client_cert, pki.client_key)
    response = httpx.get(running.url + "/metrics", verify=context, auth=auth)
    assert response.status_code == 200
    # TLS 1.2 is below min_version
    old = ssl.create_default_context(cafile=str(pki.ca))
    old.load_cert_chain(pki.client_cert, pki.client_key)
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(httpx.HTTPError):
        httpx.get(running.url + "/metrics", verify=old, auth=auth, timeout=5)


def test_drain_waits_for_requests_in_flight(serve: Callable[..., Running]) -> None:
    """What SIGTERM relies on: a scrape being answered completes before the process exits."""
    running = serve(["--process-group", "py=python"])
    entered, release = threading.Event(), threading.Event()

    def request_in_flight() -> None:
        with running.server.in_flight():
            entered.set()
            release.wait(10)

    holder = threading.Thread(target=request_in_flight)
    holder.start()
    assert entered.wait(10)
    assert running.server.drain(timeout=0.2) is False
    release.set()
    assert running.server.drain(timeout=10) is True
    holder.join(10)
    # while draining, requests are still answered (then the connection closes)
    assert httpx.get(running.url + "/-/healthy").status_code == 200


def _touch_later(*paths: Path) -> None:
    """Move mtimes forward, so a rewrite within the same clock tick still counts as a change."""
    for path in paths:
        info = path.stat()
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))


def test_web_config_changes_apply_without_restart(serve: Callable[..., Running], tmp_path: Path, pki: PKI,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "web.yml"
    head = f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
    path.write_text(head + f"basic_auth_users:\n  prometheus: '{bcrypt_hash('one')}'\n")
    web = WebConfigFile(str(path), check_every=0)
    running = serve(["--process-group", "py=python"], web=web)
    url = running.url + "/-/healthy"

    def status(password: str, trust: PKI = pki) -> int:
        return httpx.get(url, verify=_trust(trust), auth=("prometheus", password)).status_code

    assert (status("one"), status("two")) == (200, 401)
    # a new password
    path.write_text(head + f"basic_auth_users:\n  prometheus: '{bcrypt_hash('two')}'\n")
    _touch_later(path)
    assert (status("one"), status("two")) == (401, 200)
    # a broken version is refused and logged; the last good one stays (never "no auth")
    path.write_text(head + "basic_auth_users:\n  prometheus: plaintext\n")
    _touch_later(path)
    assert (status("one"), status("two")) == (401, 200)
    assert "basic_auth_users.prometheus: is not a bcrypt hash (" in caplog.text
    assert "keeping the previous web config" in caplog.text and "plaintext" not in caplog.text
    # turning TLS off needs a restart
    path.write_text(f"basic_auth_users:\n  prometheus: '{bcrypt_hash('three')}'\n")
    _touch_later(path)
    assert status("two") == 200 and "needs a restart" in caplog.text
    # certificate rotation: new files in place of the old ones, config file untouched
    path.write_text(head + f"basic_auth_users:\n  prometheus: '{bcrypt_hash('two')}'\n")
    _touch_later(path)
    assert status("two") == 200
    (tmp_path / "rotated").mkdir()
    rotated = make_pki(tmp_path / "rotated")
    pki.server_cert.write_bytes(rotated.server_cert.read_bytes())
    pki.server_key.write_bytes(rotated.server_key.read_bytes())
    _touch_later(pki.server_cert, pki.server_key)
    assert status("two", trust=rotated) == 200
    with pytest.raises(httpx.HTTPError):
        status("two", trust=pki)  # the old CA no longer vouches for the served certificate


def test_encoded_targets_are_reused_until_a_poll_changes_them(postgres) -> None:
    """Scrapes between polls reuse the targets' encoding; a poll re-encodes; own metrics stay fresh."""
    from stackwatch.exporters.collector import Intervals
    from stackwatch.exporters.postgres import PostgresOptions
    from stackwatch.exporters.postgres.settings import SettingsCollector
    from stackwatch.exporters.postgres.target import PostgresTarget
    from stackwatch.exporters.server import Exporter

    target = PostgresTarget("db", postgres.monitor_dsn, [SettingsCollector()], Intervals(slow=0.01),
                            PostgresOptions())
    target.refresh()
    reads = 0
    families = target.families

    def counting_families() -> list:
        nonlocal reads
        reads += 1
        return families()

    target.families = counting_families  # type: ignore[method-assign]
    exporter = Exporter([target], {"db": target})
    openmetrics = "application/openmetrics-text; version=1.0.0"
    first, _ = exporter.render_metrics(openmetrics)
    second, _ = exporter.render_metrics(openmetrics)
    assert reads == 1
    for body in (first, second):
        assert body.count(b"# EOF") == 1 and body.endswith(b"# EOF\n")
        assert b"process_cpu_seconds_total" in body and b'pg_up{server="db"} 1.0' in body
    exporter.render_metrics("")  # another format is encoded on its own
    assert reads == 2
    time.sleep(0.02)
    target.refresh()  # a poll: the next scrape re-encodes
    exporter.render_metrics(openmetrics)
    assert reads == 3
    probe, content_type = exporter.render_probe("db", "")
    assert content_type.startswith("text/plain") and b'pg_up{server="db"} 1.0' in probe
    assert exporter.render_probe("nope", "") is None
    target.close()


def test_a_hundred_kilobyte_statement_neither_stalls_the_poll_nor_the_scrapes(
        serve: Callable[..., Running], postgres: PostgresServer) -> None:
    """Any role can put a 100 KB text in pg_stat_statements; redacting it once took ~60 s with the
    GIL held, so no scrape answered. Scrapes during the first poll answer, and the poll ends."""
    postgres.query("DROP ROLE IF EXISTS sw_nobody")
    postgres.query("CREATE ROLE sw_nobody LOGIN PASSWORD 'nobody-pw'")
    with psycopg.connect(postgres.dsn(user="sw_nobody", password="nobody-pw"), autocommit=True) as conn:
        conn.execute("SELECT pg_sleep(0.2) /* " + "a" * 100_000 + " */")
    running = serve(["--postgres-dsn", postgres.monitor_dsn, "--pg-statements-top-n", "100000"],
                    start_polling=False)
    running.exporter.start()
    deadline = time.monotonic() + 30
    while not running.exporter.ready() and time.monotonic() < deadline:
        assert httpx.get(running.url + "/metrics", timeout=5).status_code == 200
    assert running.exporter.ready(), "the first poll did not end within 30 s"
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(running.url + "/metrics").text)}
    shown = [s.labels["query"] for s in families["pg_stat_statements_query_info"].samples
             if s.labels["user"] == "sw_nobody"]
    assert len(shown) == 1 and shown[0].startswith("SELECT pg_sleep($1) /* aaa") and shown[0].endswith("...")
    assert len(shown[0].encode()) <= 512


def test_an_unencoded_at_in_the_password_stays_in_the_password(
        serve: Callable[..., Running], postgres: PostgresServer) -> None:
    """libpq alone splits ``u:p@ss@host`` at the first ``@``: the target was named after a piece of
    the password. As postgres_exporter does, the last ``@`` ends the user information."""
    postgres.query("DROP ROLE IF EXISTS sw_at")
    postgres.query("CREATE ROLE sw_at LOGIN PASSWORD 'p@ss@word' IN ROLE pg_monitor")
    dsn = f"postgresql://sw_at:p@ss@word@{postgres.host}:{postgres.port}/postgres"
    running = serve(["--postgres-dsn", dsn, "--interval-fast", "1"])
    name = f"{postgres.host}:{postgres.port}/postgres"
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(running.url + "/metrics").text)}
    assert [(s.labels, s.value) for s in families["pg_up"].samples] == [({"server": name}, 1.0)]
    ready = httpx.get(running.url + "/-/ready").text
    assert name in ready and "ss@" not in ready and "word" not in ready
    # the peer reads the same DSN the same way: it connects too
    port = free_port()
    peer = subprocess.Popen([require_binary("prometheus-postgres-exporter", "prometheus-postgres-exporter"),
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                            env={"DATA_SOURCE_NAME": dsn + "?sslmode=disable"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: "\npg_up 1" in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text,
                   60, "postgres_exporter to connect with the same DSN")
    finally:
        stop_process(peer)


def _reset_after_request(url: str, path: str = "/metrics") -> None:
    """Send a request and close the connection at once with a reset (a client that gave up)."""
    import socket
    import struct
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    sock.close()


def test_clients_that_disconnect_mid_response_print_no_traceback(
        serve: Callable[..., Running], capfd: pytest.CaptureFixture[str]) -> None:
    running = serve(["--process-group", "py=python"])
    for _ in range(30):
        _reset_after_request(running.url)
    time.sleep(0.5)
    assert httpx.get(running.url + "/metrics").status_code == 200  # still serving
    assert "Traceback" not in capfd.readouterr().err


def test_connections_beyond_the_cap_are_refused_without_a_thread(serve: Callable[..., Running]) -> None:
    import socket
    from urllib.parse import urlsplit

    running = serve(["--process-group", "py=python"])
    running.server.max_connections = 5
    parts = urlsplit(running.url)
    threads_before = threading.active_count()
    idle = [socket.create_connection((parts.hostname, parts.port), timeout=5) for _ in range(5)]
    try:
        wait_until(lambda: threading.active_count() >= threads_before + 5, 5, "a thread per idle connection")
        for _ in range(20):
            with socket.create_connection((parts.hostname, parts.port), timeout=5) as extra:
                reply = extra.recv(4096)
                assert reply.startswith(b"HTTP/1.1 503 ") and b"too many connections" in reply
        assert threading.active_count() <= threads_before + 5
    finally:
        for sock in idle:
            sock.close()
    wait_until(lambda: httpx.get(running.url + "/metrics").status_code == 200, 5, "room for a new connection")


def test_snapshot_age_is_computed_for_every_scrape(postgres) -> None:
    """The age grows between polls even though the cached encoding is reused."""
    from stackwatch.exporters.collector import Intervals
    from stackwatch.exporters.postgres import PostgresOptions
    from stackwatch.exporters.postgres.settings import SettingsCollector
    from stackwatch.exporters.postgres.target import PostgresTarget

    target = PostgresTarget("db", postgres.monitor_dsn, [SettingsCollector()], Intervals(slow=3600),
                            PostgresOptions())
    target.refresh()
    exporter = Exporter([target], {"db": target})

    def age(body: bytes) -> float:
        families = text_string_to_metric_families(body.decode())
        return next(s.value for f in families for s in f.samples
                    if s.name == "pg_scrape_collector_snapshot_age_seconds")

    first = age(exporter.render_metrics("")[0])
    time.sleep(0.3)
    second = age(exporter.render_metrics("")[0])
    assert second >= first + 0.25
    probe = exporter.render_probe("db", "")
    assert probe is not None and age(probe[0]) >= second
    body, _ = exporter.render_metrics(OPENMETRICS)
    assert body.count(b"# EOF") == 1 and body.endswith(b"# EOF\n")
    target.close()
