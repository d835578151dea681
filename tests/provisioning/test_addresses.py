"""Every host:port the provisioning names is a compose service listening on that port.

Two halves: the references (scrape targets, Alertmanager, datasource URLs, the collector's
exporter, the services' environment) point at a service's exposed port; and each service's own
configuration really listens on the ports it exposes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from .conftest import PROVISIONING, exposed_ports, load_yaml, services, with_defaults


def _split(address: str) -> tuple[str, int]:
    if "://" in address:
        parts = urlsplit(address)
        assert parts.hostname and parts.port, f"{address} must name host and port explicitly"
        return parts.hostname, parts.port
    host, _, port = address.rpartition(":")
    return host, int(port)


def _nginx_upstreams() -> Iterator[tuple[str, str]]:
    for upstream in re.findall(r"(?m)^\s*server (\S+?)[ ;]", (PROVISIONING / "nginx" / "nginx.conf").read_text()):
        yield "nginx upstream", upstream


def references() -> Iterator[tuple[str, str]]:
    """(where, address) for every address the provisioning and compose name."""
    prometheus = load_yaml(PROVISIONING / "prometheus" / "prometheus.yml")
    for job in prometheus["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                yield f"prometheus.yml job {job['job_name']}", target
    for manager in prometheus["alerting"]["alertmanagers"]:
        for static in manager["static_configs"]:
            for target in static["targets"]:
                yield "prometheus.yml alerting", target
    for path in (PROVISIONING / "grafana" / "datasources").glob("*.yml"):
        for source in load_yaml(path)["datasources"]:
            yield f"{path.name} {source['name']}", source["url"]
    yield from _nginx_upstreams()
    collector = load_yaml(PROVISIONING / "otel-collector" / "config.yml")
    for name, exporter in collector["exporters"].items():
        yield f"otel-collector exporter {name}", exporter["endpoint"]
    for name, service in services().items():
        for key, value in service.get("environment", {}).items():
            for url in re.findall(r"\w+://\S+", with_defaults(str(value))):
                yield f"compose {name} {key}", re.sub(r"//[^@/]*@", "//", url)
        for arg in service.get("command", []):
            if re.match(r"https?://", str(arg)):
                yield f"compose {name} command", arg


REFERENCES = list(references())


def test_references_were_found() -> None:
    wheres = " ".join(where for where, _ in REFERENCES)
    for expected in ("job stackwatch-exporter", "job demo", "job prometheus", "job alertmanager",
                     "job otel-collector", "alerting", "Prometheus", "Tempo", "Alertmanager", "otlp/tempo",
                     "OTEL_EXPORTER_OTLP_ENDPOINT", "STACKWATCH_POSTGRES_DSN", "STACKWATCH_REDIS_URL", "nginx upstream"):
        assert expected in wheres


@pytest.mark.parametrize(("where", "address"), REFERENCES, ids=[f"{w}={a}" for w, a in REFERENCES])
def test_reference_is_a_service_listening_on_that_port(where: str, address: str) -> None:
    host, port = _split(address)
    defined = services()
    assert host in defined, f"{where}: {host} is not a compose service"
    assert port in exposed_ports(defined[host]), f"{where}: {host} does not listen on {port}"


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def test_services_listen_where_they_say() -> None:
    """Compare each service's ``expose`` with the ports its own configuration opens."""
    defined = services()
    tempo = load_yaml(PROVISIONING / "tempo" / "tempo.yml")
    assert exposed_ports(defined["tempo"]) == {
        tempo["server"]["http_listen_port"],
        _port(tempo["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]),
    }
    collector = load_yaml(PROVISIONING / "otel-collector" / "config.yml")
    protocols = collector["receivers"]["otlp"]["protocols"]
    reader = collector["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]
    assert exposed_ports(defined["otel-collector"]) == {
        _port(protocols["grpc"]["endpoint"]), _port(protocols["http"]["endpoint"]), reader["port"],
        _port(collector["extensions"]["health_check"]["endpoint"]),
    }
    exporter = defined["stackwatch-exporter"]
    assert exposed_ports(exporter) == {_port(exporter["environment"]["STACKWATCH_LISTEN"])}
    for replica in ("demo-1", "demo-2"):
        demo = defined[replica]["command"]
        assert exposed_ports(defined[replica]) == {int(demo[demo.index("--port") + 1])}
    listen = re.findall(r"(?m)^\s*listen (\d+);", (PROVISIONING / "nginx" / "nginx.conf").read_text())
    assert exposed_ports(defined["nginx"]) == {int(port) for port in listen}
    # the upstream images' default listen ports
    defaults = {"prometheus": 9090, "alertmanager": 9093, "grafana": 3000, "postgres": 5432, "redis": 6379,
                "node-exporter": 9100}
    for name, port in defaults.items():
        assert exposed_ports(defined[name]) == {port}, name


def test_healthchecks_probe_the_service_itself() -> None:
    for name, service in services().items():
        probe = " ".join(service["healthcheck"]["test"])
        for port in re.findall(r"127\.0\.0\.1:(\d+)", probe):
            assert int(port) in exposed_ports(service), f"{name} healthcheck probes {port}"
