"""Helpers for the daemon tests: checkpoints on disk, configs, polling with a deadline, and an
in-process daemon with a test clock and runners that hold evaluations until released."""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import yaml

from recallwatch.config import Config, parse_config
from recallwatch.daemon import Daemon
from recallwatch.daemon.runner import Job, Result, run_in_process, run_isolated
from recallwatch.store import Store
from recallwatch.synthetic.heldout import SyntheticSet, write_precomputed_checkpoint

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
#: A ``python:`` encoder that holds (``hold`` file) or crashes (``crash`` file) on demand.
HOLD_ENCODER = "python:tests.daemon.encoders:encode"
#: ``run_isolated`` whose child process can import the test encoders.
isolated = functools.partial(run_isolated, env={**os.environ, "PYTHONPATH": str(REPO)})


def wait_for(
    probe: Callable[[], T | None], *, timeout: float = 30.0, interval: float = 0.05, what: str = ""
) -> T:
    """Call ``probe`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except Exception as exc:  # the thing we wait for may not answer yet
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or probe}: {last_error!r}")


def stop_processes(procs: list[subprocess.Popen[bytes]]) -> None:
    """Terminate server processes a test started; kill any that do not stop within 15 s."""
    for p in procs:
        p.terminate()
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def free_port() -> int:
    """A free loopback port (for servers that cannot bind port 0 themselves)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_checkpoint(
    run_dir: Path,
    step: int,
    synthetic: SyntheticSet,
    *,
    noise: float = 0.6,
    complete: bool = True,
    mining: dict[str, Any] | None = None,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write ``checkpoint-<step>`` with precomputed embeddings; ``complete`` writes the marker."""
    ckpt = write_precomputed_checkpoint(
        run_dir / f"checkpoint-{step}", synthetic, noise=noise, seed=step
    )
    if mining is not None:
        (ckpt / "mining.json").write_text(json.dumps(mining), encoding="utf-8")
    for name, text in (extra_files or {}).items():
        (ckpt / name).write_text(text, encoding="utf-8")
    if complete:
        mark_complete(ckpt, step)
    return ckpt


def mark_complete(ckpt: Path, step: int) -> None:
    """Write the ready marker the trainer writes last."""
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}), encoding="utf-8")


def half_written(run_dir: Path, step: int, synthetic: SyntheticSet) -> Path:
    """A checkpoint the trainer is still writing: query embeddings only, no ready marker."""
    ckpt = run_dir / f"checkpoint-{step}" / "eval_embeddings"
    ckpt.mkdir(parents=True)
    np.save(ckpt / "queries.npy", np.zeros((3, 4), dtype=np.float32))
    return ckpt.parent


def age(path: Path, seconds: float) -> None:
    """Move every modification time under ``path`` ``seconds`` into the past."""
    for p in [path, *path.rglob("*")]:
        st = p.stat()
        os.utime(p, (st.st_atime - seconds, st.st_mtime - seconds), follow_symlinks=False)


def config_doc(
    tmp: Path, heldout: Path, run_dir: Path, *, encoder: str = "precomputed", **sections: Any
) -> dict[str, Any]:
    """A small config document: one held-out set, one run, fast polling."""
    doc: dict[str, Any] = {
        "store": {"path": str(tmp / "state" / "recallwatch.db")},
        "http": {"listen": "127.0.0.1:0"},
        "poll_interval_seconds": 0.2,
        "evaluation": {"encoder": encoder, "ks": [1, 10, 100], "timeout_seconds": 120},
        "heldout": [{"name": "synth", "path": str(heldout)}],
        "runs": [{"name": "demo", "directory": str(run_dir), "settle_seconds": 0.3}],
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return doc


def write_config(path: Path, doc: dict[str, Any]) -> Path:
    """Write a config document as YAML."""
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


class Clock:
    """A wall clock the test moves."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Gate:
    """A runner that blocks each evaluation until released, counting how many run at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.active = 0
        self.most = 0
        self.order: list[str] = []

    def __call__(self, job: Job, timeout: float, cancel: threading.Event) -> Result:
        with self.lock:
            self.active += 1
            self.most = max(self.most, self.active)
            self.order.append(Path(job.checkpoint).name)
        try:
            assert self.release.wait(30), "the test never released the gate"
            return run_in_process(job, timeout, cancel)
        finally:
            with self.lock:
                self.active -= 1


def make_config(tmp_path: Path, synthetic: SyntheticSet, **sections: Any) -> Config:
    """A config over ``tmp_path/run`` (and any extra runs in ``sections``)."""
    return parse_config(config_doc(tmp_path, synthetic.path, tmp_path / "run", **sections))


def daemon(config: Config, store: Store, **kwargs: Any) -> Daemon:
    """A prepared daemon whose clock is well past every checkpoint's settling time."""
    kwargs.setdefault("runner", run_in_process)
    kwargs.setdefault("clock", Clock(1e10))
    d = Daemon(config, store, **kwargs)
    d.prepare()
    return d


def poll_until_idle(d: Daemon) -> None:
    """Poll once and wait until every evaluation it started (and their follow-ups) finished."""
    d.poll()
    assert d.wait_idle(60)


def states(store: Store, run: str = "demo") -> dict[str, str]:
    """Checkpoint name -> state, of one run."""
    return {c.name: c.state for c in store.queue.checkpoints(run)}


def fn_section(run: Path, **extra: Any) -> dict[str, Any]:
    """A false_negatives section auditing with the simulated set's dense qrels."""
    return {"corpus": str(run / "corpus"), "oracles": [f"qrels:{run / 'audit.tsv'}"], **extra}
