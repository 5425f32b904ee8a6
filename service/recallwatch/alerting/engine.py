"""From stored evaluations to alerts in the outbox: the daemon's decision step.

After each checkpoint is evaluated (or fails), ``Alerting.after_checkpoint`` runs every rule that
applies to its run, using the pure functions of ``regression``: it gathers the run's history
from the store, records each regression verdict, and turns each rule's "firing or not" into an
alert transition (fire / repeat / resolve, see ``alerts.transition``). The alert's new state and
one outbox message per channel are written **in one transaction** before anything is sent, so a
crash loses no decided notification; a re-run of the same decision (a checkpoint re-queued by a
crash) finds the same alert and message ids and writes nothing twice.

``tick`` runs periodically: the no-recent-evaluation rule, repeat notifications of long-firing
alerts, and the Alertmanager re-sends that keep firing alerts alive there.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from recallwatch.alerting.model import (
    ALERTNAMES,
    Alert,
    AlertKey,
    BaselineRef,
    Event,
    Evidence,
    FnSnapshot,
    LostQueryRef,
    MetricChange,
    MiningKeyChange,
    OpenEpisode,
    alert_id,
    links_for,
    message_id,
    recommendation_text,
    transition,
)
from recallwatch.alerting.regression import (
    Baseline,
    CheckpointSummary,
    RegressionVerdict,
    amplification_high,
    below_floor,
    choose_baseline,
    confirmed,
    evaluation_stale,
    failing_streak,
    fn_rate_high,
    lost_queries,
    mining_diff,
    mining_segments,
    paired_values,
    per_query_metric,
    permutations_for,
    selection_alpha,
    still_regressed,
    test_regression,
)
from recallwatch.config import (
    AlertmanagerChannel,
    AmplificationRule,
    Config,
    EvaluationFailingRule,
    FalseNegativeRateRule,
    HeldoutConfig,
    NoRecentEvaluationRule,
    RecallFloorRule,
    RecallRegressionRule,
    Rule,
)
from recallwatch.evaluation.heldout import read_jsonl_objects
from recallwatch.logs import fields
from recallwatch.notify.channels import ChannelConfig, render, target_for
from recallwatch.notify.delivery import Dispatcher, RetryPolicy
from recallwatch.store import (
    AlertRecord,
    AlertWrite,
    CheckpointRow,
    EvaluationRow,
    FnEstimate,
    NewMessage,
    Store,
)

__all__ = ["Alerting", "Decision", "Notifier"]

log = logging.getLogger(__name__)

#: How many lost queries an alert names (all are counted).
LOST_TOP = 5
#: Test hook: ``RECALLWATCH_FAILPOINT=after-decision`` makes the daemon SIGKILL itself right after
#: a decision is committed and before anything is sent (the crash the outbox exists for).
FAILPOINT_ENV = "RECALLWATCH_FAILPOINT"
#: Held-out files larger than this are not indexed: an alert streams its few texts from them.
TEXT_INDEX_MAX_BYTES = 128 * 1024 * 1024
#: The held-out files an alert takes texts from, and the field it takes.
_TEXT_FILES = (("queries.jsonl", "text"), ("corpus.jsonl", "title"))


@dataclass(frozen=True)
class Decision:
    """One rule's answer for one key: firing or not, and how to build the alert if it fires."""

    rule: Rule
    key: AlertKey
    firing: bool
    #: What opens the episode when it fires (a checkpoint name, or a time for time-based rules).
    opened_by: str
    build: Callable[[str], Alert] | None
    #: The checkpoint that made this decision (a resolution names it).
    checkpoint: CheckpointRow | None = None
    #: Added to the description of the alert when this decision resolves it.
    note: str | None = None


