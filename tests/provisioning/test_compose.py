"""docker-compose.yml: valid per the compose specification, and complete in what it promises.

Docker is not available here, so the file is checked as data: the schema, mounts, healthchecks,
pinned images, dependency conditions, volumes, and the monitoring-only override.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from stackwatch.thresholds import POSTGRES
from tests.fixtures.procs import venv_tool

from .conftest import COMPOSE_FILE, MONITORING_ONLY_FILE, ROOT, compose, load_yaml, services, with_defaults

DEMO_SERVICES = {"postgres", "redis", "demo-1", "demo-2", "nginx", "worker", "loadgen"}
MONITORING_SERVICES = {"stackwatch-exporter", "prometheus", "alertmanager", "grafana", "otel-collector", "tempo",
                       "node-exporter"}


@pytest.mark.parametrize("path", [COMPOSE_FILE, MONITORING_ONLY_FILE], ids=lambda p: p.name)
def test_validates_against_the_compose_spec(path: Path) -> None:
    result = subprocess.run([venv_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_whole_stack_is_there_and_starts_by_default() -> None:
    defined = services()
    assert set(defined) == DEMO_SERVICES | MONITORING_SERVICES
    # plain `docker compose up -d` starts everything, the demo included
    assert all("profiles" not in service for service in defined.values())


def test_every_bind_mount_exists() -> None:
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_named_volumes_are_declared() -> None:
    declared = set(compose()["volumes"])
    # relative and absolute paths are bind mounts (node-exporter reads the host's / read-only)
    used = {v.split(":")[0] for s in services().values() for v in s.get("volumes", []) if not v.startswith((".", "/"))}
    assert used == declared


def test_every_service_has_a_healthcheck() -> None:
    for name, service in services().items():
        check = service.get("healthcheck", {})
        assert check.get("test") and check["test"][0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
        assert not check.get("disable"), name


def test_dependencies_wait_for_health() -> None:
    defined = services()
    for name, service in defined.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in defined, f"{name} depends on unknown {dependency}"
            assert condition == {"condition": "service_healthy"}, f"{name} -> {dependency}"
    assert set(defined["grafana"]["depends_on"]) == {"prometheus", "alertmanager", "tempo"}
    assert set(defined["demo-1"]["depends_on"]) == {"postgres", "redis", "otel-collector"}
    assert defined["demo-2"] == defined["demo-1"]  # replicas of one service
    assert set(defined["nginx"]["depends_on"]) == {"demo-1", "demo-2"}
    assert set(defined["loadgen"]["depends_on"]) == {"nginx"}  # the load goes through the balancer


def _pinned(image: str) -> bool:
    name, _, tag = image.rpartition(":")
    return bool(name) and tag not in ("", "latest") and "/" not in tag and any(c.isdigit() for c in tag)


def test_images_are_pinned() -> None:
    for name, service in services().items():
        if "build" in service:
            context = ROOT / service["build"]
            dockerfile = context / "Dockerfile"
            assert dockerfile.exists(), f"{name}: {dockerfile} is missing"
            bases = re.findall(r"(?m)^FROM\s+(\S+)", dockerfile.read_text())
            assert bases and all(_pinned(b) for b in bases), f"{name}: unpinned base in {bases}"
        else:
            assert _pinned(service["image"]), f"{name}: {service['image']} is not pinned"


def test_one_image_serves_the_exporter_the_demo_and_the_load() -> None:
    defined = services()
    ours = {n: s for n, s in defined.items() if s.get("build") == "."}
    assert set(ours) == {"stackwatch-exporter", "demo-1", "demo-2", "worker", "loadgen"}
    assert len({s["image"] for s in ours.values()}) == 1


def test_dockerfile_installs_the_repo_as_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r'pip wheel .* "\.\[', text), "the image must `pip install .` this repository"
    user = re.findall(r"(?m)^USER\s+(\S+)", text)
    assert user and not user[-1].startswith(("root", "0")), "the image must run as a non-root user"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".git" in ignored and ".env" in ignored


def test_monitoring_only_override_leaves_the_demo_out() -> None:
    base = services()
    override = load_yaml(MONITORING_ONLY_FILE)["services"]
    assert set(override) == DEMO_SERVICES | {"stackwatch-exporter"}
    assert all(override[name] == {"profiles": ["demo"]} for name in DEMO_SERVICES)
    # profiles only remove services: nothing left running may depend on a removed one
    for name in MONITORING_SERVICES:
        assert not set(base[name].get("depends_on", {})) & DEMO_SERVICES, f"{name} needs the demo"


def test_every_variable_is_documented_in_env_example() -> None:
    used = set(re.findall(r"\$\{(\w+)", COMPOSE_FILE.read_text()))
    documented = set(re.findall(r"(?m)^#?\s*(\w+)=", (ROOT / ".env.example").read_text()))
    assert used <= documented, f"undocumented in .env.example: {sorted(used - documented)}"
    assert "COMPOSE_FILE" in documented


def test_postgres_logs_slow_statements_at_the_shared_threshold() -> None:
    command = services()["postgres"]["command"]
    settings = dict(arg.split("=", 1) for arg in command if "=" in arg)
    assert settings["shared_preload_libraries"] == "pg_stat_statements"
    assert int(settings["log_min_duration_statement"]) == round(POSTGRES.slow_statement_mean_seconds * 1000)


def test_prometheus_keeps_exemplars_and_loads_the_rules() -> None:
    prometheus = services()["prometheus"]
    assert "--enable-feature=exemplar-storage" in prometheus["command"]
    assert "./alerts/rules:/etc/prometheus/rules:ro" in prometheus["volumes"]


def test_the_exporter_accepts_the_compose_environment() -> None:
    """The exporter's variables in docker-compose.yml (defaults applied) resolve without errors."""
    from stackwatch.cli import build_parser
    from stackwatch.core.options import resolve_options
    from stackwatch.exporters.main import all_options

    service = services()["stackwatch-exporter"]
    environ = {key: with_defaults(str(value)) for key, value in service["environment"].items()}
    args = build_parser().parse_args(service["command"][1:])
    values = resolve_options(all_options(), args, environ)
    assert values["listen"] == ("0.0.0.0", 9188)
    assert values["postgres_dsn"] and values["redis_url"]
    dockerfile_cmd = re.search(r'(?m)^CMD \[(.*)\]', (ROOT / "Dockerfile").read_text()).group(1)
    assert build_parser().parse_args([a.strip(' "') for a in dockerfile_cmd.split(",")][1:]).command == "exporter"


