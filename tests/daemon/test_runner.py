"""The runner: errors in the error tree; a Ctrl-C on the daemon's terminal spares the child."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from recallwatch.daemon.runner import EvaluationError, Job, run_in_process, run_isolated
from recallwatch.errors import RecallwatchError
from recallwatch.synthetic.heldout import write_heldout, write_precomputed_checkpoint
from tests.helpers.processes import wait_for


def test_an_evaluation_error_is_a_recallwatch_error_with_a_bounded_reason(tmp_path: Path) -> None:
    exc = EvaluationError("timeout", "the evaluate process took longer than 2 s")
    assert isinstance(exc, RecallwatchError)
    assert (exc.reason, exc.message) == ("timeout", "the evaluate process took longer than 2 s")
    assert str(exc) == exc.message
    # A RecallwatchError of the evaluation arrives as one, with that error's reason and message.
    job = Job(
        checkpoint=str(tmp_path / "ckpt"),
        encoder={"spec": "precomputed"},
        heldout=str(tmp_path / "no-such-heldout"),
        split="test",
        relevance_level=1,
        ks=[1],
        similarity="cosine",
        shard_rows=1000,
    )
    with pytest.raises(EvaluationError) as info:
        run_in_process(job, 0.0, threading.Event())
    assert isinstance(info.value.__cause__, RecallwatchError)
    assert info.value.reason == info.value.__cause__.reason != "error"
    assert info.value.message == str(info.value.__cause__)


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_sigint_to_the_process_group_spares_the_evaluation(tmp_path: Path, warm: bool) -> None:
    synthetic = write_heldout(tmp_path / "heldout", num_docs=200, num_queries=20, dim=8, seed=3)
    ckpt = write_precomputed_checkpoint(tmp_path / "ckpt", synthetic, noise=0.3)
    started = tmp_path / "encoder-started"
    # A slow user encoder: the evaluation is surely running when the signal arrives.
    (tmp_path / "slow_enc.py").write_text(
        textwrap.dedent(
            f"""
            import pathlib, time, numpy as np
            def encode(checkpoint, texts, kind):
                pathlib.Path({str(started)!r}).touch()
                time.sleep(2.0)
                return np.ones((len(texts), 4)) + np.arange(len(texts))[:, None]
            """
        )
    )
    # The "daemon": ignores SIGINT like serve's handler does, runs one isolated evaluation (in
    # a fresh child, or in one forked by the warm parent).
    script = textwrap.dedent(
        f"""
        import json, signal, threading
        from recallwatch.daemon.runner import Job, WarmChildren, run_isolated, EvaluationError
        if {warm!r}:
            run_isolated = WarmChildren().run
        signal.signal(signal.SIGINT, lambda *a: None)
        job = Job(checkpoint={str(ckpt)!r}, encoder={{"spec": "python:slow_enc:encode"}},
                  heldout={str(synthetic.path)!r}, split="test", relevance_level=1, ks=[1, 10],
                  similarity="cosine", shard_rows=1000)
        try:
            r = run_isolated(job, 60.0, threading.Event())
            print(json.dumps({{"ok": True, "queries": r.counts["queries"]}}))
        except EvaluationError as exc:
            print(json.dumps({{"ok": False, "error": str(exc)}}))
        """
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own group, like a shell job, so the test is not hit
    )
    try:
        wait_for(started.exists, what="the evaluation child to start encoding", timeout=60)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does to the foreground job
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert json.loads(out.strip().splitlines()[-1]) == {"ok": True, "queries": 20}


def test_a_child_killed_by_sigbus_is_a_crash_that_names_the_likely_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real SIGBUS: the encoder touches a page of a mapped file that was cut short under it,
    # what a corpus.npy truncated during its own (memory-mapped) evaluation does.
    synthetic = write_heldout(tmp_path / "heldout", num_docs=50, num_queries=5, dim=8, seed=3)
    ckpt = write_precomputed_checkpoint(tmp_path / "ckpt", synthetic, noise=0.3)
    (tmp_path / "bus_enc.py").write_text(
        textwrap.dedent(
            f"""
            import faulthandler, mmap, os
            def encode(checkpoint, texts, kind):
                faulthandler.disable()
                path = {str(tmp_path / "mapped.bin")!r}
                with open(path, "wb") as f:
                    f.write(bytes(8192))
                with open(path, "r+b") as f:
                    view = mmap.mmap(f.fileno(), 8192)
                os.truncate(path, 0)
                view[4096]
            """
        )
    )
    job = Job(
        checkpoint=str(ckpt),
        encoder={"spec": "python:bus_enc:encode"},
        heldout=str(synthetic.path),
        split="test",
        relevance_level=1,
        ks=[1],
        similarity="cosine",
        shard_rows=1000,
    )
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    with pytest.raises(EvaluationError) as info:
        run_isolated(job, 120.0, threading.Event())
    assert info.value.reason == "crashed"
    assert "killed by SIGBUS" in info.value.message
    assert "corpus.npy truncated while it was read" in info.value.message
    assert "--retry-failed" in info.value.message