class Alerting:
    """Run the notification rules over the store and enqueue what they decide."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.wake = wake
        #: A still-firing alert is notified again this often (Alertmanager repeats by itself).
        self.repeat_interval = config.notifications.repeat_interval_seconds
        self.started_at = clock()
        # Decisions read, decide and write: two at once (concurrent evaluations, the periodic
        # tick) could both open the same key. One at a time.
        self._lock = threading.Lock()
        self._evaluations: dict[int, list[EvaluationRow]] = {}
        self._channels: dict[str, ChannelConfig] = {
            c.name: c for c in config.notifications.channels
        }
        self._last_resend: dict[str, float] = {}
        self._verdict_kinds = _verdict_kinds(config.notifications.rules)
        self.texts = TextIndex()

    # -- entry points ---------------------------------------------------------------------------

    def rules_for(self, run: str) -> list[Rule]:
        """The rules that apply to a run."""
        return [r for r in self.config.notifications.rules if not r.runs or run in r.runs]

    def after_checkpoint(self, row: CheckpointRow) -> None:
        """Decide every rule for a checkpoint that was just evaluated (or failed)."""
        if row.state == "evaluated" and any(
            isinstance(r, RecallRegressionRule) for r in self.rules_for(row.run)
        ):
            # Outside the decision lock: reading a corpus must not hold up other decisions.
            self.texts.warm(h.path for h in self.config.heldout)
        with self._lock:
            self._evaluations.clear()  # a per-decision cache of stored evaluations
            decisions = self._decide_rules(row)
            newest = self._newest_evaluated(row)
            if row.state == "evaluated" and newest is not None and newest.id != row.id:
                # An older checkpoint finished late (concurrency, a re-queued failure, a
                # re-evaluation): its verdicts are recorded above, but alerts follow the run's
                # newest evaluated checkpoint, so that one decides again (with the late verdict).
                decisions = [d for d in decisions if isinstance(d.rule, EvaluationFailingRule)]
                decisions += [
                    d
                    for d in self._decide_rules(newest)
                    if not isinstance(d.rule, EvaluationFailingRule)
                ]
            self._apply(decisions)

    def _decide_rules(self, row: CheckpointRow) -> list[Decision]:
        decisions: list[Decision] = []
        for rule in self.rules_for(row.run):
            try:
                decisions += self._decide(rule, row)
            except Exception:  # one broken rule must not silence the others
                log.exception(
                    "alert rule failed",
                    extra=fields(rule=rule.name, run=row.run, checkpoint=row.name),
                )
        return decisions

    def _newest_evaluated(self, row: CheckpointRow) -> CheckpointRow | None:
        """The run's evaluated checkpoint with the highest step (``row`` included if evaluated)."""
        rows = self.store.queue.checkpoints(row.run, states=["evaluated"])
        if row.state == "evaluated" and all(r.id != row.id for r in rows):
            rows.append(row)
        return max(rows, key=_by_step, default=None)

    def tick(self) -> None:
        """Periodic work: stale-run rule, repeats of firing alerts, Alertmanager re-sends."""
        with self._lock:
            now = self.clock()
            decisions: list[Decision] = []
            last = self.store.views.last_success_by_run()
            for run in self.config.runs:
                for rule in self.rules_for(run.name):
                    if isinstance(rule, NoRecentEvaluationRule):
                        decisions.append(self._stale(rule, run.name, last.get(run.name), now))
            self._apply(decisions)
            self._repeat_open(now)
            self._resend_to_alertmanager(now)

    # -- the rules ------------------------------------------------------------------------------

    def _decide(self, rule: Rule, row: CheckpointRow) -> list[Decision]:
        if isinstance(rule, EvaluationFailingRule):
            return [self._failing(rule, row)]
        if row.state == "failed":
            return []
        if isinstance(rule, RecallRegressionRule):
            return self._regressions(rule, row)
        if isinstance(rule, FalseNegativeRateRule | AmplificationRule):
            return self._false_negatives(rule, row)
        if isinstance(rule, RecallFloorRule):
            return self._floor(rule, row)
        return []

    def _history(
        self, row: CheckpointRow, dataset: str, metric: str, k: int
    ) -> tuple[list[CheckpointSummary], dict[int, tuple[CheckpointRow, int]]]:
        """The run's evaluated checkpoints (and ``row``) with the metric, and their evaluations."""
        rows = self.store.queue.checkpoints(row.run, states=["evaluated"])
        if all(r.id != row.id for r in rows):
            rows.append(row)
        rows.sort(key=_by_step)
        summaries: list[CheckpointSummary] = []
        evaluations: dict[int, tuple[CheckpointRow, int]] = {}
        for r in rows:
            ev = next((e for e in self._current_evaluations(r.id) if e.dataset == dataset), None)
            value = None
            if ev is not None:
                value = ev.metrics.get(metric, {}).get(str(k))
                evaluations[r.id] = (r, ev.id)
            summaries.append(CheckpointSummary(r.id, r.name, r.step, r.mining_fingerprint, value))
        return summaries, evaluations

    def _current_evaluations(self, checkpoint_id: int) -> list[EvaluationRow]:
        cached = self._evaluations.get(checkpoint_id)
        if cached is None:
            cached = self._evaluations[checkpoint_id] = self.store.results.current_evaluations(
                checkpoint_id
            )
        return cached

    def _regressions(self, rule: RecallRegressionRule, row: CheckpointRow) -> list[Decision]:
        out: list[Decision] = []
        for heldout in self.config.heldout:
            for k in rule.ks:
                out += self._regression(rule, row, heldout, k)
        return out

    def _regression(
        self, rule: RecallRegressionRule, row: CheckpointRow, heldout: HeldoutConfig, k: int
    ) -> list[Decision]:
        dataset = heldout.dataset
        history, evaluations = self._history(row, dataset, rule.metric, k)
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
        before_outcomes = self.store.results.outcomes(base_eval)
        after_outcomes = self.store.results.outcomes(cur_eval)
        after_values = per_query_metric(after_outcomes, rule.metric, k)
        _, before, after = paired_values(
            per_query_metric(before_outcomes, rule.metric, k), after_values
        )
        if before.size == 0:
            return []
        # The best of m checkpoints is biased upwards: test at alpha / m (regression.py).
        alpha = selection_alpha(rule.alpha, baseline.candidates)
        verdict = test_regression(
            before,
            after,
            min_drop=rule.min_drop,
            alpha=alpha,
            permutations=permutations_for(alpha, rule.permutations),
            seed=rule.seed,
        )
        now = self.clock()
        self.store.ledger.record_verdict(
            row.id,
            dataset=dataset,
            metric=rule.metric,
            k=k,
            kind=self._verdict_kinds[rule.name],
            value=verdict.after.estimate,
            regressed=verdict.regressed,
            now=now,
            baseline_checkpoint_id=baseline.checkpoint.id,
            baseline_value=verdict.before.estimate,
            p_value=verdict.test.p_value,
            details={
                **verdict.as_dict(),
                "rule": rule.name,
                "baseline": baseline.checkpoint.name,
                "candidates": baseline.candidates,
                "rule_alpha": rule.alpha,
            },
        )
        key = AlertKey(rule.name, row.run, dataset, k, baseline.checkpoint.name)
        if self.store.ledger.open_alert(key.as_string()) is not None:
            # Hysteresis: an open alert stays open until the checkpoint is clearly not regressed.
            firing = still_regressed(verdict, rule.resolve_alpha)
        else:
            flags = self._recent_verdicts(rule, row, history, dataset, k, baseline)
            firing = confirmed(flags, rule.confirm)

        def build(aid: str) -> Alert:
            return self._regression_alert(
                aid,
                rule,
                row,
                key,
                heldout,
                baseline,
                base_row,
                verdict,
                before_outcomes,
                after_outcomes,
            )

        out = [Decision(rule, key, firing, row.name, build, row)]
        for other in self.store.ledger.open_alerts(rule=rule.name, run=row.run):
            if other.key != key.as_string() and (other.alert.key.dataset, other.alert.key.k) == (
                dataset,
                k,
            ):
                out.append(
                    self._against_old_baseline(
                        rule, row, other, key, history, evaluations, after_values
                    )
                )
        return out

    def _against_old_baseline(
        self,
        rule: RecallRegressionRule,
        row: CheckpointRow,
        other: AlertRecord,
        key: AlertKey,
        history: Sequence[CheckpointSummary],
        evaluations: Mapping[int, tuple[CheckpointRow, int]],
        after_values: Mapping[str, float],
    ) -> Decision:
        """Keep an alert of an older baseline open while ``row`` is still regressed against it."""
        old_key = other.alert.key
        note = f"superseded: the baseline is now {key.baseline}"
        old = next((c for c in history if c.name == old_key.baseline and c.id in evaluations), None)
        firing = False
        if old is not None:
            before_values = per_query_metric(
                self.store.results.outcomes(evaluations[old.id][1]), rule.metric, old_key.k or 0
            )
            _, before, after = paired_values(before_values, after_values)
            if before.size:
                verdict = test_regression(
                    before,
                    after,
                    min_drop=rule.min_drop,
                    alpha=rule.alpha,
                    permutations=rule.permutations,
                    seed=rule.seed,
                )
                firing = still_regressed(verdict, rule.resolve_alpha)
                note += f"; {row.name} is no longer regressed against {old.name}"
        return Decision(rule, old_key, firing, row.name, None, row, note=note)

    def _recent_verdicts(
        self,
        rule: RecallRegressionRule,
        row: CheckpointRow,
        history: Sequence[CheckpointSummary],
        dataset: str,
        k: int,
        baseline: Baseline,
    ) -> list[bool]:
        """Verdicts of this rule, oldest first, over the current segment up to ``row``."""
        segment = next(
            (s for s in reversed(mining_segments(history)) if any(c.id == row.id for c in s)),
            [c for c in history if c.id == row.id],
        )
        flags: list[bool] = []
        for c in segment:
            for v in self.store.ledger.verdicts(c.id):
                if (v["dataset"], v["metric"], v["k"], v["kind"]) == (
                    dataset,
                    rule.metric,
                    k,
                    self._verdict_kinds[rule.name],
                ) and v["baseline_checkpoint_id"] == baseline.checkpoint.id:
                    flags.append(bool(v["regressed"]))
            if c.id == row.id:
                break
        return flags

    def _false_negatives(
        self, rule: FalseNegativeRateRule | AmplificationRule, row: CheckpointRow
    ) -> list[Decision]:
        est = self.store.results.fn_estimate(row.id)
        if est is None:
            return []
        if isinstance(rule, FalseNegativeRateRule):
            firing = fn_rate_high(est.lower, rule.threshold)
            what = (
                f"false-negative rate of the mined set {est.estimate:.1%} "
                f"[{est.lower:.1%}, {est.upper:.1%}]: lower bound above {rule.threshold:.0%}"
            )
        else:
            firing = amplification_high(est.amplification, rule.threshold)
            amp = "unknown" if est.amplification is None else f"{est.amplification:.1f}x"
            what = f"label-noise amplification {amp} (threshold {rule.threshold:g}x)"
        key = AlertKey(rule.name, row.run)

        def build(aid: str) -> Alert:
            previous = self._previous_mining_estimate(row)
            evidence = Evidence(
                fn_before=None if previous is None else _snapshot(previous),
                fn_after=_snapshot(est),
                mining_diff=self._mining_diff_before(row),
                recommendation=recommendation_text(_recommendation(est)),
                details={"threshold": rule.threshold, "oracle": est.oracle},
            )
            return self._alert(
                aid, rule, key, row, f"{what} ({row.run}, {row.name})", what, evidence
            )

        return [Decision(rule, key, firing, row.name, build, row)]

    def _floor(self, rule: RecallFloorRule, row: CheckpointRow) -> list[Decision]:
        out = []
        for ev in self.store.results.current_evaluations(row.id):
            value = ev.metrics.get(rule.metric, {}).get(str(rule.k))
            if value is None:
                continue
            key = AlertKey(rule.name, row.run, ev.dataset, rule.k)
            what = (
                f"{rule.metric}@{rule.k} on {ev.dataset} is {value:.4f}, "
                f"below the floor {rule.floor:g}"
            )

            def build(aid: str, what: str = what, key: AlertKey = key) -> Alert:
                details = {"floor": rule.floor, "metric": rule.metric, "k": rule.k}
                return self._alert(
                    aid,
                    rule,
                    key,
                    row,
                    f"{what} ({row.run}, {row.name})",
                    what,
                    Evidence(details=details),
                )

            out.append(Decision(rule, key, below_floor(value, rule.floor), row.name, build, row))
        return out

    def _failing(self, rule: EvaluationFailingRule, row: CheckpointRow) -> Decision:
        rows = self.store.queue.checkpoints(row.run, states=["evaluated", "failed"])
        states = {r.id: r.state for r in rows}
        states[row.id] = row.state
        ordered = sorted([*(r for r in rows if r.id != row.id), row], key=_by_step)
        streak = failing_streak([states[r.id] == "failed" for r in ordered])
        row = ordered[-1]  # the newest checkpoint speaks for the run, whichever finished last
        key = AlertKey(rule.name, row.run)
        what = (
            f"the last {streak} evaluations of run {row.run} failed "
            f"(latest: {row.name}, reason {row.state_reason or 'unknown'})"
        )

        def build(aid: str) -> Alert:
            details = {
                "consecutive": streak,
                "threshold": rule.consecutive,
                "reason": row.state_reason,
                "message": (row.state_message or "")[:500],
            }
            return self._alert(aid, rule, key, row, what, what, Evidence(details=details))

        return Decision(rule, key, streak >= rule.consecutive, row.name, build, row)

    def _stale(
        self, rule: NoRecentEvaluationRule, run: str, last: float | None, now: float
    ) -> Decision:
        key = AlertKey(rule.name, run)
        reference = self.started_at if last is None else last
        stale = evaluation_stale(last, self.started_at, now, rule.after_seconds)
        hours = (now - reference) / 3600
        what = f"no checkpoint of run {run} was evaluated for {hours:.1f} h"

        def build(aid: str) -> Alert:
            details = {"after_seconds": rule.after_seconds, "last_evaluated_at": last}
            return self._alert(aid, rule, key, None, what, what, Evidence(details=details), run=run)

        return Decision(rule, key, stale, f"since:{reference:.3f}", build)

    # -- building alerts --------------------------------------------------------------------

    def _alert(
        self,
        aid: str,
        rule: Rule,
        key: AlertKey,
        row: CheckpointRow | None,
        summary: str,
        description: str,
        evidence: Evidence,
        *,
        run: str | None = None,
        alertname: str | None = None,
    ) -> Alert:
        n = self.config.notifications
        run_name = run or (row.run if row else key.run)
        name = alertname or ALERTNAMES[rule.type]
        runbook = n.runbook_base_url
        return Alert(
            id=aid,
            key=key,
            rule_type=rule.type,
            alertname=name,
            severity=rule.severity,
            status="firing",
            summary=summary,
            description=description,
            run=run_name,
            checkpoint=row.name if row else None,
            step=row.step if row else None,
            started_at=self.clock(),
            evidence=evidence,
            links=links_for(
                dashboard_url=n.dashboard_url,
                api_url=n.api_url,
                run=run_name,
                checkpoint=row.name if row else None,
                alert=aid,
            ),
            runbook_url=None if runbook is None else f"{runbook.split('#')[0]}#{name.lower()}",
        )

    def _regression_alert(
        self,
        aid: str,
        rule: RecallRegressionRule,
        row: CheckpointRow,
        key: AlertKey,
        heldout: HeldoutConfig,
        baseline: Baseline,
        base_row: CheckpointRow,
        verdict: RegressionVerdict,
        before_outcomes: Mapping[str, Mapping[str, int]],
        after_outcomes: Mapping[str, Mapping[str, int]],
    ) -> Alert:
        k = key.k or 0
        kind = {"previous_mining": "mining_change", "same_mining": "same_mining"}.get(
            baseline.kind, "pinned"
        )
        lost = lost_queries(before_outcomes, after_outcomes, k)
        top = lost[:LOST_TOP]
        queries, titles = self.texts.lookup(
            heldout.path, [q.query_id for q in top], [q.doc_id for q in top]
        )
        diff: tuple[MiningKeyChange, ...] = ()
        if base_row.mining_fingerprint and row.mining_fingerprint:
            diff = tuple(
                MiningKeyChange(c.key, c.before, c.after, c.change)
                for c in mining_diff(
                    self.store.queue.mining_content(base_row.mining_fingerprint),
                    self.store.queue.mining_content(row.mining_fingerprint),
                )
            )
        fn_before, fn_after = self.store.results.fn_estimate(base_row.id), self.store.results.fn_estimate(row.id)
        label = f"{rule.metric}@{k}"
        why = {
            "mining_change": "after a mining change",
            "same_mining": "under the same mining config (not caused by mining)",
            "pinned": f"against the pinned baseline {base_row.name}",
        }[kind]
        summary = f"{label} fell {verdict.drop * 100:.1f} points {why} ({row.run}, {row.name})"
        d = verdict.difference
        description = (
            f"{label} on {heldout.dataset}: {verdict.before.estimate:.4f} ({base_row.name}) → "
            f"{verdict.after.estimate:.4f} ({row.name}), change {d.estimate:+.4f} "
            f"[{d.lower:+.4f}, {d.upper:+.4f}], p = {verdict.test.p_value:.2g} over "
            f"{verdict.test.queries} queries; {len(lost)} queries lost a relevant document from "
            f"the top {k}."
        )
        if diff:
            description += (
                " Mining keys changed: "
                + ", ".join(c.key for c in diff[:10])
                + (f" and {len(diff) - 10} more." if len(diff) > 10 else ".")
            )
        evidence = Evidence(
            regression_kind=kind,
            metric=MetricChange(
                metric=rule.metric,
                k=k,
                dataset=heldout.dataset,
                before=verdict.before,
                after=verdict.after,
                difference=verdict.difference,
                p_value=verdict.test.p_value,
                alpha=verdict.alpha,  # alpha / m against a best baseline
                min_drop=rule.min_drop,
                queries=verdict.test.queries,
                permutations=verdict.test.permutations,
            ),
            baseline=BaselineRef(
                base_row.name,
                base_row.step,
                baseline.kind,
                baseline.policy,
                base_row.mining_fingerprint,
            ),
            mining_diff=diff,
            fn_before=None if fn_before is None else _snapshot(fn_before),
            fn_after=None if fn_after is None else _snapshot(fn_after),
            lost_count=len(lost),
            lost_top=tuple(
                LostQueryRef(
                    q.query_id,
                    queries.get(q.query_id, ""),
                    q.doc_id,
                    titles.get(q.doc_id, ""),
                    q.rank_before,
                    q.rank_after,
                    q.lost,
                )
                for q in top
            ),
            recommendation=recommendation_text(_recommendation(fn_after)),
        )
        alertname = ALERTNAMES[
            "recall_regression" if kind != "same_mining" else "recall_regression_same_mining"
        ]
        return self._alert(aid, rule, key, row, summary, description, evidence, alertname=alertname)

    def _previous_mining_estimate(self, row: CheckpointRow) -> FnEstimate | None:
        for r in self.store.queue.checkpoints(row.run, states=["evaluated"], newest_first=True):
            if (
                r.step is not None
                and row.step is not None
                and r.step < row.step
                and r.mining_fingerprint not in (None, row.mining_fingerprint)
            ):
                return self.store.results.fn_estimate(r.id)
        return None

    def _mining_diff_before(self, row: CheckpointRow) -> tuple[MiningKeyChange, ...]:
        for r in self.store.queue.checkpoints(row.run, states=["evaluated"], newest_first=True):
            if (
                r.step is not None
                and row.step is not None
                and r.step < row.step
                and r.mining_fingerprint not in (None, row.mining_fingerprint)
                and row.mining_fingerprint is not None
            ):
                return tuple(
                    MiningKeyChange(c.key, c.before, c.after, c.change)
                    for c in mining_diff(
                        self.store.queue.mining_content(r.mining_fingerprint or ""),
                        self.store.queue.mining_content(row.mining_fingerprint),
                    )
                )
        return ()

    # -- applying decisions -----------------------------------------------------------------

    def _apply(self, decisions: Iterable[Decision]) -> None:
        now = self.clock()
        writes: list[AlertWrite] = []
        messages: list[NewMessage] = []
        for d in decisions:
            record = self.store.ledger.open_alert(d.key.as_string())
            episode = (
                None
                if record is None
                else OpenEpisode(record.alert.id, record.opened_at, record.last_notified_at)
            )
            action = transition(episode, d.firing, now, self.repeat_interval)
            if action == "fire" and d.build is not None:
                # Numbered episodes: a re-opened key is a new alert with new message ids.
                aid = alert_id(d.key, d.opened_by, self.store.ledger.count_episodes(d.key.as_string()))
                alert = d.build(aid)
                writes.append(
                    AlertWrite(alert, "firing", opened_at=now, notified_at=now, repeats=0)
                )
                messages += self._messages(d.rule, alert, "firing", now)
                log.warning(
                    "alert firing: %s",
                    alert.summary,
                    extra=fields(alert=aid, rule=d.rule.name, run=alert.run),
                )
            elif action == "repeat" and record is not None:
                self._repeat(record, d.rule, now, writes, messages)
            elif action == "resolve" and record is not None:
                self._resolve(record, d, now, writes, messages, note=d.note)
        if writes or messages:
            self.store.ledger.apply_alerts(writes, messages)
            if os.environ.get(FAILPOINT_ENV) == "after-decision" and messages:
                os.kill(os.getpid(), signal.SIGKILL)
            self.wake()

    def _repeat(
        self,
        record: AlertRecord,
        rule: Rule,
        now: float,
        writes: list[AlertWrite],
        messages: list[NewMessage],
    ) -> None:
        """Notify a firing alert again (not to Alertmanager, which repeats by itself)."""
        seq = record.repeats + 1
        writes.append(
            AlertWrite(
                record.alert, "firing", opened_at=record.opened_at, notified_at=now, repeats=seq
            )
        )
        messages += self._messages(
            rule, record.alert, "repeat", now, sequence=seq, skip_alertmanager=True
        )

    def _resolve(
        self,
        record: AlertRecord,
        d: Decision,
        now: float,
        writes: list[AlertWrite],
        messages: list[NewMessage],
        *,
        note: str | None = None,
    ) -> None:
        row = d.checkpoint
        resolved = record.alert.resolved(
            now, checkpoint=row.name if row else None, step=row.step if row else None
        )
        if note:
            resolved = Alert(
                **{
                    **{f: getattr(resolved, f) for f in resolved.__dataclass_fields__},
                    "description": f"{resolved.description} ({note})",
                }
            )
        writes.append(
            AlertWrite(
                resolved,
                "resolved",
                opened_at=record.opened_at,
                notified_at=now,
                repeats=record.repeats,
            )
        )
        rule = self._rule(record.rule) or d.rule
        messages += self._messages(rule, resolved, "resolved", now)
        log.info(
            "alert resolved: %s",
            record.alert.summary,
            extra=fields(alert=record.alert.id, rule=record.rule, run=record.alert.run),
        )

    def _messages(
        self,
        rule: Rule,
        alert: Alert,
        event: Event,
        now: float,
        *,
        sequence: int = 0,
        skip_alertmanager: bool = False,
    ) -> list[NewMessage]:
        out = []
        for name in rule.channels:
            channel = self._channels.get(name)
            if channel is None:
                continue
            if skip_alertmanager and isinstance(channel, AlertmanagerChannel):
                continue
            out.append(
                NewMessage(
                    message_id=message_id(alert.id, event, sequence),
                    alert_id=alert.id,
                    channel=name,
                    rule=rule.name,
                    event=event,
                    body=render(channel, alert, event, now, resend_interval=_resend(channel)),
                    created_at=now,
                )
            )
        return out

    def _repeat_open(self, now: float) -> None:
        """Notify again every alert that kept firing for a repeat interval without a decision."""
        if self.repeat_interval is None:
            return
        writes: list[AlertWrite] = []
        messages: list[NewMessage] = []
        for record in self.store.ledger.open_alerts():
            rule = self._rule(record.rule)
            if rule is not None and now - record.last_notified_at >= self.repeat_interval:
                self._repeat(record, rule, now, writes, messages)
        if writes:
            self.store.ledger.apply_alerts(writes, messages)
            self.wake()

    def _resend_to_alertmanager(self, now: float) -> None:
        """Re-send firing alerts to their Alertmanager channels, keeping ``endsAt`` ahead."""
        due = {
            name: channel
            for name, channel in self._channels.items()
            if isinstance(channel, AlertmanagerChannel)
            and now - self._last_resend.get(name, self.started_at) >= _resend(channel)
        }
        if not due:
            return
        messages = []
        for record in self.store.ledger.open_alerts():
            rule = self._rule(record.rule)
            for name in rule.channels if rule is not None else []:
                channel = due.get(name)
                if channel is None or now - record.opened_at < _resend(channel):
                    continue
                messages.append(
                    NewMessage(
                        message_id=message_id(record.alert.id, "repeat", -int(now)),
                        alert_id=record.alert.id,
                        channel=name,
                        rule=record.rule,
                        event="refresh",
                        body=render(
                            channel, record.alert, "repeat", now, resend_interval=_resend(channel)
                        ),
                        created_at=now,
                    )
                )
        self._last_resend.update(dict.fromkeys(due, now))
        if messages:
            self.store.ledger.apply_alerts([], messages)
            self.wake()

    def _rule(self, name: str) -> Rule | None:
        return next((r for r in self.config.notifications.rules if r.name == name), None)


