"""``recallwatch review``: the real command in a child process, its label file read back."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from recallwatch.cli import main
from tests.helpers.mining import Simulated


def _start(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str, list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "recallwatch.cli", "review", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:  # the command prints its URL once it listens
        lines.append(line.strip())
        if line.startswith("labels are written to"):
            break
    page = next(x for x in lines if x.startswith("review page: ")).removeprefix("review page: ")
    return proc, page, lines


def _stop(proc: subprocess.Popen[str], sig: signal.Signals) -> str:
    """Send ``sig`` and wait for the exit; its stderr. Killed (and its pipes closed) if it hangs."""
    proc.send_signal(sig)
    try:
        return proc.communicate(timeout=60)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise


def test_one_shot_review_writes_labels_that_fn_rate_reads_back(
    simulated: Simulated, tmp_path: Path
) -> None:
    sim, corpus, mined, _ = simulated
    labels = tmp_path / "labels.csv"
    env = {k: v for k, v in os.environ.items() if k != "RECALLWATCH_REVIEW_TOKEN"}
    common = ["--mined", str(mined), "--corpus", str(corpus), "--sample", "30", "--seed", "2"]
    proc, page, lines = _start(
        [*common, "--labels", str(labels), "--port", "0", "--no-browser"], env
    )
    try:
        url, token = page.split("#token=")
        assert any(x == f"review token (shown once): {token}" for x in lines)
        base = url.split("/review/")[0]
        headers = {"Origin": base, "X-Review-Token": token}
        for _ in range(10):
            item = requests.get(f"{url}/state?reviewer=ann", timeout=10).json()["item"]
            truth = item["doc_id"] in sim.relevant[item["query_id"]]
            form = {
                "reviewer": "ann",
                "label": "relevant" if truth else "not_relevant",
                "query_id": item["query_id"],
                "doc_id": item["doc_id"],
            }
            assert requests.post(f"{url}/label", data=form, headers=headers, timeout=10).ok
        state = requests.get(f"{url}/state?reviewer=ann", timeout=10).json()
    finally:
        err = _stop(proc, signal.SIGINT)
    assert proc.returncode == 0 and "stopped" in err
    with labels.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 10 and {r["reviewer"] for r in rows} == {"ann"}
    out = tmp_path / "fn.json"
    argv = ["fn-rate", *common, "--oracle", f"labels:{labels}", "--control", "0"]
    assert main([*argv, "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["rates"] == state["estimate"]["rates"]
    assert doc["rates"]["judged"] == 10 and doc["rates"]["population"] == len(sim.mined.table())
    # Started again on the same file, the review resumes: ann has 10 of 30 done.
    proc, page, _ = _start(
        [*common, "--labels", str(labels), "--port", "0", "--no-browser", "--token", "chosen"], env
    )
    try:
        url = page.split("#token=")[0]
        assert page.endswith("#token=chosen")
        again = requests.get(f"{url}/state?reviewer=ann", timeout=10).json()
        assert again["progress"] == {"done": 10, "total": 30}
        assert again["estimate"] == state["estimate"]
    finally:
        err = _stop(proc, signal.SIGTERM)  # as a service manager stops it
    assert proc.returncode == 0 and "stopped" in err
