"""The scale-out profile, natively: an HA pair of real Prometheus remote-writing to a real
VictoriaMetrics, vmalert evaluating alerts/rules there, a pair of clustered Alertmanagers.

The configuration is the profile's own (provisioning/scale-out/: the pair's files, the relabeling
that drops the replica label); only addresses and timing change, as in test_stack.py. Induced
faults reach the webhook once per alert through both Alertmanagers, and stopping one Prometheus of
the pair loses no alert.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.procs import free_port, wait_until
from tests.fixtures.prometheus import REPO_ROOT, PrometheusServer, copy_rules
from tests.fixtures.victoria import ClusteredAlertmanager, VictoriaMetricsServer, VmalertServer

from .stack import TEST_FOR, Subprocess, WebhookReceiver, alertmanager_config

pytestmark = pytest.mark.slow

SCALE_OUT = REPO_ROOT / "provisioning" / "scale-out"


def replica_config(replica: str, addresses: dict[str, str], store: str) -> dict[str, Any]:
    """provisioning/scale-out/prometheus-<replica>.yml with loopback targets (jobs with no native
    counterpart left out), 1 s intervals and the store's address."""
    config = yaml.safe_load((SCALE_OUT / f"prometheus-{replica}.yml").read_text(encoding="utf-8"))
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    jobs = []
    for job in config["scrape_configs"]:
        targets = [t for static in job["static_configs"] for t in static["targets"]]
        if all(t in addresses for t in targets):
            job["static_configs"] = [{"targets": [addresses[t] for t in targets]}]
            jobs.append(job)
    config["scrape_configs"] = jobs
    (write,) = config["remote_write"]
    write.update(url=f"{store}/api/v1/write", queue_config={"batch_send_deadline": "1s"})
    return dict(config)


def quick_groups(config: dict[str, Any]) -> dict[str, Any]:
    """Every route's group_wait at 1 s (the shipped values are 10-30 s); nothing else changes."""
    def walk(route: dict[str, Any]) -> None:
        if "group_wait" in route or route is config["route"]:
            route["group_wait"] = "1s"
        for child in route.get("routes", []):
            walk(child)

    walk(config["route"])
    return config


class ScaleOut:
    """Exporter -> Prometheus a + b -> VictoriaMetrics -> vmalert -> Alertmanager a + b -> webhook."""

    def __init__(self, postgres: Any, redis: Any, root: Path) -> None:
        self.postgres, self.redis, self.closers = postgres, redis, []
        try:
            self._start(root)
        except BaseException:
            self.close()
            raise

    def _start(self, root: Path) -> None:
        port = free_port()
        self.exporter = Subprocess("exporter", [
            sys.executable, "-m", "stackwatch.cli", "exporter", "--listen", f"127.0.0.1:{port}",
            "--postgres-dsn", self.postgres.dsn(user="stackwatch_monitor"), "--redis-url", self.redis.url,
            "--interval-fast", "1", "--interval-slow", "2", "--interval-rare", "5",
        ], {}, root)
        self.closers.append(self.exporter.stop)
        self.webhook = WebhookReceiver()
        self.closers.append(self.webhook.close)
        self.store = VictoriaMetricsServer()
        self.closers.append(self.store.destroy)
        gossip = [free_port(), free_port()]
        config = quick_groups(alertmanager_config(self.webhook.url))
        self.alertmanagers = [ClusteredAlertmanager(config, gossip[0], [gossip[1]])]
        self.closers.append(self.alertmanagers[0].destroy)
        self.alertmanagers.append(ClusteredAlertmanager(config, gossip[1], [gossip[0]]))
        self.closers.append(self.alertmanagers[1].destroy)
        self.vmalert = VmalertServer(copy_rules(root / "rules", for_duration=TEST_FOR), self.store.url,
                                     [am.url for am in self.alertmanagers])
        self.closers.append(self.vmalert.destroy)
        addresses = {"stackwatch-exporter:9188": f"127.0.0.1:{port}",
                     "alertmanager:9093": f"127.0.0.1:{self.alertmanagers[0].port}",
                     "alertmanager-b:9093": f"127.0.0.1:{self.alertmanagers[1].port}",
                     "victoriametrics:8428": f"127.0.0.1:{self.store.port}",
                     "vmalert:8880": f"127.0.0.1:{self.vmalert.port}"}
        self.prometheus = {}
        for replica in ("a", "b"):
            self.prometheus[replica] = PrometheusServer(replica_config(replica, addresses, self.store.url))
            self.closers.append(self.prometheus[replica].destroy)

    def firing(self, alertname: str) -> list[dict[str, Any]]:
        """The webhook notifications (from either Alertmanager) with ``alertname`` firing."""
        return [n for n in self.webhook.notifications
                if any(a["status"] == "firing" and a["labels"]["alertname"] == alertname for a in n["alerts"])]

    def wait_for_notification(self, alertname: str, timeout: float = 90.0) -> None:
        try:
            wait_until(lambda: self.firing(alertname), timeout, f"the {alertname} notification", interval=0.5)
        except TimeoutError as error:
            held = sorted(a["labels"]["alertname"] + "/" + a["state"] for a in self.vmalert.alerts())
            raise AssertionError(f"{error}; vmalert: {held}\n{self.exporter.tail()}\n{self.vmalert.log_tail()}") from None

    def close(self) -> None:
        for closer in reversed(self.closers):
            try:
                closer()
            except Exception:  # noqa: BLE001 - keep stopping the rest
                pass


@pytest.fixture(scope="module")
def scale_out(postgres_factory: Callable[..., Any], redis_factory: Callable[..., Any]) -> Iterator[ScaleOut]:
    built = ScaleOut(postgres_factory(), redis_factory(), Path(tempfile.mkdtemp(prefix="stackwatch-scale-out-")))
    yield built
    built.close()


def test_the_pair_writes_one_series_per_target(scale_out: ScaleOut) -> None:
    """Both replicas scrape the exporter; the store keeps one series (replica label dropped)."""
    def one_up() -> bool:
        found = scale_out.store.query('up{job="stackwatch-exporter"}')
        return len(found) == 1 and found[0]["value"][1] == "1"

    wait_until(one_up, 60, "the exporter's up series in VictoriaMetrics", interval=0.5)
    assert all(am.peer_count() == 2 for am in scale_out.alertmanagers)
    assert not scale_out.store.query('{__name__=~"pg_up|redis_up", __replica__!=""}')


def test_a_fault_notifies_once_through_the_alertmanager_pair(scale_out: ScaleOut) -> None:
    scale_out.redis.stop()
    scale_out.wait_for_notification("RedisDown")
    time.sleep(4)  # past the second Alertmanager's peer timeout: it must not notify again
    assert len(scale_out.firing("RedisDown")) == 1


def test_stopping_one_prometheus_loses_no_alert(scale_out: ScaleOut) -> None:
    scale_out.prometheus["a"].stop()
    scale_out.postgres.stop()
    scale_out.wait_for_notification("PostgresDown")
    time.sleep(4)
    assert len(scale_out.firing("PostgresDown")) == 1
