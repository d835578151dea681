"""The chart's container, run for real: the exporter started with the Deployment's arguments and
environment, its Secrets as files, answers the kubelet's probes and reads its targets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.deploy.chart import by_kind, render
from tests.fixtures.procs import free_port, stop_process, wait_until
from tests.fixtures.redis import RedisServer


def _pod(values: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The container of the rendered Deployment and its mounts (path -> Secret name)."""
    (deployment,) = by_kind(render(values), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    mounts = {m["mountPath"]: secrets[m["name"]] for m in container["volumeMounts"] if m["name"] in secrets}
    return container, mounts


def test_the_container_serves_its_probes_with_credentials_from_files(redis_server: RedisServer,
                                                                     tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"redis": {"existingSecret": "cache"},
                                      "targetsFile": {"existingSecret": "targets"}}), encoding="utf-8")
    container, mounts = _pod(values)
    # the Secrets' contents, where the kubelet would mount them (under tmp_path here)
    contents = {"cache": {"url": redis_server.url},
                "targets": {"targets.yml": yaml.safe_dump({"targets": {"sessions": {"redis_url": redis_server.url}}})}}
    local = {}
    for mount, secret in mounts.items():
        local[mount] = tmp_path / mount.strip("/")
        local[mount].mkdir(parents=True)
        for key, text in contents[secret].items():
            (local[mount] / key).write_text(text, encoding="utf-8")

    def here(text: str) -> str:
        for mount, directory in local.items():
            text = text.replace(mount, str(directory))
        return text

    port = free_port()
    args = [here(a) for a in container["args"] if not a.startswith("--listen=")]
    assert args[:2] == ["stackwatch", "exporter"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STACKWATCH_")}
    env.update({e["name"]: here(e["value"]) for e in container["env"]})
    process = subprocess.Popen([sys.executable, "-m", "stackwatch.cli", *args[1:], f"--listen=127.0.0.1:{port}"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        liveness = container["livenessProbe"]["httpGet"]["path"]
        readiness = container["readinessProbe"]["httpGet"]["path"]
        wait_until(lambda: httpx.get(base + liveness, timeout=2).status_code == 200, 30, "liveness")
        wait_until(lambda: httpx.get(base + readiness, timeout=2).status_code == 200, 30, "readiness")
        metrics = httpx.get(base + "/metrics", timeout=5).text
        assert 'redis_up{server="' in metrics and redis_server.url not in metrics
        probe = httpx.get(base + "/probe", params={"target": "sessions"}, timeout=5).text
        assert 'redis_up{server="sessions"} 1' in probe
    finally:
        stop_process(process)
        if process.stderr:
            process.stderr.close()