class Notifier:
    """The daemon's alerting side: decisions after each checkpoint, and the delivery workers."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        session_factory: Callable[[], requests.Session] = requests.Session,
        policy: RetryPolicy | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.store = store
        targets = {c.name: target_for(c) for c in config.notifications.channels}
        self.dispatcher = Dispatcher(
            store,
            targets,
            policy=policy or RetryPolicy(),
            session_factory=session_factory,
            clock=clock,
            rng=rng,
        )
        self.alerting = Alerting(config, store, clock=clock, wake=self.dispatcher.wake)

    @property
    def enabled(self) -> bool:
        """Whether any rule is configured."""
        return bool(self.config.notifications.rules)

    def start(self) -> None:
        """Start delivering (pending messages of a previous run first), then catch up."""
        dropped = self.store.outbox.fail_pending_except(
            [c.name for c in self.config.notifications.channels], self.alerting.clock()
        )
        if dropped:
            log.warning(
                "%d pending notification(s) were for channels no longer configured: failed",
                dropped,
            )
        self.dispatcher.start()
        self.catch_up()

    def catch_up(self) -> None:
        """Re-decide each run's latest evaluated and latest failed checkpoints (idempotent)."""
        # A crash may have come between a checkpoint's evaluation (or failure) and its decision.
        for run in self.config.runs:
            latest = self.store.views.latest_evaluated(run.name)
            if latest is not None:
                self.after_checkpoint(latest)
            failed = self.store.queue.checkpoints(run.name, states=["failed"])
            if failed:
                self.after_checkpoint(max(failed, key=_by_step))

    def after_checkpoint(self, row: CheckpointRow) -> None:
        """Decide the rules for a checkpoint that became evaluated or failed."""
        try:
            self.alerting.after_checkpoint(row)
        except Exception:
            log.exception(
                "the alert decision failed", extra=fields(run=row.run, checkpoint=row.name)
            )

    def tick(self) -> None:
        """Periodic rules, repeats and Alertmanager re-sends."""
        try:
            self.alerting.tick()
        except Exception:
            log.exception("the periodic alert check failed")

    def stop(self) -> None:
        """Stop the delivery workers (pending messages stay in the outbox for the next start)."""
        self.dispatcher.stop()


