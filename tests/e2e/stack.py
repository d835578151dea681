"""The whole stack, natively: what ``docker compose up`` runs, as processes on loopback ports.

PostgreSQL with a streaming replica and Redis (fixtures), ``stackwatch exporter`` watching all
three, the demo service's two replicas (uvicorn, their health checks on a 1 s timer) behind nginx
(provisioning/nginx/nginx.conf) and its RQ worker as subprocesses, the demo's load generator
(through nginx), node_exporter, Alertmanager with provisioning/alertmanager.yml (the webhook placeholder pointed at a local
receiver, as entrypoint.sh does) and Prometheus with provisioning/prometheus.yml and the rules
of alerts/rules. Only addresses and timing change: targets become loopback ports, scrape and
evaluation run every second and each alert's ``for`` is shortened; thresholds stay as shipped.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from stackwatch.exporters.postgres import target_name
from tests.exporters.postgres.test_replication import SLOT as REPLICA_SLOT
from tests.exporters.postgres.test_replication import Replica
from tests.fixtures.nginx import NginxServer
from tests.fixtures.procs import free_port, stop_process, wait_until
from tests.fixtures.prometheus import REPO_ROOT, AlertmanagerServer, PrometheusServer, copy_rules, find_node_exporter

__all__ = ["Stack", "WebhookReceiver", "Subprocess", "nginx_balancer", "prometheus_config", "alertmanager_config"]

PROVISIONING = REPO_ROOT / "provisioning"
WEBHOOK_PLACEHOLDER = "http://alertmanager-webhook.invalid/"
#: how long an alert's condition must hold in the test (the shipped values are minutes)
TEST_FOR = "3s"
#: how long Alertmanager waits between two notifications of one group in the test (shipped: 5m)
TEST_GROUP_INTERVAL = "5s"
#: jobs of provisioning/prometheus.yml that have no native counterpart here (no otelcol, Tempo or
#: Grafana binary)
NOT_RUN_NATIVELY = {"otel-collector", "tempo", "grafana"}


class WebhookReceiver:
    """A loopback HTTP server recording every Alertmanager webhook notification."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        received = self.notifications

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alertnames(self) -> set[str]:
        return {alert["labels"]["alertname"] for n in self.notifications for alert in n["alerts"]
                if alert["status"] == "firing"}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Subprocess:
    """A child process with its output in a log file, stopped with SIGTERM."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], root: Path) -> None:
        self.name = name
        self.log = root / f"{name}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(args, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                                            cwd=REPO_ROOT)

    def alive(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")
        return True

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        stop_process(self.process)


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
        return response.status == 200


def nginx_balancer(replicas: list[str]) -> NginxServer:
    """nginx with provisioning/nginx/nginx.conf's ``http`` block, its upstream servers replaced by
    ``replicas`` (host:port, in order) and listening on a free loopback port."""
    text = (PROVISIONING / "nginx" / "nginx.conf").read_text()
    http = text[text.index("http {") + len("http {"):text.rindex("}")]
    servers = iter(replicas)
    http = re.sub(r"(?m)^(\s*server )demo-\d+:8000", lambda m: m.group(1) + next(servers), http)
    http = re.sub(r"(?m)^(\s*listen )8000;", r"\g<1>127.0.0.1:{port};", http)
    return NginxServer(http)


def alertmanager_config(webhook_url: str) -> dict[str, Any]:
    """provisioning/alertmanager.yml with the webhook placeholder replaced (entrypoint.sh's job)."""
    text = (PROVISIONING / "alertmanager" / "alertmanager.yml").read_text()
    assert WEBHOOK_PLACEHOLDER in text
    return dict(yaml.safe_load(text.replace(WEBHOOK_PLACEHOLDER, webhook_url)))


def quick_group_interval(config: dict[str, Any]) -> dict[str, Any]:
    """Every route's group_interval at TEST_GROUP_INTERVAL: a group that flushed once (an alert
    that fired and resolved earlier in the run, under load) otherwise holds its next notification
    for the shipped 5 minutes."""
    routes = [config["route"]]
    while routes:
        route = routes.pop()
        if "group_interval" in route:
            route["group_interval"] = TEST_GROUP_INTERVAL
        routes.extend(route.get("routes", []))
    return config


def prometheus_config(addresses: dict[str, str], alertmanager: str) -> dict[str, Any]:
    """provisioning/prometheus.yml with targets rewritten to loopback and 1 s intervals."""
    config = yaml.safe_load((PROVISIONING / "prometheus" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["scrape_configs"] = [job for job in config["scrape_configs"] if job["job_name"] not in NOT_RUN_NATIVELY]
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            static["targets"] = [addresses[target] for target in static["targets"]]
    for manager in config["alerting"]["alertmanagers"]:
        for static in manager["static_configs"]:
            static["targets"] = [alertmanager for _ in static["targets"]]
    return dict(config)


class Stack:
    """Everything started in dependency order; :meth:`close` stops it in reverse."""

    def __init__(self, postgres: Any, redis: Any, root: Path) -> None:
        self.postgres = postgres
        self.redis = redis
        self.root = root
        self._closers: list[Any] = []
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        self.postgres.create_database("demo")
        self._seed_missing_index()
        self.postgres.query("SELECT pg_create_physical_replication_slot(%s)", (REPLICA_SLOT,))
        self.pg_replica = Replica(self.postgres)
        self._closers.append(self.pg_replica.destroy)
        # Alertmanager first: the exporter reads its API (--alertmanager-url, as in docker-compose.yml)
        self.webhook = WebhookReceiver()
        self._closers.append(self.webhook.close)
        self.alertmanager = AlertmanagerServer(quick_group_interval(alertmanager_config(self.webhook.url)))
        self._closers.append(self.alertmanager.destroy)
        exporter_port, demo_port = free_port(), free_port()
        self.exporter_url = f"http://127.0.0.1:{exporter_port}"
        self.demo_url = f"http://127.0.0.1:{demo_port}"

        #: the primary's ``server`` label, as the exporter names it from its DSN
        self.primary_server = target_name(self.postgres.dsn("demo", user="stackwatch_monitor"))
        self.exporter = self._spawn("exporter", [
            sys.executable, "-m", "stackwatch.cli", "exporter", "--listen", f"127.0.0.1:{exporter_port}",
            "--postgres-dsn", self.postgres.dsn("demo", user="stackwatch_monitor"),
            "--postgres-dsn", self.pg_replica.dsn("demo", user="stackwatch_monitor"),
            "--redis-url", self.redis.url, "--interval-fast", "1", "--interval-slow", "2", "--interval-rare", "5",
            "--process-group", "demo=uvicorn demo.app", "--process-group", "exporter=stackwatch.cli exporter",
            "--cgroup", "self", "--redis-queue", "rq:rq:queue:*", "--alertmanager-url", self.alertmanager.url,
            # the primary's disk, named as its server (docker-compose.yml mounts the demo's volume)
            "--filesystem", f"{self.primary_server}={self.postgres.datadir}",
        ], {})
        self.demo = self._spawn("demo", [
            sys.executable, "-m", "uvicorn", "demo.app:app", "--host", "127.0.0.1", "--port", str(demo_port),
            "--log-level", "warning",
        ], self._demo_env())
        replica_port = free_port()
        self.replica = self._spawn("demo-2", [
            sys.executable, "-m", "uvicorn", "demo.app:app", "--host", "127.0.0.1", "--port", str(replica_port),
            "--log-level", "warning",
        ], self._demo_env())
        wait_until(lambda: self.exporter.alive() and _http_ok(f"{self.exporter_url}/-/healthy"), 60, "the exporter")
        wait_until(lambda: self.demo.alive() and _http_ok(f"{self.demo_url}/health/live"), 60, "the demo")
        wait_until(lambda: self.replica.alive() and _http_ok(f"http://127.0.0.1:{replica_port}/health/live"), 60,
                   "the demo's second replica")
        self.replica_address = f"127.0.0.1:{replica_port}"
        self.balancer = nginx_balancer([f"127.0.0.1:{demo_port}", self.replica_address])
        self._closers.append(self.balancer.stop)
        worker_port = free_port()
        self.worker = self._spawn("worker", [
            sys.executable, "-m", "demo.worker", "--url", self.redis.url, "--metrics-addr", "127.0.0.1",
            "--metrics-port", str(worker_port), "reports",
        ], {"DATABASE_URL": self.postgres.dsn("demo"), "OTEL_SERVICE_NAME": "demo-worker"})
        self.loadgen = self._spawn("loadgen", [
            sys.executable, "-m", "demo.loadgen", "--target", self.balancer.url, "--rate", "20", "--duration", "0",
            "--seed", "1",
        ], {})
        node_port = free_port()
        # the collectors the Host dashboard reads (docker-compose.yml runs node_exporter's defaults)
        self.node_exporter = self._spawn("node-exporter", [
            find_node_exporter(), f"--web.listen-address=127.0.0.1:{node_port}", "--collector.disable-defaults",
            *(f"--collector.{name}" for name in ("cpu", "meminfo", "filesystem", "diskstats", "netdev", "loadavg",
                                                  "stat", "time", "uname", "vmstat")),
        ], {})

        rules = copy_rules(self.root / "rules", for_duration=TEST_FOR)
        # Prometheus picks its own port when it starts: scrape itself through a placeholder first,
        # then rewrite that one target and reload (the config enables the lifecycle API).
        addresses = {"stackwatch-exporter:9188": f"127.0.0.1:{exporter_port}", "demo-1:8000": f"127.0.0.1:{demo_port}",
                     "demo-2:8000": f"127.0.0.1:{replica_port}",
                     "worker:9100": f"127.0.0.1:{worker_port}", "node-exporter:9100": f"127.0.0.1:{node_port}",
                     "alertmanager:9093": f"127.0.0.1:{self.alertmanager.port}", "prometheus:9090": "127.0.0.1:1"}
        alertmanager = f"127.0.0.1:{self.alertmanager.port}"
        self.prometheus = PrometheusServer(prometheus_config(addresses, alertmanager), rules_dir=rules,
                                           extra_args=["--enable-feature=exemplar-storage"])
        self._closers.append(self.prometheus.destroy)
        addresses["prometheus:9090"] = f"127.0.0.1:{self.prometheus.port}"
        config = prometheus_config(addresses, alertmanager)
        config["rule_files"] = [str(rules / "*.yml")]
        self.prometheus.config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        request = urllib.request.Request(f"{self.prometheus.url}/-/reload", method="POST")
        urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 - loopback only

    def _demo_env(self) -> dict[str, str]:
        return {"DATABASE_URL": self.postgres.dsn("demo"), "REDIS_URL": self.redis.url, "OTEL_SERVICE_NAME": "demo",
                # nothing requests /health here: the checks' own timer keeps health_check_status fresh
                "STACKWATCH_HEALTH_INTERVAL": "1"}

    def _seed_missing_index(self) -> None:
        """A fault present from the start: a 5,000-row table queried by a column without an index
        (sequential scans every time), plus an index no query uses."""
        self.postgres.query("CREATE TABLE e2e_orders (id int PRIMARY KEY, customer_id int, total int)", dbname="demo")
        self.postgres.query("INSERT INTO e2e_orders SELECT i, i % 500, i FROM generate_series(1, 5000) i",
                            dbname="demo")
        self.postgres.query("CREATE INDEX e2e_orders_total_unused ON e2e_orders (total)", dbname="demo")
        # vacuumed and analyzed once, as autovacuum would (within its 1 min naptime): the vacuum panels' data
        self.postgres.query("VACUUM ANALYZE e2e_orders", dbname="demo")
        for customer in range(20):
            self.postgres.query("SELECT count(*) FROM e2e_orders WHERE customer_id = %s", (customer,), dbname="demo")

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> Subprocess:
        child = Subprocess(name, args, env, self.root)
        self._closers.append(child.stop)
        return child

    def logs(self) -> str:
        """The children's last lines, for failure messages."""
        children = (self.exporter, self.demo, self.replica, self.worker, self.loadgen)
        parts = [f"--- {child.name}\n{child.tail()}" for child in children]
        return "\n".join(parts) + f"\n--- prometheus\n{self.prometheus.log_tail()}"

    def firing_in_alertmanager(self) -> dict[str, set[str]]:
        """alertname -> severities of the active alerts Alertmanager holds."""
        active: dict[str, set[str]] = {}
        for alert in self.alertmanager.alerts():
            if alert["status"]["state"] in ("active", "suppressed"):
                active.setdefault(alert["labels"]["alertname"], set()).add(alert["labels"].get("severity", ""))
        return active

    def wait_for_alert(self, alertname: str, severity: str, timeout: float = 90.0) -> None:
        """Until Alertmanager holds ``alertname`` at ``severity`` (fired by Prometheus)."""
        try:
            wait_until(lambda: severity in self.firing_in_alertmanager().get(alertname, set()), timeout,
                       f"{alertname} ({severity}) in Alertmanager", interval=0.5)
        except TimeoutError as error:
            pending = [a["labels"]["alertname"] + "/" + a["state"] for a in self.prometheus.alerts()]
            raise AssertionError(f"{error}; Prometheus alerts: {sorted(pending)}\n{self.logs()}") from None

    def close(self) -> None:
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception:  # noqa: BLE001 - keep stopping the rest
                pass
        self._closers.clear()
