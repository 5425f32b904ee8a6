"""The ``recall_regression`` rule's alert documents: what a firing alert and a resolution say.

``rule`` decides (which baseline, the level test, confirm and hysteresis) and
reads the evidence from the store; this module turns a decision's facts into the alert's texts
(summary, description), its ``Evidence`` with the ``MetricChange`` behind it, and the
``Resolution`` that closes it. Pure: no store, no clock.
"""

from __future__ import annotations

from typing import NamedTuple

from recallwatch.alerting.evidence import fn_snapshot, recommendation
from recallwatch.alerting.rules.recall_regression.level import LevelVerdict
from recallwatch.alerting.rules.recall_regression.segments import Baseline
from recallwatch.config import RecallRegressionRule
from recallwatch.records.alert import (
    AlertKey,
    BaselineRef,
    Evidence,
    LostQueryRef,
    MetricChange,
    MiningKeyChange,
    Resolution,
)
from recallwatch.store import CheckpointRow, FnEstimate

__all__ = [
    "ALERTNAMES",
    "MINING_KEYS_NAMED",
    "FiringAlert",
    "firing_alert",
    "regression_kind",
    "resolution_for",
    "superseded_resolution",
]

#: The ``alertname`` of a regression alert by its kind: RecallRegressionAfterMiningChange after a
#: mining change; RecallRegression under the same mining config or against a pinned baseline (the
#: names of the Prometheus rules for the same events).
ALERTNAMES: dict[str, str] = {
    "mining_change": "RecallRegressionAfterMiningChange",
    "same_mining": "RecallRegression",
    "pinned": "RecallRegression",
}

#: How many changed mining keys an alert's description names.
MINING_KEYS_NAMED = 10


class FiringAlert(NamedTuple):
    """A firing regression alert's texts, evidence and Alertmanager ``alertname``."""

    summary: str
    description: str
    evidence: Evidence
    alertname: str


def regression_kind(baseline: Baseline) -> str:
    """The evidence's ``regression_kind``: ``mining_change``, ``same_mining`` or ``pinned``."""
    return {"previous_mining": "mining_change", "same_mining": "same_mining"}.get(
        baseline.kind, "pinned"
    )


def firing_alert(
    rule: RecallRegressionRule,
    row: CheckpointRow,
    dataset: str,
    k: int,
    baseline: Baseline,
    base_row: CheckpointRow,
    verdict: LevelVerdict,
    *,
    lost_count: int,
    lost_top: tuple[LostQueryRef, ...],
    mining_diff: tuple[MiningKeyChange, ...],
    fn_before: FnEstimate | None,
    fn_after: FnEstimate | None,
) -> FiringAlert:
    """What an alert says when ``row`` regressed against ``base_row`` (the level ``verdict``)."""
    kind = regression_kind(baseline)
    label = f"{rule.metric}@{k}"
    why = {
        "mining_change": "after a mining change",
        "same_mining": "under the same mining config (not caused by mining)",
        "pinned": f"against the pinned baseline {base_row.name}",
    }[kind]
    # "after" is this checkpoint; the post level (all post-change checkpoints so far) and both
    # tests are in checkpoint_variance and the verdict's details.
    d = verdict.latest_difference
    summary = f"{label} fell {-d.estimate * 100:.1f} points {why} ({row.run}, {row.name})"
    pre_level = verdict.forecast
    compared = (
        f"{label} {verdict.latest_after.estimate:.3f} at {row.name} against "
        f"{pre_level.describe(label)}. "
        if pre_level is not None and pre_level.climbs
        else ""
    )
    description = compared + (
        f"{label} on {dataset}: {verdict.before.estimate:.4f} ({base_row.name}) → "
        f"{verdict.latest_after.estimate:.4f} ({row.name}), change {d.estimate:+.4f} "
        f"[{d.lower:+.4f}, {d.upper:+.4f}], p = {verdict.p_value:.2g} over "
        f"{verdict.level.queries} queries; {lost_count} queries lost a relevant document from "
        f"the top {k}. Levels: {verdict.level.pre} checkpoint(s) before against "
        f"{verdict.level.post} after, assuming a {verdict.level.variance.describe()}."
    )
    if mining_diff:
        named = mining_diff[:MINING_KEYS_NAMED]
        more = len(mining_diff) - len(named)
        description += (
            " Mining keys changed: "
            + ", ".join(c.key for c in named)
            + (f" and {more} more." if more > 0 else ".")
        )
    evidence = Evidence(
        regression_kind=kind,
        metric=MetricChange(
            metric=rule.metric,
            k=k,
            dataset=dataset,
            before=verdict.before,
            after=verdict.latest_after,
            difference=verdict.latest_difference,
            p_value=verdict.p_value,
            alpha=verdict.alpha,  # this look's level (alpha spread over a change's looks)
            min_drop=rule.min_drop,
            queries=verdict.level.queries,
            permutations=0,  # a level test: no sign flips
            checkpoint_variance={
                **verdict.level.variance.as_dict(),
                "assumed": verdict.level.variance.describe(),
                "se": verdict.level.se,
                "se_queries": verdict.level.se_queries,
                "se_checkpoints": verdict.level.se_checkpoints,
                "pre_checkpoints": verdict.level.pre,
                "post_checkpoints": verdict.level.post,
                "post_level": verdict.after.estimate,
                "p_post_level": verdict.level.p_value,
                "p_checkpoint": verdict.latest.p_value,
                "forecast": pre_level.as_dict() if pre_level is not None else None,
            },
        ),
        baseline=BaselineRef(
            base_row.name,
            base_row.step,
            baseline.kind,
            baseline.policy,
            base_row.mining_fingerprint,
        ),
        mining_diff=mining_diff,
        fn_before=fn_snapshot(fn_before),
        fn_after=fn_snapshot(fn_after),
        lost_count=lost_count,
        lost_top=lost_top,
        recommendation=recommendation(fn_after),
    )
    alertname = ALERTNAMES.get(kind, ALERTNAMES["pinned"])
    return FiringAlert(summary, description, evidence, alertname)