def test_the_demo_commands_and_variables_exist() -> None:
    import importlib.util

    defined = services()
    assert importlib.util.find_spec("demo.app") and importlib.util.find_spec("demo.loadgen")
    assert defined["demo-1"]["command"][1] == "demo.app:app"
    assert defined["loadgen"]["command"][:3] == ["python", "-m", "demo.loadgen"]
    app_source = (ROOT / "demo" / "app.py").read_text()
    for variable in ("DEMO_DATABASE_URL", "DEMO_REDIS_URL"):
        assert variable in defined["demo-1"]["environment"] and variable in app_source


def _exporter_environment(environ: dict[str, str], monitoring_only: bool = False) -> dict[str, str]:
    """The exporter's environment as compose interpolates it, the monitoring-only override's
    variables replacing the base's (compose merges mappings key by key)."""
    variables = dict(services()["stackwatch-exporter"]["environment"])
    if monitoring_only:
        variables |= _monitoring_only_exporter()["environment"]
    return {key: with_defaults(str(value), environ) for key, value in variables.items()}


def _monitoring_only_exporter() -> dict[str, Any]:
    return dict(load_yaml(MONITORING_ONLY_FILE)["services"]["stackwatch-exporter"])


def _resolved(environment: dict[str, str]) -> dict[str, Any]:
    """The exporter's options from ``environment``, as the container's ``stackwatch exporter`` reads them."""
    from stackwatch.cli import build_parser
    from stackwatch.core.options import resolve_options
    from stackwatch.exporters.main import all_options

    return dict(resolve_options(all_options(), build_parser().parse_args(["exporter"]), environment))


def test_an_empty_dsn_or_url_means_no_target_and_unset_the_demo() -> None:
    """A monitoring-only team without Redis sets STACKWATCH_REDIS_URL= : no target, not the demo's."""
    empty = _exporter_environment({"STACKWATCH_POSTGRES_DSN": "", "STACKWATCH_REDIS_URL": ""})
    assert empty["STACKWATCH_POSTGRES_DSN"] == "" and empty["STACKWATCH_REDIS_URL"] == ""
    unset = _exporter_environment({})
    assert "@postgres:5432/demo" in unset["STACKWATCH_POSTGRES_DSN"]
    assert unset["STACKWATCH_REDIS_URL"] == "redis://redis:6379/0"
    own = _exporter_environment({"STACKWATCH_REDIS_URL": "redis://cache.internal:6379/0"})
    assert own["STACKWATCH_REDIS_URL"] == "redis://cache.internal:6379/0"


