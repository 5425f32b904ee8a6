"""Relative secret files are read from the config file's directory, not the working one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_check_config_reads_relative_secret_files_from_the_config_directory(
    tmp_path: Path,
) -> None:
    conf = tmp_path / "conf"
    (conf / "secrets").mkdir(parents=True)
    (conf / "secrets" / "hook-url").write_text("https://hooks.example.org/in\n")
    (conf / "secrets" / "signing").write_text("whsec_MTIz\n")
    (conf / "secrets" / "slack").write_text("https://hooks.slack.com/services/T/B/x\n")
    heldout = conf / "heldout"
    (heldout / "qrels").mkdir(parents=True)
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        (heldout / name).write_text("")
    (conf / "recallwatch.yaml").write_text(
        "heldout: [{path: heldout}]\n"
        "runs: [{name: a, directory: runs/a}]\n"
        "evaluation: {encoder: precomputed}\n"
        "notifications:\n"
        "  channels:\n"
        "    - {name: hook, type: webhook, url_file: secrets/hook-url,"
        " secret_file: secrets/signing}\n"
        "    - {name: slack, type: slack, webhook_url_file: ./secrets/slack}\n"
        "  rules:\n"
        "    - {name: drop, type: recall_regression, channels: [hook, slack]}\n"
    )
    exe = Path(sys.executable).parent / "recallwatch"
    if not exe.exists():
        pytest.skip("the recallwatch console script is not installed in this environment")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "service")}
    for cwd, config in ((elsewhere, "../conf/recallwatch.yaml"), (conf, "recallwatch.yaml")):
        done = subprocess.run(
            [exe, "check-config", config],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, (cwd, done.stderr)
        assert "valid" in done.stdout