def resolution_for(
    rule: RecallRegressionRule,
    row: CheckpointRow,
    baseline: str,
    dataset: str,
    k: int,
    verdict: LevelVerdict,
    superseded: str | None = None,
) -> Resolution:
    """What resolves an alert: ``row`` against the same ``baseline``, no longer regressed."""
    label = f"{rule.metric}@{k}"
    half = rule.min_drop / 2
    # What resolves is the latest checkpoint alone against the pre level (level.py).
    p, drop = verdict.latest.p_value, -verdict.latest.difference
    after, d = (
        verdict.latest_after,
        verdict.latest_difference,
    )
    if drop <= 0:
        why = f"no drop (p = {p:.2g})"
    elif drop < half - 1e-12:
        why = f"a drop of {drop:.4f}, under half the minimum drop ({half:.4f}) (p = {p:.2g})"
    else:
        why = f"p = {p:.2g} > resolve_alpha = {rule.resolve_alpha:g}: no longer significant"
    description = (
        f"{label} on {dataset}: {verdict.before.estimate:.4f} ({baseline}) → "
        f"{after.estimate:.4f} ({row.name}), change {d.estimate:+.4f} "
        f"[{d.lower:+.4f}, {d.upper:+.4f}] over {verdict.latest.queries} queries "
        f"(level test, assuming a {verdict.latest.variance.describe()}): {why}."
    )
    if superseded:
        description += f" The alert was {superseded}."
    return Resolution(
        summary=(
            f"{label} recovered: {row.name} is no longer regressed against {baseline} "
            f"({row.run}, {dataset})"
        ),
        description=description,
        checkpoint=row.name,
        step=row.step,
        metric=MetricChange(
            metric=rule.metric,
            k=k,
            dataset=dataset,
            before=verdict.before,
            after=after,
            difference=d,
            p_value=p,
            alpha=rule.resolve_alpha,
            min_drop=rule.min_drop,
            queries=verdict.latest.queries,
            permutations=0,  # a level test: no sign flips
            checkpoint_variance={
                **verdict.latest.variance.as_dict(),
                "assumed": verdict.latest.variance.describe(),
            },
        ),
        criterion=(
            f"an alert stays open while the drop is at least min_drop / 2 ({half:g}) "
            f"with p <= resolve_alpha ({rule.resolve_alpha:g})"
        ),
    )


def superseded_resolution(
    rule: RecallRegressionRule, row: CheckpointRow, old_key: AlertKey, superseded: str
) -> Resolution:
    """The resolution of an alert whose baseline is no longer evaluated on its held-out set."""
    return Resolution(
        summary=f"{rule.metric}@{old_key.k} alert of {row.run} {superseded}",
        description=(
            f"The baseline {old_key.baseline} is no longer evaluated on "
            f"{old_key.dataset}; the alert against it is {superseded}."
        ),
        checkpoint=row.name,
        step=row.step,
    )
