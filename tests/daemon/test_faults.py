"""Faults: kill -9 mid-evaluation, corrupt checkpoints, an unwritable or busy store."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from recallwatch.synthetic.heldout import SyntheticSet
from tests.daemon.helpers import HOLD_ENCODER
from tests.helpers.processes import REPO, wait_for
from tests.helpers.runs import config_doc, mark_complete, write_checkpoint, write_config
from tests.helpers.serve import Serve


def detail(api: httpx.Client, name: str) -> dict[str, Any] | None:
    """The API's view of a checkpoint of run ``demo``."""
    r = api.get(f"/api/v1/runs/demo/evaluations/{name}")
    return r.json() if r.status_code == 200 else None


def in_state(api: httpx.Client, name: str, state: str) -> dict[str, Any] | None:
    """The checkpoint once it reaches ``state``."""
    c = detail(api, name)
    return c if c is not None and c["state"] == state else None


def failures(text: str) -> dict[str, float]:
    """``recallwatch_evaluation_failures_total`` by reason, of the reasons that happened (every
    known reason is exported at 0 before its first failure)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "recallwatch_evaluation_failures_total" and s.value:
                out[s.labels["reason"]] = s.value
    return out


def test_kill_9_mid_evaluation_then_restart_evaluates_once_and_loses_nothing(
    tmp_path: Path, synthetic: SyntheticSet, serve: type[Serve]
) -> None:
    run_dir = tmp_path / "run"
    write_checkpoint(run_dir, 1, synthetic)
    doc = config_doc(tmp_path, synthetic.path, run_dir, encoder=HOLD_ENCODER)
    config = write_config(tmp_path / "rw.yaml", doc)
    first = serve(config, tmp_path / "first.log").start()
    with httpx.Client(base_url=first.url, timeout=10) as api:
        done_before = wait_for(lambda: in_state(api, "checkpoint-1", "evaluated"), what="first")
        ckpt = write_checkpoint(run_dir, 2, synthetic, complete=False)
        (ckpt / "hold").write_text("")
        mark_complete(ckpt, 2)
        wait_for((ckpt / "started").exists, what="the evaluation to start")
        assert in_state(api, "checkpoint-2", "evaluating")
    assert first.proc is not None
    children = psutil.Process(first.proc.pid).children(recursive=True)
    assert children, "the evaluation runs in a child process"
    # Forked by the warm parent (evaluation.warm_child, the default), itself the daemon's child.
    evaluation = psutil.Process(int((ckpt / "started").read_text()))
    warm_parent = evaluation.parent()
    assert warm_parent is not None and warm_parent.ppid() == first.proc.pid
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)
    # The orphaned evaluation notices its parent is gone and exits.
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive

    (ckpt / "hold").unlink()
    second = serve(config, tmp_path / "second.log").start()
    with httpx.Client(base_url=second.url, timeout=10) as api:
        after = wait_for(lambda: in_state(api, "checkpoint-2", "evaluated"), what="the re-run")
        kept = detail(api, "checkpoint-1")
    assert [e["status"] for e in after["history"]] == ["done"]
    assert after["attempts"] == 2
    assert kept is not None and kept["history"] == done_before["history"]
    assert any(r["message"].startswith("re-running") for r in second.records())
    assert second.stop() == 0


def corrupt_nan(ckpt: Path) -> None:
    """A NaN in the corpus embeddings."""
    path = ckpt / "eval_embeddings" / "corpus.npy"
    corpus = np.load(path)
    corpus[5, 3] = np.nan
    np.save(path, corpus)


def corrupt_dimension(ckpt: Path) -> None:
    """Query embeddings of another dimension than the corpus'."""
    path = ckpt / "eval_embeddings" / "queries.npy"
    np.save(path, np.load(path)[:, :32].copy())


def corrupt_missing(ckpt: Path) -> None:
    """No embeddings at all."""
    shutil.rmtree(ckpt / "eval_embeddings")


def test_corrupt_checkpoints_fail_with_a_reason_and_the_daemon_goes_on(
    tmp_path: Path, synthetic: SyntheticSet, serve: type[Serve]
) -> None:
    run_dir = tmp_path / "run"
    for step, corrupt in ((1, corrupt_nan), (2, corrupt_dimension), (3, corrupt_missing)):
        ckpt = write_checkpoint(run_dir, step, synthetic, complete=False)
        corrupt(ckpt)
        mark_complete(ckpt, step)
    write_checkpoint(run_dir, 4, synthetic)
    config = write_config(tmp_path / "rw.yaml", config_doc(tmp_path, synthetic.path, run_dir))
    daemon = serve(config, tmp_path / "serve.log").start()
    with httpx.Client(base_url=daemon.url, timeout=10) as api:
        wait_for(lambda: in_state(api, "checkpoint-4", "evaluated"), what="the good checkpoint")
        states = {f"checkpoint-{s}": detail(api, f"checkpoint-{s}") for s in (1, 2, 3)}
        text = api.get("/metrics").text
        assert api.get("/healthz").status_code == 200
        assert api.get("/readyz").status_code == 200
    reasons = {name: (c or {}).get("reason") for name, c in states.items()}
    assert reasons == {
        "checkpoint-1": "bad_embeddings",
        "checkpoint-2": "bad_embeddings",
        "checkpoint-3": "bad_checkpoint",
    }
    nan = states["checkpoint-1"]
    assert nan is not None and "NaN" in nan["message"] and nan["state"] == "failed"
    assert failures(text) == {"bad_embeddings": 2.0, "bad_checkpoint": 1.0}
    assert daemon.stop() == 0


