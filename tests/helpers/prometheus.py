"""Real Prometheus and Alertmanager servers on loopback, for the tests that scrape the daemon or
route its alerts. Each test writes its own configuration; these start the binaries on it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.helpers.processes import free_port, wait_for

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
ALERTMANAGER = (
    shutil.which("prometheus-alertmanager")
    or shutil.which("alertmanager")
    or "/usr/bin/prometheus-alertmanager"
)


def start_prometheus(
    tmp_path: Path, config: dict[str, Any], processes: list[subprocess.Popen[bytes]]
) -> tuple[str, subprocess.Popen[bytes]]:
    """Start Prometheus on ``config`` and a free loopback port (files under ``tmp_path``, the
    process added to ``processes``); its URL and process, maybe not ready yet."""
    flags = [f"--storage.tsdb.path={tmp_path / 'tsdb'}", "--log.level=warn"]
    return _start(PROMETHEUS, "prometheus", tmp_path, config, processes, flags)


def start_alertmanager(
    tmp_path: Path,
    config: dict[str, Any],
    processes: list[subprocess.Popen[bytes]],
    *flags: str,
) -> tuple[str, subprocess.Popen[bytes]]:
    """Start Alertmanager on ``config`` and a free loopback port, with any other ``flags``; its
    URL and process, maybe not ready yet."""
    flags = (f"--storage.path={tmp_path / 'alertmanager-data'}", *flags)
    return _start(ALERTMANAGER, "alertmanager", tmp_path, config, processes, list(flags))


def routing_to(webhook_url: str) -> dict[str, Any]:
    """An Alertmanager configuration that sends every alert to ``webhook_url`` within a second
    (resolutions too), grouped by alert name and run."""
    return {
        "route": {
            "receiver": "hook",
            "group_by": ["alertname", "run"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {"name": "hook", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}
        ],
    }


def _start(
    binary: str,
    name: str,
    tmp_path: Path,
    config: dict[str, Any],
    processes: list[subprocess.Popen[bytes]],
    flags: list[str],
) -> tuple[str, subprocess.Popen[bytes]]:
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    with (tmp_path / f"{name}.log").open("wb") as log:
        proc = subprocess.Popen(
            [binary, f"--config.file={path}", f"--web.listen-address=127.0.0.1:{port}", *flags],
            stdout=log,
            stderr=log,
        )
    processes.append(proc)
    return f"http://127.0.0.1:{port}", proc


def wait_ready(proc: subprocess.Popen[bytes], url: str, what: str, timeout: float = 60.0) -> None:
    """Wait until a server answers its readiness endpoint (the failure says if it exited)."""

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}")
        try:
            return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(ready, timeout=timeout, interval=0.2, what=what)
