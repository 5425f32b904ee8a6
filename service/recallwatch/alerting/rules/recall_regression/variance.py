"""The checkpoint-variance history: how much other runs' checkpoints on a held-out set differ.

The level test (``level``) needs the checkpoint-to-checkpoint variance; besides the run's own
segments and the rule's prior, it pools the segments of the most recent other runs evaluated on
the same held-out set (``checkpoint_sd_history``). The store finds their comparable evaluations
(``store.variance``: the SQL); this module turns them into moments, once per segment, and the
climbs of their segments of 4 or more checkpoints (``trend.climb_moments``: the prior of a
climbing run's forecast).
"""

from __future__ import annotations

import itertools

from recallwatch.alerting.rules.recall_regression.level import aligned_values
from recallwatch.alerting.rules.recall_regression.segments import (
    CheckpointSummary,
    mining_segments,
)
from recallwatch.alerting.rules.recall_regression.trend import (
    MIN_TREND_CHECKPOINTS,
    climb_moments,
)
from recallwatch.evaluation.outcomes import Metric, per_query_metric
from recallwatch.stats.hierarchical import Moments, VarianceHistory
from recallwatch.store import Store

__all__ = ["PastVariance"]

#: Segments whose checkpoint-variance moments a rule keeps (stored evaluations never change).
_MOMENTS_CACHE = 4_096


class PastVariance:
    """Checkpoint-variance moments of other runs on a held-out set, for ``VarianceHistory``.

    Comparable evaluations (``store.variance``: the same dataset, evaluation key and precision)
    of the most recent other runs, split into mining segments; each segment of two or more
    checkpoints adds its moments (its J - 1 degrees of freedom), computed once per segment and
    k: stored evaluations never change.
    """

    def __init__(self, store: Store, metric: Metric) -> None:
        self.store, self.metric = store, metric
        #: (evaluation ids of a segment, k) -> its checkpoint-variance moments and climb.
        self._moments: dict[
            tuple[tuple[int, ...], int], tuple[Moments, tuple[float, float] | None]
        ] = {}

    def pooled(
        self,
        run: str,
        dataset: str,
        config_hash: str,
        precision: str | None,
        k: int,
        max_runs: int,
    ) -> VarianceHistory | None:
        """The pooled moments of up to ``max_runs`` runs other than ``run`` (None: no df)."""
        past = self.store.variance.past_evaluations(
            dataset=dataset,
            config_hash=config_hash,
            precision=precision,
            exclude_run=run,
            max_runs=max_runs,
        )
        total, runs = Moments(), 0
        climbs: list[tuple[float, float]] = []
        for _, group in itertools.groupby(past, key=lambda p: p.run):
            evaluations = list(group)
            by_id = {p.checkpoint_id: p.evaluation_id for p in evaluations}
            summaries = [
                CheckpointSummary(p.checkpoint_id, p.checkpoint, p.step, p.mining_fingerprint, 0.0)
                for p in evaluations
            ]
            run_moments = Moments()
            for segment in mining_segments(summaries):
                if len(segment) >= 2:
                    moments, climb = self._segment(tuple(by_id[c.id] for c in segment), k)
                    run_moments += moments
                    if climb is not None:
                        climbs.append(climb)
            if run_moments.df:
                total, runs = total + run_moments, runs + 1
        return VarianceHistory(total, runs, tuple(climbs)) if total.df else None

    def _segment(
        self, evaluation_ids: tuple[int, ...], k: int
    ) -> tuple[Moments, tuple[float, float] | None]:
        """The moments and climb (None: too short) of one segment of stored evaluations
        (cached)."""
        key = (evaluation_ids, k)
        cached = self._moments.get(key)
        if cached is None:
            outcomes = self.store.results.outcomes
            values = aligned_values(
                [per_query_metric(outcomes(e), self.metric, k) for e in evaluation_ids]
            )
            climb = None
            if values.shape[1] >= 2 and len(values) >= MIN_TREND_CHECKPOINTS:
                slope, variance = climb_moments(values.mean(axis=1))
                climb = (float(slope), float(variance))
            cached = (Moments.of(values) if values.shape[1] >= 2 else Moments(), climb)
            if len(self._moments) >= _MOMENTS_CACHE:
                self._moments.clear()
            self._moments[key] = cached
        return cached
