"""The evaluation queue's policy: which queued checkpoints take the free evaluation slots.

``next_checkpoints`` picks up to ``slots`` of the ``discovered`` checkpoints not already running:

- ``oldest_first``: oldest first within a run (by step), round-robin across runs (in config
  order), never skipping one;
- ``latest_only``: only the newest of each run; the older ones are ``skipped`` (reason
  ``superseded``). A checkpoint queued again only to retry its audit (``audit_only``) is evaluated
  already and never superseded.

``skip`` is the one way a queued checkpoint leaves the queue without an evaluation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

from recallwatch.config import Config
from recallwatch.logs import fields
from recallwatch.store import CheckpointRow, Store

__all__ = ["next_checkpoints", "skip"]

#: The daemon's log: one logger name for its whole pipeline.
log = logging.getLogger("recallwatch.daemon")


def skip(store: Store, row: CheckpointRow, reason: str, message: str, now: float) -> None:
    """Mark a queued (or running) checkpoint ``skipped``; log it when this call did."""
    if store.queue.set_state(
        row.id, "skipped", now, reason=reason, message=message, expect=["discovered", "evaluating"]
    ):
        log.info(
            "skipped: %s",
            message,
            extra=fields(run=row.run, checkpoint=row.name, step=row.step, reason=reason),
        )


def next_checkpoints(
    config: Config,
    store: Store,
    slots: int,
    *,
    running: Collection[int],
    clock: Callable[[], float],
) -> list[CheckpointRow]:
    """Up to ``slots`` queued checkpoints to evaluate next (``running``: ids being evaluated)."""
    if slots <= 0:
        return []
    queues: list[list[CheckpointRow]] = []
    # Counts by state for every run in one read: only runs with queued checkpoints are queried.
    states = store.views.checkpoint_states()
    for run in config.runs:
        if not (run.name in states and states[run.name][1].get("discovered", 0)):
            continue
        pending = [
            r
            for r in store.queue.checkpoints(run.name, states=["discovered"])
            if r.id not in running
        ]
        if config.evaluation.policy == "latest_only":
            # An audit retry re-runs an evaluated checkpoint: never supersede it.
            retries = [r for r in pending if r.audit_only]
            fresh = [r for r in pending if not r.audit_only]
            for old in fresh[:-1]:
                skip(
                    store,
                    old,
                    "superseded",
                    "a newer checkpoint was queued (latest_only)",
                    clock(),
                )
            pending = retries + fresh[-1:]
        queues.append(pending)
    return _round_robin(queues, slots)


def _round_robin(queues: list[list[CheckpointRow]], slots: int) -> list[CheckpointRow]:
    """The first of each queue in turn, then the second of each ... up to ``slots``."""
    chosen: list[CheckpointRow] = []
    depth = 0
    while len(chosen) < slots and any(len(q) > depth for q in queues):
        chosen += [q[depth] for q in queues if len(q) > depth][: slots - len(chosen)]
        depth += 1
    return chosen
