"""Helpers for the daemon tests: an in-process daemon with a test clock, runners that hold
evaluations until released, and an encoder that holds or crashes on demand."""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path
from typing import Any

from recallwatch.config import Config, parse_config
from recallwatch.daemon import Daemon
from recallwatch.daemon.runner import Job, Result, run_in_process, run_isolated
from recallwatch.store import Store
from recallwatch.synthetic.heldout import SyntheticSet
from tests.helpers.processes import REPO
from tests.helpers.runs import config_doc

#: A ``python:`` encoder that holds (``hold`` file) or crashes (``crash`` file) on demand.
HOLD_ENCODER = "python:tests.daemon.encoders:encode"
#: ``run_isolated`` whose child process imports this checkout's package (not an installed one,
#: as ``serve`` runs it) and can import the test encoders.
isolated = functools.partial(
    run_isolated,
    env={**os.environ, "PYTHONPATH": os.pathsep.join((str(REPO / "service"), str(REPO)))},
)


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
