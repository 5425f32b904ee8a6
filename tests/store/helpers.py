"""Helpers for the store tests: checkpoints and evaluations with fixed, readable values."""

from __future__ import annotations

import json
from pathlib import Path

from recallwatch.store import NewEvaluation, Store

#: The evaluation key of the checkpoints ``add`` records (held-out set "synth", config "k1").
KEY = json.dumps({"synth": "k1"})


def add(store: Store, run_id: int, step: int, *, fp: str | None = None) -> int:
    """Record ``checkpoint-<step>`` of run ``run_id`` (mined set ``fp``); its id."""
    cid = store.queue.add_checkpoint(
        run_id,
        name=f"checkpoint-{step}",
        path=f"/runs/a/checkpoint-{step}",
        step=step,
        eval_key=KEY,
        completed_at=float(step),
        now=1000.0 + step,
        mining_fingerprint=fp,
        mining_content=None if fp is None else json.dumps({"fp": fp}),
    )
    assert cid is not None
    return cid


def finished(cid: int, recall: float = 0.5, config_hash: str = "k1") -> NewEvaluation:
    """A finished evaluation of checkpoint ``cid`` on "synth" with recall@10 = ``recall``."""
    return NewEvaluation(
        checkpoint_id=cid,
        dataset="synth",
        encoder="precomputed",
        config_hash=config_hash,
        started_at=10.0,
        finished_at=12.0,
        metrics={"recall": {10: recall}},
        timings={"encode": 0.5, "search": 1.0, "metrics": 0.1},
        counts={"queries": 2},
        outcomes={"q1": {"d1": 3}, "q2": {"d2": 0, "d3": 11}},
    )


def fail(store: Store, cid: int, reason: str, message: str = "m", *, at: float = 1.0) -> None:
    """Record a failed evaluation of checkpoint ``cid`` on "synth" (config "k1") at ``at``."""
    store.results.record_failure(
        cid,
        dataset="synth",
        encoder="precomputed",
        config_hash="k1",
        started_at=at,
        finished_at=at + 1,
        reason=reason,
        message=message,
    )


def populate(path: Path, checkpoints: int = 600) -> Path:
    """A real store of one run with ``checkpoints`` evaluated checkpoints (several hundred KB)."""
    store = Store.open(path)
    try:
        store.db.query("PRAGMA synchronous = OFF")  # a fixture, not the daemon: speed over safety
        run_id = store.queue.ensure_run("a", "/runs/a", 1.0)
        for step in range(1, checkpoints + 1):
            store.results.record_evaluation(finished(add(store, run_id, step)), run_id)
    finally:
        store.close()
    return path