def test_truncated_safetensors_fails_and_the_next_checkpoint_is_evaluated(
    tmp_path: Path, synthetic: SyntheticSet, serve: type[Serve], minilm_dir: Path
) -> None:
    pytest.importorskip("sentence_transformers")
    run_dir = tmp_path / "run"
    for step, truncate in ((1, True), (2, False)):
        ckpt = run_dir / f"checkpoint-{step}"
        shutil.copytree(minilm_dir, ckpt, ignore=shutil.ignore_patterns("model.safetensors"))
        weights = (minilm_dir / "model.safetensors").read_bytes()
        if truncate:
            (ckpt / "model.safetensors").write_bytes(weights[: len(weights) // 3])
        else:
            (ckpt / "model.safetensors").symlink_to(minilm_dir / "model.safetensors")
        mark_complete(ckpt, step)
    doc = config_doc(tmp_path, synthetic.path, run_dir, encoder="st")
    doc["evaluation"]["encoder"] = {"spec": "st", "batch_size": 64, "max_seq_length": 32}
    config = write_config(tmp_path / "rw.yaml", doc)
    daemon = serve(config, tmp_path / "serve.log").start()
    with httpx.Client(base_url=daemon.url, timeout=10) as api:
        good = wait_for(
            lambda: in_state(api, "checkpoint-2", "evaluated"),
            timeout=150,
            what="the st checkpoint",
        )
        bad = detail(api, "checkpoint-1")
        text = api.get("/metrics").text
    assert bad is not None and bad["state"] == "failed" and bad["reason"] == "bad_checkpoint"
    assert "safetensors" in bad["message"].lower() or "load" in bad["message"]
    assert failures(text) == {"bad_checkpoint": 1.0}
    assert good["evaluations"][0]["metrics"]["recall"]["100"] > 0
    # the default precision is fp32 on every machine (auto and bf16 are opt-ins: issue 27)
    assert good["evaluations"][0]["precision"] == "fp32"
    # its report, through the child process and the store: fp32 as configured, no probe
    report = good["evaluations"][0]["precision_report"]
    assert (report["requested"], report["used"], report["verdict"]) == ("fp32", "fp32", "not-run")
    assert good["evaluations"][0]["precision_summary"] == (
        "Encoded in fp32 (parity probe not run: fp32 as configured)"
    )
    assert daemon.stop() == 0


def run_serve(config: Path) -> subprocess.CompletedProcess[str]:
    """Run ``recallwatch serve`` expecting it to refuse to start."""
    return subprocess.run(
        [sys.executable, "-m", "recallwatch.cli", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )


def test_unwritable_store_is_a_clear_startup_error(tmp_path: Path, synthetic: SyntheticSet) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the store's directory should be")
    doc = config_doc(tmp_path, synthetic.path, tmp_path / "run")
    doc["store"] = {"path": str(blocker / "recallwatch.db")}
    done = run_serve(write_config(tmp_path / "rw.yaml", doc))
    assert done.returncode == 2
    assert f"cannot open the store {blocker / 'recallwatch.db'}" in done.stderr
    assert "writable" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only permissions")
def test_read_only_store_directory_is_a_clear_startup_error(
    tmp_path: Path, synthetic: SyntheticSet
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    doc = config_doc(tmp_path, synthetic.path, tmp_path / "run")
    doc["store"] = {"path": str(locked / "recallwatch.db")}
    done = run_serve(write_config(tmp_path / "rw.yaml", doc))
    assert done.returncode == 2
    assert "cannot open the store" in done.stderr


def test_a_second_daemon_on_the_same_store_is_refused(
    tmp_path: Path, synthetic: SyntheticSet, serve: type[Serve]
) -> None:
    config = write_config(
        tmp_path / "rw.yaml", config_doc(tmp_path, synthetic.path, tmp_path / "run")
    )
    first = serve(config, tmp_path / "first.log").start()
    done = run_serve(config)
    assert done.returncode == 2
    assert "in use by another recallwatch process" in done.stderr
    assert first.stop() == 0