# -- helpers ------------------------------------------------------------------------------------


def _by_step(row: CheckpointRow) -> tuple[bool, int, str]:
    """Checkpoints in step order (checkpoints without a step last, by name)."""
    return (row.step is None, row.step or 0, row.name)


def _verdict_kinds(rules: Sequence[Rule]) -> dict[str, str]:
    """The verdict ``kind`` each regression rule stores its verdicts under.

    The store keeps one verdict per (checkpoint, dataset, metric, k, kind) and the exporter reads
    the ``previous_mining`` one as the baseline gauge: the first rule of each comparison gets the
    plain kind, any further rule of the same comparison ``kind:rule-name``, so none overwrites
    another's verdicts.
    """
    kinds: dict[str, str] = {}
    taken: set[tuple[str, str]] = set()
    for rule in rules:
        if isinstance(rule, RecallRegressionRule):
            kind = "pinned" if rule.baseline_checkpoint else rule.compare_with
            if (rule.metric, kind) in taken:
                kinds[rule.name] = f"{kind}:{rule.name}"
            else:
                kinds[rule.name] = kind
                taken.add((rule.metric, kind))
    return kinds


def _resend(channel: ChannelConfig) -> float:
    if isinstance(channel, AlertmanagerChannel):
        return channel.resend_interval_seconds
    return 60.0  # unused: only Alertmanager bodies carry endsAt


