"""``recallwatch demo``: the real daemon on a generated run delivers a real, signed alert."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers.processes import free_port, wait_for


def test_demo_serves_metrics_and_delivers_signed_alerts(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "recallwatch"
    if not exe.exists():
        pytest.skip("the recallwatch console script is not installed in this environment")
    port = free_port()
    out = (tmp_path / "out.txt").open("w")
    proc = subprocess.Popen(
        [
            exe,
            "demo",
            "--workdir",
            str(tmp_path / "demo"),
            "--interval",
            "1",
            "--listen",
            f"127.0.0.1:{port}",
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    try:
        text = (tmp_path / "out.txt").read_text
        wait_for(lambda: "alert.firing" in text(), what="the demo's first alert", timeout=180)
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        alerts = httpx.get(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=10).json()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()
    printed = text()
    assert "signature verified" in printed
    assert "after a mining change" in printed
    assert 'recallwatch_recall_ratio{dataset="synthetic",k="10",run="demo"}' in metrics
    assert 'recallwatch_false_negative_ratio{bound="estimate",run="demo"}' in metrics
    rules = {a["rule"] for a in alerts["alerts"]}
    assert "recall-drop-after-mining-change" in rules, json.dumps(alerts)[:500]
    # A non-empty work directory is refused rather than mixed with a previous demo.
    again = subprocess.run(
        [exe, "demo", "--workdir", str(tmp_path / "demo"), "--duration", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 2 and "is not empty" in again.stderr
