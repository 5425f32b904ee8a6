"""Where checkpoint-to-checkpoint variance can be learned: other runs on the same held-out set.

The regression rule's level test needs the checkpoint-to-checkpoint variance of a run whose own
checkpoints say little about it (two before a mining change). Earlier runs evaluated on the same
held-out set do: each of their mining segments (consecutive checkpoints under one mining config)
is a group of same-configuration checkpoints. This module finds those evaluations; the rule
computes their per-query metric and moments (``alerting.rules.recall_regression.variance``,
``stats.hierarchical.Moments``) and hands the pooled moments to the pure decision.

Comparable means what ``RecallRegression.history`` requires of a baseline: the same held-out set
label (``dataset``), the same evaluation key (``config_hash``: held-out path, split, relevance
level, k list, similarity and encoder options) and the same numeric precision (``precision``;
``NULL`` matches ``NULL``). Only finished evaluations of checkpoints in state ``evaluated`` that
carry a mining fingerprint count (segments need one).
"""

from __future__ import annotations

from dataclasses import dataclass

from recallwatch.store.db import Database

__all__ = ["PastEvaluation", "VarianceSources"]


@dataclass(frozen=True)
class PastEvaluation:
    """One comparable evaluation of another run's checkpoint."""

    run: str
    checkpoint_id: int
    checkpoint: str
    step: int | None
    mining_fingerprint: str
    evaluation_id: int


# The runs with comparable evaluations, newest first (by their latest such evaluation), capped;
# then their evaluations in step order.
_SQL = """
WITH comparable AS (
    SELECT c.run_id, c.id AS checkpoint_id, c.name, c.step, c.mining_fingerprint,
           e.id AS evaluation_id, e.finished_at
    FROM evaluations e JOIN checkpoints c ON c.id = e.checkpoint_id
    WHERE e.status = 'done' AND e.dataset = ? AND e.config_hash = ? AND e.precision IS ?
      AND c.state = 'evaluated' AND c.mining_fingerprint IS NOT NULL
      AND c.run_id != (SELECT COALESCE(MAX(id), -1) FROM runs WHERE name = ?)
),
recent AS (
    SELECT run_id, MAX(finished_at) AS latest FROM comparable
    GROUP BY run_id ORDER BY latest DESC, run_id DESC LIMIT ?
)
SELECT r.name AS run, x.checkpoint_id, x.name, x.step, x.mining_fingerprint, x.evaluation_id
FROM comparable x JOIN recent USING (run_id) JOIN runs r ON r.id = x.run_id
ORDER BY recent.latest DESC, x.run_id DESC, x.step IS NULL, x.step, x.name
"""


class VarianceSources:
    """Read side of the evaluations of other runs on a held-out set (variance history)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def past_evaluations(
        self,
        *,
        dataset: str,
        config_hash: str,
        precision: str | None,
        exclude_run: str,
        max_runs: int,
    ) -> list[PastEvaluation]:
        """Comparable evaluations of up to ``max_runs`` runs other than ``exclude_run``.

        The runs are the ones with the most recent comparable evaluation; their evaluations
        come run by run (newest run first), each run's in step order.
        """
        if max_runs < 1:
            return []
        rows = self._db.query(_SQL, (dataset, config_hash, precision, exclude_run, max_runs))
        return [
            PastEvaluation(
                run=r["run"],
                checkpoint_id=r["checkpoint_id"],
                checkpoint=r["name"],
                step=r["step"],
                mining_fingerprint=r["mining_fingerprint"],
                evaluation_id=r["evaluation_id"],
            )
            for r in rows
        ]