def _snapshot(est: FnEstimate) -> FnSnapshot:
    return FnSnapshot(
        est.estimate, est.lower, est.upper, est.oracle, est.sample_size, est.amplification
    )


def _recommendation(est: FnEstimate | None) -> Mapping[str, Any] | None:
    if est is None:
        return None
    rec = est.details.get("recommendation") if isinstance(est.details, Mapping) else None
    return rec if isinstance(rec, Mapping) else None


class TextIndex:
    """Query texts and document titles of held-out sets, read once per file version."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: path -> ((mtime_ns, size), id -> text), or None for a file that could not be read.
        self._files: dict[Path, tuple[tuple[int, int], dict[str, str] | None]] = {}

    def warm(self, heldouts: Iterable[Path]) -> None:
        """Index the texts of each held-out set whose files are new or changed since last time."""
        for heldout in heldouts:
            for name, field in _TEXT_FILES:
                self._load(heldout / name, field)

    def lookup(
        self, heldout: Path, query_ids: Sequence[str], doc_ids: Sequence[str]
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Query texts and document titles of a few ids (streamed when not indexed)."""
        out: list[dict[str, str]] = []
        for (name, field), ids in zip(_TEXT_FILES, (query_ids, doc_ids), strict=True):
            path = heldout / name
            cached = self._files.get(path)  # no lock: never wait for another thread's reading
            stamp = _stamp(path)
            if cached is not None and cached[0] == stamp and cached[1] is not None:
                texts = cached[1]
                out.append({i: texts[i] for i in ids if i in texts})
            else:
                out.append(_stream_texts(path, field, set(ids)))
        return out[0], out[1]

    def _load(self, path: Path, field: str) -> None:
        stamp = _stamp(path)
        if stamp is None or stamp[1] > TEXT_INDEX_MAX_BYTES:
            return
        with self._lock:
            cached = self._files.get(path)
            if cached is not None and cached[0] == stamp:
                return
            texts: dict[str, str] = {}
            try:
                for _, obj in read_jsonl_objects(path):
                    texts[str(obj.get("_id"))] = _text_of(obj, field)
            except Exception:  # texts are a courtesy: an alert without them is still an alert
                log.warning("could not read texts from %s", path)
                self._files[path] = (stamp, None)
                return
            self._files[path] = (stamp, texts)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _text_of(obj: Mapping[str, Any], field: str) -> str:
    value = obj.get(field) or (obj.get("text") if field == "title" else "")
    return str(value or "")[:300]


def _stream_texts(path: Path, field: str, wanted: set[str]) -> dict[str, str]:
    """The texts of a few ids, streamed from one held-out file."""
    out: dict[str, str] = {}
    if not wanted:
        return out
    try:
        for _, obj in read_jsonl_objects(path):
            oid = str(obj.get("_id"))
            if oid in wanted:
                out[oid] = _text_of(obj, field)
                if len(out) == len(wanted):
                    break
    except Exception:  # texts are a courtesy: an alert without them is still an alert
        log.warning("could not read texts from %s", path)
    return out
