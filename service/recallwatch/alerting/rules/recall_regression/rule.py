"""``recall_regression``: a significant drop of a metric at k against a baseline checkpoint.

For each held-out set and k of the rule, the checkpoint is compared with its baseline
(``segments.choose_baseline``: the best or last checkpoint before the latest mining change, or of
the same mining config, or a pinned one) by the level test (``level``), with the checkpoint
variance of the run's own segments, of other runs on the same held-out set
(``variance.PastVariance``, read from ``store.variance``: ``checkpoint_sd_history``) and the
rule's prior; every comparison is recorded as a verdict. A checkpoint waits while an earlier one
of its run is still being evaluated. A new alert fires when the last ``confirm`` verdicts against
that baseline are regressed (``confirmed``); an open one stays open until a checkpoint is clearly
not regressed (hysteresis, ``LevelVerdict.still_regressed``). An alert of an older baseline stays
open while the checkpoint is still regressed against that baseline.

A resolution carries what resolved it (``Resolution``): the checkpoint, its metric against the
same baseline as the firing evidence, and the test that says it is no longer regressed. This
module decides and reads the evidence; ``alerts`` writes the alert's texts, evidence and
resolution.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from recallwatch.alerting.early import confirmed_note, early_details, latest_confirmed
from recallwatch.alerting.holes import HoleTarget, audit_holes, queue_dir
from recallwatch.alerting.rules.base import (
    AlertRule,
    Decision,
    RuleConfig,
    RuleContext,
    VerdictWrite,
    by_step,
    register,
)
from recallwatch.alerting.rules.recall_regression.alerts import (
    ALERTNAMES,
    firing_alert,
    resolution_for,
    superseded_resolution,
)
from recallwatch.alerting.rules.recall_regression.level import (
    LevelPlan,
    LevelVerdict,
    decide_level,
    level_plan,
)
from recallwatch.alerting.rules.recall_regression.segments import (
    Baseline,
    CheckpointSummary,
    choose_baseline,
    mining_segments,
)
from recallwatch.alerting.rules.recall_regression.variance import PastVariance
from recallwatch.config import HeldoutConfig, RecallRegressionRule
from recallwatch.errors import RecallwatchError
from recallwatch.evaluation.outcomes import per_query_metric
from recallwatch.logs import fields
from recallwatch.mining.oracles import open_oracles
from recallwatch.records.alert import Alert, AlertKey
from recallwatch.stats.hierarchical import VarianceHistory
from recallwatch.store import AlertRecord, CheckpointRow

__all__ = ["RecallRegression", "confirmed", "verdict_kind"]

log = logging.getLogger(__name__)


def verdict_kind(rule: RecallRegressionRule, rules: Sequence[RuleConfig]) -> str:
    """The verdict ``kind`` a regression rule stores its verdicts under, among all ``rules``.

    The store keeps one verdict per (checkpoint, dataset, metric, k, kind) and the exporter reads
    the ``previous_mining`` one as the baseline gauge: the first rule of each comparison gets the
    plain kind, any further rule of the same comparison ``kind:rule-name``, so none overwrites
    another's verdicts.
    """
    kind = _comparison(rule)
    for other in rules:
        if other.name == rule.name:
            break
        if (
            isinstance(other, RecallRegressionRule)
            and other.metric == rule.metric
            and _comparison(other) == kind
        ):
            return f"{kind}:{rule.name}"
    return kind


def _comparison(rule: RecallRegressionRule) -> str:
    """What a regression rule compares with: ``pinned``, ``previous_mining``, ``same_mining``."""
    return "pinned" if rule.baseline_checkpoint else rule.compare_with


def confirmed(recent: Sequence[bool], confirm: int) -> bool:
    """Whether the last ``confirm`` verdicts (oldest first) are all regressions."""
    if confirm < 1:
        raise ValueError("confirm must be at least 1")
    return len(recent) >= confirm and all(recent[-confirm:])


@register
class RecallRegression(AlertRule[RecallRegressionRule]):
    """A significant drop of a metric at k against a baseline checkpoint."""

    type = "recall_regression"
    alertname = ALERTNAMES["mining_change"]

    @classmethod
    def alertnames(cls) -> frozenset[str]:
        """Every ``alertname`` of its alerts (one per regression kind)."""
        return frozenset(ALERTNAMES.values())

    def __init__(self, config: RecallRegressionRule, context: RuleContext) -> None:
        super().__init__(config, context)
        self.verdict_kind = verdict_kind(config, context.config.notifications.rules)
        self._past_variance = PastVariance(context.store, config.metric)

    def prepare(self, row: CheckpointRow) -> None:
        """Index the held-out texts an alert names (outside the decision lock)."""
        if row.state == "evaluated":
            self.context.evidence.texts.warm(h.path for h in self.context.config.heldout)

    def decide(self, row: CheckpointRow) -> list[Decision]:
        """One decision per held-out set and k (plus one per alert of an older baseline).

        None while an earlier checkpoint of the run is still being evaluated: decided now, the
        segments would lack it (a first post-change checkpoint that finishes before the last
        pre-change one would be tested against a pre level without it, and tested again, as a
        new comparison with a new baseline, once it is in: two chances at a false alarm per
        mining change). When the earlier one is evaluated the engine decides the run's newest
        checkpoint again; should it fail instead, the next checkpoint decides.
        """
        if self._waits_for_earlier(row):
            return []
        out: list[Decision] = []
        for heldout in self.context.config.heldout:
            for k in self.config.ks:
                out += self._decide_one(row, heldout, k)
        return out

    def _decide_one(self, row: CheckpointRow, heldout: HeldoutConfig, k: int) -> list[Decision]:
        rule, store = self.config, self.context.store
        dataset = heldout.dataset
        history, evaluations = self.history(row, dataset, k)
        current = next((c for c in history if c.id == row.id), None)
        if current is None or current.value is None:
            return []
        baseline = choose_baseline(
            history,
            current,
            compare_with=rule.compare_with,
            policy=rule.baseline,
            pinned=rule.baseline_checkpoint,
        )
        if baseline is None:
            return []
        base_row, base_eval = evaluations[baseline.checkpoint.id]
        _, cur_eval = evaluations[row.id]
        before_outcomes = store.results.outcomes(base_eval)
        after_outcomes = store.results.outcomes(cur_eval)
        after_values = per_query_metric(after_outcomes, rule.metric, k)
        # The level test (level.py): pre level against post level, with checkpoint
        # variance from the run's same-mining segments and the rule's prior.
        plan = level_plan(history, current, baseline)
        values = {
            c.id: per_query_metric(store.results.outcomes(evaluations[c.id][1]), rule.metric, k)
            for c in plan.checkpoints
            if c.id != row.id
        }
        values[row.id] = after_values
        history_moments = self.variance_history(row, dataset, k)
        verdict = decide_rule_level(rule, plan, values, history_moments)
        if verdict is None:
            return []
        record = VerdictWrite(
            row.id,
            dataset=dataset,
            metric=rule.metric,
            k=k,
            kind=self.verdict_kind,
            value=current.value,
            regressed=verdict.regressed,
            baseline_checkpoint_id=baseline.checkpoint.id,
            baseline_value=verdict.before.estimate,
            p_value=verdict.p_value,
            details={
                **verdict.as_dict(),
                "rule": rule.name,
                "baseline": baseline.checkpoint.name,
                "candidates": baseline.candidates,
                "pre": [c.name for c in plan.pre],
                "post": [c.name for c in plan.post],
                "rule_alpha": rule.alpha,
            },
        )
        key = AlertKey(rule.name, row.run, dataset, k, baseline.checkpoint.name)
        resolution = None
        if store.ledger.open_alert(key.as_string()) is not None:
            # Hysteresis: an open alert stays open until the checkpoint is clearly not regressed.
            firing = verdict.still_regressed(rule.resolve_alpha)
            if not firing:
                resolution = resolution_for(rule, row, base_row.name, dataset, k, verdict)
        else:
            flags = self._earlier_verdicts(row, history, dataset, k, baseline)
            firing = confirmed([*flags, verdict.regressed], rule.confirm)

        def build(aid: str) -> Alert:
            return self._alert(
                aid,
                row,
                key,
                heldout,
                baseline,
                base_row,
                verdict,
                before_outcomes,
                after_outcomes,
            )

        out = [
            self.decision(key, firing, row.name, build, row, verdict=record, resolution=resolution)
        ]
        for other in store.ledger.open_alerts(rule=rule.name, run=row.run):
            if other.key != key.as_string() and (other.alert.key.dataset, other.alert.key.k) == (
                dataset,
                k,
            ):
                out.append(self._against_old_baseline(row, other, key, history, evaluations))
        return out

    def _against_old_baseline(
        self,
        row: CheckpointRow,
        other: AlertRecord,
        key: AlertKey,
        history: Sequence[CheckpointSummary],
        evaluations: Mapping[int, tuple[CheckpointRow, int]],
    ) -> Decision:
        """Keep an alert of an older baseline open while ``row`` is still regressed against it."""
        rule = self.config
        old_key = other.alert.key
        superseded = f"superseded: the baseline is now {key.baseline}"
        old = next((c for c in history if c.name == old_key.baseline and c.id in evaluations), None)
        firing = False
        resolution = superseded_resolution(rule, row, old_key, superseded)
        current = next((c for c in history if c.id == row.id), None)
        if old is not None and current is not None:
            # The old baseline's level (its segment) against this checkpoint alone.
            plan = level_plan(history, current, Baseline(old, "pinned", "pinned", None))
            segment = next((s for s in mining_segments(history) if old in s), [old])
            plan = replace(plan, pre=tuple(c for c in segment if c.id in evaluations))
            values = {
                c.id: per_query_metric(
                    self.context.store.results.outcomes(evaluations[c.id][1]),
                    rule.metric,
                    old_key.k or 0,
                )
                for c in plan.checkpoints
            }
            moments = self.variance_history(row, old_key.dataset or "", old_key.k or 0)
            verdict = decide_rule_level(rule, plan, values, moments)
            if verdict is not None:
                firing = verdict.still_regressed(rule.resolve_alpha)
                resolution = resolution_for(
                    rule, row, old.name, old_key.dataset or "", old_key.k or 0, verdict, superseded
                )
        return self.decision(old_key, firing, row.name, None, row, resolution=resolution)

    def history(
        self, row: CheckpointRow, dataset: str, k: int
    ) -> tuple[list[CheckpointSummary], dict[int, tuple[CheckpointRow, int]]]:
        """The run's evaluated checkpoints (and ``row``) in step order, with the metric at k.

        Returns their summaries and, for those evaluated on ``dataset``, checkpoint id ->
        (row, evaluation id). An evaluation in another numeric precision than ``row``'s (bf16 vs
        fp32) is not comparable: it counts as not evaluated, so it is never a baseline.
        """
        context, metric = self.context, self.config.metric
        rows = context.store.queue.checkpoints(row.run, states=["evaluated"])
        if all(r.id != row.id for r in rows):
            rows.append(row)
        rows.sort(key=by_step)
        mine = next((e for e in context.current_evaluations(row.id) if e.dataset == dataset), None)
        precision = None if mine is None else mine.precision
        summaries: list[CheckpointSummary] = []
        evaluations: dict[int, tuple[CheckpointRow, int]] = {}
        for r in rows:
            ev = next((e for e in context.current_evaluations(r.id) if e.dataset == dataset), None)
            value = None
            if ev is not None and ev.precision == precision:
                value = ev.metrics.get(metric, {}).get(k)
                evaluations[r.id] = (r, ev.id)
            summaries.append(CheckpointSummary(r.id, r.name, r.step, r.mining_fingerprint, value))
        return summaries, evaluations

    def _waits_for_earlier(self, row: CheckpointRow) -> bool:
        """Whether a checkpoint of ``row``'s run with a lower step is being evaluated."""
        if row.step is None:
            return False
        running = self.context.store.queue.checkpoints(row.run, states=["evaluating"])
        return any(c.step is not None and c.step < row.step for c in running)

    def variance_history(self, row: CheckpointRow, dataset: str, k: int) -> VarianceHistory | None:
        """Checkpoint-variance moments of other runs on the same held-out set (None: none)."""
        rule = self.config
        evaluations = self.context.current_evaluations(row.id)
        mine = next((e for e in evaluations if e.dataset == dataset), None)
        if not rule.checkpoint_sd_history or mine is None:
            return None
        return self._past_variance.pooled(
            row.run, dataset, mine.config_hash, mine.precision, k, rule.checkpoint_sd_history_runs
        )

    def _earlier_verdicts(
        self,
        row: CheckpointRow,
        history: Sequence[CheckpointSummary],
        dataset: str,
        k: int,
        baseline: Baseline,
    ) -> list[bool]:
        """Stored verdicts of this rule, oldest first, over the current segment before ``row``."""
        segment = next(
            (s for s in reversed(mining_segments(history)) if any(c.id == row.id for c in s)),
            [c for c in history if c.id == row.id],
        )
        flags: list[bool] = []
        for c in segment:
            if c.id == row.id:
                break
            for v in self.context.store.ledger.verdicts(c.id):
                if (v.dataset, v.metric, v.k, v.kind) == (
                    dataset,
                    self.config.metric,
                    k,
                    self.verdict_kind,
                ) and v.baseline_checkpoint_id == baseline.checkpoint.id:
                    flags.append(bool(v.regressed))
        return flags

    def _alert(
        self,
        aid: str,
        row: CheckpointRow,
        key: AlertKey,
        heldout: HeldoutConfig,
        baseline: Baseline,
        base_row: CheckpointRow,
        verdict: LevelVerdict,
        before_outcomes: Mapping[str, Mapping[str, int]],
        after_outcomes: Mapping[str, Mapping[str, int]],
    ) -> Alert:
        """The alert document: its evidence read here, its texts from ``alerts``."""
        evidence_reader, store = self.context.evidence, self.context.store
        k = key.k or 0
        lost_count, lost_top = evidence_reader.lost_queries(
            heldout.path, before_outcomes, after_outcomes, k
        )
        made = firing_alert(
            self.config,
            row,
            heldout.dataset,
            k,
            baseline,
            base_row,
            verdict,
            lost_count=lost_count,
            lost_top=lost_top,
            mining_diff=evidence_reader.mining_diff(
                base_row.mining_fingerprint, row.mining_fingerprint
            ),
            fn_before=store.results.fn_estimate(base_row.id),
            fn_after=store.results.fn_estimate(row.id),
        )
        summary, description, evidence = made.summary, made.description, made.evidence
        holes = self._holes(row, base_row, heldout, k)
        if holes is not None:
            evidence = replace(evidence, details={**evidence.details, "holes": holes})
            description += f" Holes: {holes['summary']}."
            if holes.get("significant") is False:
                summary += "; not significant once the held-out holes are counted"
        early = latest_confirmed(store.early.for_checkpoint(row.id), heldout.dataset)
        if early is not None:
            # The early pass warned before this exact evaluation and it confirmed the warning.
            note = confirmed_note(early)
            evidence = replace(
                evidence,
                details={
                    **evidence.details,
                    "early_warning": {**early_details(early), "note": note},
                },
            )
            description += f" {note[:1].upper()}{note[1:]}."
        return self.new_alert(
            aid, key, row, summary, description, evidence, alertname=made.alertname
        )

    def _holes(
        self, row: CheckpointRow, base_row: CheckpointRow, heldout: HeldoutConfig, k: int
    ) -> dict[str, Any] | None:
        """The hole audit of this drop (``holes`` configured), for the evidence; a failed audit
        is reported there too (the alert is sent either way)."""
        config = self.context.config.holes
        if config is None:
            return None
        try:
            audit, version = audit_holes(
                self.context.store,
                HoleTarget(
                    row,
                    base_row,
                    heldout.dataset,
                    heldout.path,
                    heldout.split,
                    heldout.relevance_level,
                ),
                open_oracles(config.oracles),
                metric=self.config.metric,
                k=k,
                max_pairs=config.max_pairs,
                seed=config.seed,
                queue=queue_dir(self.context.store.path),
            )
        except (RecallwatchError, ValueError) as exc:
            log.warning(
                "hole audit failed: %s", exc, extra=fields(run=row.run, checkpoint=row.name)
            )
            return {"error": str(exc), "summary": f"the hole audit failed: {exc}"}
        return {**audit.as_dict(), "qrels_version": version, "oracles": list(config.oracles)}


def decide_rule_level(
    rule: RecallRegressionRule,
    plan: LevelPlan,
    values: Mapping[int, Mapping[str, float]],
    history: VarianceHistory | None,
) -> LevelVerdict | None:
    """The level test with the rule's alpha, effect floor and checkpoint-variance prior."""
    return decide_level(
        plan,
        values,
        alpha=rule.alpha,
        min_drop=rule.min_drop,
        resolve_alpha=rule.resolve_alpha,
        prior_sd=rule.checkpoint_sd,
        prior_df=rule.checkpoint_sd_weight,
        history=history,
    )
