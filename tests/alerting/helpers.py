"""Shared pieces of the alerting engine tests: a fake clock, configs, and runs in a real store."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from recallwatch.config import Config, parse_config
from recallwatch.daemon.discovery import canonical_json, fingerprint
from recallwatch.daemon.evaluation import dataset_key
from recallwatch.store import CheckpointRow, FnEstimate, Store
from recallwatch.synthetic.heldout import SyntheticSet
from tests.helpers.seed import add, fail, finished, record_evaluated

#: Queries of the synthetic held-out set the engine tests decide on.
QUERIES = 300
#: A filter recommendation as the FN estimator stores it.
REC = {
    "target": 0.05,
    "needed": True,
    "best": {
        "describe": "range_min=10",
        "dropped_fraction": 0.21,
        "projected": {"estimate": 0.038},
    },
    "options": [],
}
#: Two mining configs: a checkpoint under B after ones under A is a mining change.
A = {"range_min": 10, "mined_set": "a.jsonl"}
B = {"range_min": 0, "mined_set": "b.jsonl"}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def make_config(
    heldout: Path, rules: list[dict[str, Any]], repeat: float | None = 4 * 3600.0
) -> Config:
    """One run, one held-out set, an Alertmanager channel ``am`` that every rule sends to."""
    return parse_config(
        {
            "heldout": [{"name": "synth", "path": str(heldout)}],
            "runs": [{"name": "r", "directory": "/nonexistent"}],
            "evaluation": {"ks": [10]},
            "notifications": {
                "api_url": "http://rw.example",
                "repeat_interval_seconds": repeat,
                "channels": [{"name": "am", "type": "alertmanager", "url": "http://127.0.0.1:9"}],
                "rules": [{"channels": ["am"], **r} for r in rules],
            },
        }
    )


def reparse(config: Config, **notifications: Any) -> Config:
    """``config`` with some ``notifications`` settings replaced (validated again)."""
    doc = config.model_dump(mode="json")
    doc["notifications"].update(notifications)
    for key in ("store", "http"):
        doc.pop(key)
    doc["runs"][0] = {"name": "r", "directory": "/nonexistent"}
    return parse_config(doc)


class Run:
    """Checkpoints with chosen per-query hits written into a real store."""

    def __init__(
        self,
        store: Store,
        config: Config,
        synthetic: SyntheticSet,
        clock: Clock,
        *,
        name: str = "r",
    ) -> None:
        self.store, self.config, self.synthetic, self.clock = store, config, synthetic, clock
        self.run_id = store.queue.ensure_run(name, "/nonexistent", clock())
        self.key = dataset_key(config, config.runs[0], config.heldout[0])

    def add(
        self,
        step: int,
        mining: dict[str, Any] | None,
        hits: np.ndarray | None,
        *,
        fn: FnEstimate | None = None,
        precision: str | None = None,
        completed_ago: float = 0.0,
    ) -> CheckpointRow:
        """A checkpoint evaluated with ``hits`` per query (failed when None), one minute later.

        ``completed_ago``: how long before its discovery it was completed (backfill when long).
        """
        self.clock.now += 60
        cid = add(
            self.store,
            self.run_id,
            step,
            fp=None if mining is None else fingerprint(mining),
            mining_content=None if mining is None else canonical_json(mining),
            directory="/nonexistent",
            eval_key=json.dumps({"synth": self.key}),
            completed_at=self.clock() - completed_ago,
            now=self.clock(),
        )
        if hits is None:
            fail(
                self.store,
                cid,
                "bad_embeddings",
                "NaN in row 3",
                at=self.clock(),
                seconds=0.0,
                config_hash=self.key,
            )
        else:
            outcomes = {
                q: {next(iter(self.synthetic.qrels[q])): (1 if h else 0)}
                for q, h in zip(self.synthetic.query_ids, hits, strict=True)
            }
            evaluation = replace(
                finished(cid, float(np.mean(hits)), self.key),
                started_at=self.clock(),
                finished_at=self.clock(),
                timings={},
                counts={},
                outcomes=outcomes,
                precision=precision,
            )
            record_evaluated(self.store, self.run_id, evaluation, at=self.clock())
            if fn is not None:
                self.store.results.record_fn_estimate(
                    cid, None if mining is None else fingerprint(mining), "h", fn, self.clock()
                )
        return self.store.queue.checkpoint_by_id(cid)


def hits(n_miss: int, *, shift: int = 0) -> np.ndarray:
    """Per-query hits: every query hits but ``n_miss`` of them (from ``shift`` on)."""
    h = np.ones(QUERIES, dtype=bool)
    h[shift : shift + n_miss] = False
    return h


def outbox(store: Store) -> list[tuple[str, str, str]]:
    """Every outbox message as (event, channel, message id), oldest first."""
    rows = store.db.query("SELECT event, channel, message_id FROM outbox ORDER BY id")
    return [(r[0], r[1], r[2]) for r in rows]
