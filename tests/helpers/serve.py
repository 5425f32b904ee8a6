"""``recallwatch serve`` as a real subprocess, and the small held-out set the daemon tests share.

The fixtures ``serve`` and ``synthetic`` are registered by the conftest of each test directory that
uses them (``from tests.helpers.serve import serve, synthetic``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recallwatch.synthetic.heldout import SyntheticSet, write_heldout
from tests.daemon.helpers import REPO, wait_for


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> SyntheticSet:
    """A 600-document, 60-query held-out set (BEIR layout), shared by the daemon tests."""
    return write_heldout(tmp_path_factory.mktemp("heldout"), num_docs=600, num_queries=60, seed=3)


class Serve:
    """``recallwatch serve`` as a real subprocess, logging JSON lines to a file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._offset = 0

    def start(self, *, wait: bool = True) -> Serve:
        """Start the daemon; with ``wait``, until it logs the URL it serves on."""
        # This checkout's package first (a shared venv may have another one installed).
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "service"), str(REPO)])}
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "recallwatch.cli",
                    "serve",
                    "--config",
                    str(self.config),
                    "--log-format",
                    "json",
                ],
                stdout=fh,
                stderr=fh,
                env=env,
                cwd=REPO,
            )
        if wait:
            self.url = wait_for(self._logged_url, timeout=30, what="the daemon to serve")
        return self

    def records(self) -> list[dict[str, Any]]:
        """The JSON log records of this start."""
        with self.log.open("rb") as fh:
            fh.seek(self._offset)
            lines = fh.read().decode("utf-8", errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def _logged_url(self) -> str | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"the daemon exited with {self.proc.returncode}:\n{self.output()}")
        for doc in self.records():
            if doc.get("message", "").endswith(" serving") and doc.get("url"):
                return str(doc["url"])
        return None

    def output(self) -> str:
        """Everything logged to this daemon's log file."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the daemon and wait for it to exit; return its exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """Make sure the process is gone (test teardown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[type[Serve]]:
    """A factory of ``Serve`` processes that are all killed at teardown."""
    started: list[Serve] = []

    class Tracked(Serve):
        def start(self, *, wait: bool = True) -> Serve:
            started.append(self)
            return super().start(wait=wait)

    yield Tracked
    for s in started:
        s.kill()
