"""The early pass: a sound early warning from a pooled corpus, before the exact evaluation.

Before a checkpoint's exact evaluation on a held-out set, ``EarlyPass.before`` evaluates it on a
pool (every judged document of the evaluated queries, the previous exact evaluation's top
candidates, a seeded random fill; ``evaluation.pool``) in the same child process the exact pass
uses. Per query, recall@k on the pool is an upper bound on recall@k over the corpus, so when the
pooled recall falls significantly below the previous checkpoint's *exact* recall (one-sided paired
sign-flip test, ``alerting.rules.recall_regression.paired``: p <= alpha and a drop of at least
``min_drop``), the exact recall has fallen at least as far: the warning is raised at once
(``store.early``, a WARNING log line "early: recall@10 <= 0.71 against 0.78 exact before;
confirming…", ``recallwatch_early_warning``). The exact pass always follows;
``EarlyPass.after`` completes the early verdict with its value and the same test on exact values
(confirmed or cleared). The candidates are not stored apart: they come from the rankings stored
with the previous exact evaluation (``evaluation.stored_rankings``, ``store.results``), its top
``candidates_per_query`` documents per query, round-robin over queries, judged ones left out
(``evaluation.pool.top_candidates``, in the child that builds the pool); with rankings stored
shallower, or none (``stored_rankings: 0``), the pool uses what is stored.

The pass is skipped (never blocking the exact one) when it is disabled, when the corpus is
smaller than ``min_corpus_docs``, when there is no previous exact evaluation under the same key,
or when it fails (logged); docs/alerting.md, "Early warning".
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from recallwatch.alerting.rules.recall_regression.paired import (
    paired_regression_test,
    paired_values,
    permutations_for,
)
from recallwatch.config import EarlyConfig
from recallwatch.daemon.runner import EvaluationError, Job, Result, Runner
from recallwatch.evaluation.outcomes import per_query_metric
from recallwatch.logs import fields
from recallwatch.store import CheckpointRow, EarlyVerdict, NewEarlyVerdict, Store

__all__ = ["EarlyPass", "pool_size"]

log = logging.getLogger("recallwatch.daemon")


def pool_size(config: EarlyConfig, corpus_docs: int) -> int:
    """The pool's size for a corpus of ``corpus_docs`` (judged documents always enter on top)."""
    return min(config.max_pool_docs, math.ceil(config.pool_fraction * corpus_docs))


class EarlyPass:
    """Run the early pass before a checkpoint's exact evaluation, and complete it after."""

    def __init__(
        self, config: EarlyConfig, store: Store, runner: Runner, clock: Callable[[], float]
    ) -> None:
        self.config = config
        self.store = store
        self.runner = runner
        self.clock = clock

    def before(
        self,
        row: CheckpointRow,
        job: Job,
        dataset: str,
        key: str,
        timeout: float,
        cancel: threading.Event,
    ) -> EarlyVerdict | None:
        """Evaluate on the pool and record the early verdict; None when the pass does not run."""
        cfg = self.config
        if not cfg.enabled:
            return None
        done = self.store.early.get(row.id, dataset, key)
        if done is not None:
            return done  # a re-run after a restart: the verdict stands
        prev = self.store.early.previous_exact(row.id, dataset, key)
        if prev is None or prev.corpus_docs < cfg.min_corpus_docs:
            return None
        where = fields(run=row.run, checkpoint=row.name, step=row.step, dataset=dataset)
        per_query = cfg.candidates_per_query
        ranked = self.store.results.rankings(prev.evaluation_id) if per_query else {}
        pool = {
            "size": pool_size(cfg, prev.corpus_docs),
            "seed": cfg.seed,
            "per_query": per_query,
            # Only the ranks the candidates come from cross to the child.
            "rankings": {q: ids[:per_query] for q, ids in ranked.items()},
        }
        k = cfg.k if cfg.k is not None else min(10, max(job.ks))
        t0 = time.monotonic()
        try:
            result = self.runner(replace(job, pool=pool, stored_rankings=0), timeout, cancel)
        except EvaluationError as exc:
            log.warning("early pass failed: %s; the exact pass follows", exc.message, extra=where)
            return None
        seconds = time.monotonic() - t0
        verdict = self._decide(row, dataset, key, prev.evaluation_id, result, prev.corpus_docs, k)
        self.store.early.record(replace(verdict, seconds=seconds, created_at=self.clock()))
        stored = self.store.early.get(row.id, dataset, key)
        assert stored is not None
        where["fields"].update(
            early_upper_bound=round(stored.upper_bound, 4),
            baseline=round(stored.baseline, 4),
            p_value=stored.p_value,
            pool_docs=stored.pool_docs,
            seconds=round(seconds, 3),
        )
        if stored.warned:
            log.warning(stored.text, extra=where)
        else:
            log.info(stored.text, extra=where)
        return stored

    def _decide(
        self,
        row: CheckpointRow,
        dataset: str,
        key: str,
        baseline_id: int,
        result: Result,
        corpus_docs: int,
        k: int,
    ) -> NewEarlyVerdict:
        cfg = self.config
        before = per_query_metric(self.store.results.outcomes(baseline_id), cfg.metric, k)
        after = per_query_metric(result.outcomes, cfg.metric, k)
        test = _test(before, after, cfg)
        return NewEarlyVerdict(
            checkpoint_id=row.id,
            dataset=dataset,
            config_hash=key,
            baseline_evaluation_id=baseline_id,
            metric=cfg.metric,
            k=k,
            upper_bound=test[1],
            baseline=test[0],
            p_value=test[2],
            alpha=cfg.alpha,
            min_drop=cfg.min_drop,
            warned=test[3],
            pool_docs=int(result.counts.get("documents", 0)),
            corpus_docs=corpus_docs,
            seconds=0.0,
            created_at=0.0,
        )

    def after(self, row: CheckpointRow, dataset: str, key: str, result: Result) -> None:
        """Complete the checkpoint's early verdict with the exact evaluation, if any."""
        if not self.config.enabled:
            return
        early = self.store.early.get(row.id, dataset, key)
        if early is None or early.exact is not None:
            return
        # The early verdict's metric and k are the configured ones (``EarlyConfig``).
        outcomes = self.store.results.outcomes(early.baseline_evaluation_id)
        before = per_query_metric(outcomes, self.config.metric, early.k)
        after = per_query_metric(result.outcomes, self.config.metric, early.k)
        _, exact, p, regressed = _test(before, after, self.config)
        self.store.early.resolve(
            early.id, exact=exact, p_value=p, regressed=regressed, at=self.clock()
        )
        done = self.store.early.get(row.id, dataset, key)
        assert done is not None
        where = fields(run=row.run, checkpoint=row.name, step=row.step, dataset=dataset)
        where["fields"]["early_state"] = done.state
        (log.warning if done.state in ("confirmed", "missed") else log.info)(done.text, extra=where)


def _test(
    before: dict[str, float], after: dict[str, float], cfg: EarlyConfig
) -> tuple[float, float, float, bool]:
    """(baseline mean, new mean, p, warned) of the one-sided paired test on common queries."""
    _, b, a = paired_values(before, after)
    if b.size == 0:
        return 0.0, 0.0, 1.0, False
    verdict = paired_regression_test(
        b,
        a,
        min_drop=cfg.min_drop,
        alpha=cfg.alpha,
        permutations=permutations_for(cfg.alpha, 10_000),
        seed=cfg.seed,
    )
    return float(np.mean(b)), float(np.mean(a)), verdict.test.p_value, verdict.regressed
