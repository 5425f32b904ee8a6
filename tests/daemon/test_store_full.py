"""A full store (a real SQLITE_FULL) mid-evaluation: counted, not ready, recovered, no restart."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from recallwatch import failpoints
from recallwatch.synthetic.heldout import write_heldout
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


def test_a_full_store_mid_evaluation_is_counted_unready_and_recovers_without_restart(
    tmp_path: Path,
    serve: type[Serve],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limit = tmp_path / "max-pages"
    limit.write_text("1000000")
    monkeypatch.setenv(failpoints.ENV, failpoints.STORE_MAX_PAGES)
    monkeypatch.setenv(failpoints.FILE_ENV, str(limit))
    # Enough queries that the result's stored outcomes need new pages (a fresh store has room
    # for a small one in pages it already has).
    synthetic = write_heldout(tmp_path / "heldout", num_docs=600, num_queries=3000, seed=3)
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
