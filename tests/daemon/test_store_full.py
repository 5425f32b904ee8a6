"""A full store mid-evaluation: counted, not ready, recovered, no restart.

Two real faults: SQLite's own ``max_page_count`` (the ``store-max-pages`` failpoint: a real
SQLITE_FULL anywhere) and a real full filesystem (the store on a small tmpfs, filled by a file;
needs root to mount, which CI has: skipped with the reason where mounting is not permitted).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from recallwatch import failpoints
from recallwatch.synthetic.heldout import SyntheticSet, write_heldout
from tests.daemon.helpers import HOLD_ENCODER
from tests.daemon.test_faults import failures, in_state
from tests.helpers.processes import wait_for
from tests.helpers.runs import config_doc, mark_complete, write_checkpoint, write_config
from tests.helpers.serve import Serve


def readyz(api: httpx.Client) -> tuple[int, dict[str, object]]:
    """``/readyz``'s status and body."""
    r = api.get("/readyz")
    return r.status_code, r.json()


def ready_gauge(api: httpx.Client) -> str:
    """The ``recallwatch_ready`` sample line of ``/metrics``."""
    return next(
        line
        for line in api.get("/metrics").text.splitlines()
        if line.startswith("recallwatch_ready ")
    )


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> SyntheticSet:
    """Enough queries that a result's stored outcomes need new pages (a fresh store has room
    for a small one in pages it already has)."""
    return write_heldout(tmp_path_factory.mktemp("large"), num_docs=600, num_queries=3000, seed=3)


def test_a_full_store_mid_evaluation_is_counted_unready_and_recovers_without_restart(
    tmp_path: Path,
    serve: type[Serve],
    monkeypatch: pytest.MonkeyPatch,
    large: SyntheticSet,
) -> None:
    limit = tmp_path / "max-pages"
    limit.write_text("1000000")
    monkeypatch.setenv(failpoints.ENV, failpoints.STORE_MAX_PAGES)
    monkeypatch.setenv(failpoints.FILE_ENV, str(limit))
    synthetic = large
    run_dir = tmp_path / "run"
    ckpt = write_checkpoint(run_dir, 1, synthetic, complete=False)
    (ckpt / "hold").write_text("")
    mark_complete(ckpt, 1)
    config = write_config(
        tmp_path / "rw.yaml", config_doc(tmp_path, synthetic.path, run_dir, encoder=HOLD_ENCODER)
    )
    daemon = serve(config, tmp_path / "serve.log").start()
    with httpx.Client(base_url=daemon.url, timeout=10) as api:
        wait_for((ckpt / "started").exists, what="the evaluation to start")
        # The store is full from here: SQLite raises a limit below its size to its size.
        limit.write_text("1")
        (ckpt / "hold").unlink()
        _, body = wait_for(
            lambda: (s := readyz(api))[0] == 503 and s, what="/readyz to say not ready"
        )
        assert str(body["reason"]).startswith("store_unavailable: database or disk is full")
        assert body["checks"] == {
            "store": True,
            "store_writable": False,
            "scheduler": True,
            "recent_poll": True,
        }
        assert ready_gauge(api) == "recallwatch_ready 0.0"

        limit.write_text("1000000")
        done = wait_for(lambda: in_state(api, "checkpoint-1", "evaluated"), what="the re-run")
        wait_for(lambda: readyz(api)[0] == 200, what="/readyz to say ready again")
        assert ready_gauge(api) == "recallwatch_ready 1.0"
        assert failures(api.get("/metrics").text) == {"store_unavailable": 1.0}
    assert [e["status"] for e in done["history"]] == ["failed", "done"]
    logged = [r["message"] for r in daemon.records()]
    assert any(
        m.startswith("the store cannot be written: database or disk is full") for m in logged
    )
    assert "the store can be written again" in " ".join(logged)
    assert daemon.stop() == 0


@contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` mounted at ``where``; the test is skipped, saying why, where
    mounting is not permitted (not root, no ``mount``, a container without CAP_SYS_ADMIN)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a real full filesystem needs root and mount(8) to mount a small tmpfs")
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        # Lazily if a daemon left by a failed assertion still holds files there.
        if subprocess.run(["umount", str(where)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def fill(folder: Path) -> Path:
    """Write a file in ``folder`` until its filesystem has no space left; return it."""
    filler = folder / "filler"
    chunk = b"\0" * (64 * 1024)
    with filler.open("wb", buffering=0) as fh:
        try:
            while True:
                fh.write(chunk)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return filler


def test_a_real_full_filesystem_is_counted_unready_and_recovers_when_space_is_freed(
    tmp_path: Path, serve: type[Serve], large: SyntheticSet
) -> None:
    with small_tmpfs(tmp_path / "fs", "16m") as fs:
        run_dir = tmp_path / "run"
        ckpt = write_checkpoint(run_dir, 1, large, complete=False)
        (ckpt / "hold").write_text("")
        mark_complete(ckpt, 1)
        doc = config_doc(tmp_path, large.path, run_dir, encoder=HOLD_ENCODER)
        doc["store"] = {"path": str(fs / "state" / "recallwatch.db")}
        config = write_config(tmp_path / "rw.yaml", doc)
        daemon = serve(config, tmp_path / "serve.log").start()
        with httpx.Client(base_url=daemon.url, timeout=10) as api:
            wait_for((ckpt / "started").exists, what="the evaluation to start")
            filler = fill(fs)  # the disk is full from here
            (ckpt / "hold").unlink()
            _, body = wait_for(
                lambda: (s := readyz(api))[0] == 503 and s, what="/readyz to say not ready"
            )
            assert str(body["reason"]).startswith("store_unavailable: database or disk is full")
            assert ready_gauge(api) == "recallwatch_ready 0.0"
            assert in_state(api, "checkpoint-1", "evaluated") is None

            filler.unlink()  # space again: recovered without a restart
            done = wait_for(lambda: in_state(api, "checkpoint-1", "evaluated"), what="the re-run")
            wait_for(lambda: readyz(api)[0] == 200, what="/readyz to say ready again")
            assert ready_gauge(api) == "recallwatch_ready 1.0"
            assert failures(api.get("/metrics").text) == {"store_unavailable": 1.0}
        assert [e["status"] for e in done["history"]] == ["failed", "done"]
        assert daemon.stop() == 0