def test_the_exporter_watches_the_disk_of_the_demo_database() -> None:
    """PostgresDiskFullForecast joins the databases' growth with the free space of the filesystem
    named as their server: the exporter gets the demo database's volume, read-only, under the name
    its DSN gives that server; set to nothing, no filesystem (a team watching its own server)."""
    from stackwatch.exporters.postgres import target_name

    defined = services()
    (filesystem,) = _resolved(_exporter_environment({}))["filesystem"]
    assert filesystem.name == target_name(_exporter_environment({})["STACKWATCH_POSTGRES_DSN"])
    data = next(v for v in defined["postgres"]["volumes"] if v.startswith("postgres-data:"))
    assert data.split(":")[1] == filesystem.path
    assert f"{data}:ro" in defined["stackwatch-exporter"]["volumes"]
    assert not _resolved(_exporter_environment({"STACKWATCH_FILESYSTEMS": ""}))["filesystem"]


def _mount_path(volume: str | dict[str, Any]) -> str:
    """Where a service's volume entry (short or long syntax) is mounted: compose's merge key."""
    return str(volume["target"]) if isinstance(volume, dict) else volume.split(":")[1]


def test_the_monitoring_only_exporter_neither_mounts_nor_forecasts_the_demo_volume() -> None:
    """Without the demo database its volume is empty: with the override the exporter watches no
    filesystem unless told to, and the demo volume's mount is replaced (same path) by a placeholder
    that a team's own data directory replaces in turn."""
    base, override = services()["stackwatch-exporter"], _monitoring_only_exporter()
    mounts = {_mount_path(v): v for v in base["volumes"]} | {_mount_path(v): v for v in override["volumes"]}
    demo = next(v for v in base["volumes"] if v.startswith("postgres-data:"))
    assert demo not in mounts.values() and _mount_path(demo) in mounts
    assert mounts[_mount_path(demo)] == {"type": "tmpfs", "target": _mount_path(demo), "read_only": True}
    assert not _resolved(_exporter_environment({}, monitoring_only=True))["filesystem"]
    own = f"db.internal:5432/app={_mount_path(demo)}"
    (filesystem,) = _resolved(_exporter_environment({"STACKWATCH_FILESYSTEMS": own}, monitoring_only=True))[
        "filesystem"]
    assert (filesystem.name, filesystem.path) == ("db.internal:5432/app", _mount_path(demo))


def test_the_exporter_with_an_empty_dsn_watches_no_postgres(redis_server) -> None:
    """The compose environment with STACKWATCH_POSTGRES_DSN= and a real Redis, run natively: no pg_*
    series (no PostgresDown, no PostgresMetricsAbsent to fire), Redis watched as usual."""
    import urllib.request

    from tests.fixtures.exporter import ExporterProcess

    env = _exporter_environment({"STACKWATCH_POSTGRES_DSN": "", "STACKWATCH_REDIS_URL": redis_server.url})
    exporter = ExporterProcess(env=env)  # --listen on loopback wins over STACKWATCH_LISTEN
    try:
        with urllib.request.urlopen(f"http://{exporter.address}/metrics", timeout=10) as response:
            lines = response.read().decode().splitlines()
    finally:
        exporter.stop()
    assert "redis_up 1.0" in {line.split("{")[0] + " " + line.rsplit(" ", 1)[-1] for line in lines}
    assert not [line for line in lines if line.startswith("pg_")]
    kinds = {m.group(1) for line in lines if (m := re.search(r'stackwatch_exporter_target_info\{.*kind="(\w+)"', line))}
    assert "redis" in kinds and "pg" not in kinds


def test_published_ports_listen_on_loopback_unless_told_otherwise() -> None:
    """Prometheus' lifecycle API and Alertmanager's silences have no authentication: nothing is
    published beyond 127.0.0.1 unless STACKWATCH_BIND says so."""
    published = [(name, str(mapping)) for name, service in services().items() for mapping in service.get("ports", [])]
    assert published
    for name, mapping in published:
        assert mapping.startswith("${STACKWATCH_BIND:-127.0.0.1}:"), f"{name} publishes {mapping}"
        assert with_defaults(mapping).startswith("127.0.0.1:"), name
        assert with_defaults(mapping, {"STACKWATCH_BIND": ""}).startswith("127.0.0.1:"), name
        assert with_defaults(mapping, {"STACKWATCH_BIND": "0.0.0.0"}).startswith("0.0.0.0:"), name
    assert "--web.enable-lifecycle" in services()["prometheus"]["command"]  # why this matters (docs/stack.md)
    assert "STACKWATCH_BIND=0.0.0.0" in (ROOT / "docs" / "stack.md").read_text()
