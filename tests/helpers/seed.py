"""Seeding a store: checkpoints, their evaluations and failures, with fixed, readable values.

The one place the tests write checkpoints and evaluations through the store's API. A test that
needs other values passes them (``add``) or replaces fields of ``finished`` with
``dataclasses.replace``.
"""

from __future__ import annotations

import json
from pathlib import Path

from recallwatch.store import NewEvaluation, Store

#: The evaluation key of the checkpoints ``add`` records (held-out set "synth", config "k1").
KEY = json.dumps({"synth": "k1"})


def add(
    store: Store,
    run_id: int,
    step: int,
    *,
    fp: str | None = None,
    mining_content: str | None = None,
    name: str | None = None,
    path: str | None = None,
    directory: str = "/runs/a",
    eval_key: str = KEY,
    completed_at: float | None = None,
    now: float | None = None,
) -> int:
    """Record ``checkpoint-<step>`` of run ``run_id`` (mined set ``fp``); its id.

    By default the checkpoint lies in ``directory``, completed at ``step`` and was found at
    ``1000 + step``; a mined set ``fp`` comes with the mining config ``{"fp": fp}``.
    """
    name = f"checkpoint-{step}" if name is None else name
    if mining_content is None and fp is not None:
        mining_content = json.dumps({"fp": fp})
    cid = store.queue.add_checkpoint(
        run_id,
        name=name,
        path=f"{directory}/{name}" if path is None else path,
        step=step,
        eval_key=eval_key,
        completed_at=float(step) if completed_at is None else completed_at,
        now=1000.0 + step if now is None else now,
        mining_fingerprint=fp,
        mining_content=mining_content,
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


def record_evaluated(store: Store, run_id: int, evaluation: NewEvaluation, *, at: float) -> int:
    """Record ``evaluation`` and mark its checkpoint evaluated at ``at``; the evaluation's id."""
    eid = store.results.record_evaluation(evaluation, run_id)
    store.queue.set_state(evaluation.checkpoint_id, "evaluated", at)
    return eid


def fail(
    store: Store,
    cid: int,
    reason: str,
    message: str = "m",
    *,
    at: float = 1.0,
    seconds: float = 1.0,
    config_hash: str = "k1",
) -> None:
    """Record a failed evaluation of checkpoint ``cid`` on "synth" that started at ``at``."""
    store.results.record_failure(
        cid,
        dataset="synth",
        encoder="precomputed",
        config_hash=config_hash,
        started_at=at,
        finished_at=at + seconds,
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
