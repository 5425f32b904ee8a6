"""People's review labels combined with a judge's audit: the prediction-powered estimate (pure).

Where ``false_negatives.oracles`` has ``review`` beside a judge (``model:``, ``http(s)://``,
``qrels:``...), the judge labelled the whole seeded sample in its audit (``runner.estimate_job``
stores each sampled pair's label as ``details.judged_sample``) and people label part of the same
sample on ``/review``. ``people_and_judge`` (``mining.people``) then gives the judge-only,
people-only and prediction-powered (PPI++, ``stats.ppi``) rates side by side and the judge's
agreement with people; this module turns them into the estimate the daemon stores:

- ``combine``: the ``PeopleAndJudge`` of a set, or None when the judge's audit has no label of
  some item of the review sample (an audit from before ``judged_sample``, or one that drew
  another sample: e.g. a judge that cannot judge every negative, or a ``range_min`` offset under
  stratified sampling). The caller then falls back to choosing between the two.
- ``ppi_estimate``: the stored estimate when PPI is used (source ``ppi``): its headline and
  interval, per rank bucket the PPI rate where that bucket has one (else the judge's), the
  judge's counts (``sample_size``, ``false_negatives``: what the judge saw of the whole sample),
  and in ``details`` the trio with ``used`` (``people``), the people's labels and SPRT
  (``human_labels``, ``sprt``, ``sprt_status``: evidence, as an estimate from labels alone has),
  the judge's own estimate (``judge``) and its curve and recommendation (made from the judge's
  labels of the whole sample).
- ``with_people``: an estimate (the people's, or the judge's) with the trio and agreement in its
  details, ``used`` saying which it is.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from recallwatch.mining.oracles.labels import ReviewLabel
from recallwatch.mining.oracles.review import REVIEW_SPEC
from recallwatch.mining.people import PeopleAndJudge, people_and_judge
from recallwatch.mining.review import ReviewPlan, judge_outcomes, people_outcomes
from recallwatch.store import FnBucket, FnEstimate

__all__ = [
    "CARRIED",
    "JUDGED_SAMPLE",
    "PPI_SOURCE",
    "combine",
    "judge_summary",
    "ppi_estimate",
    "with_people",
]

#: The ``source`` of a prediction-powered estimate (a judge's labels corrected by people's).
PPI_SOURCE = "ppi"
#: The key of an audit's details holding its judge's label of each sampled pair.
JUDGED_SAMPLE = "judged_sample"
#: What a combined estimate keeps of the judge's audit details (made from its labels).
CARRIED = ("curve", "recommendation", "config", "amplification", "oracle")


def combine(
    plan: ReviewPlan, labels: list[ReviewLabel], judge: FnEstimate | None
) -> PeopleAndJudge | None:
    """The judge-only, people-only and PPI rates of the set (None: the judge's labels of the
    review sample are not all known)."""
    if judge is None:
        return None
    judged = judge.details.get(JUDGED_SAMPLE)
    pairs = judged.get("pairs") if isinstance(judged, dict) else None
    if not isinstance(pairs, list):
        return None
    codes = judge_outcomes(plan, pairs)
    if codes is None:
        return None
    return people_and_judge(
        plan.drawn.sample,
        codes,
        people_outcomes(plan, labels),
        plan.config.buckets.labels,
        judge_name=judge.oracle,
        confidence=plan.config.confidence,
    )


def judge_summary(judge: FnEstimate) -> dict[str, Any]:
    """The judge's own estimate, as a combined estimate's details name it."""
    return {
        "oracle": judge.oracle,
        "sample_size": judge.sample_size,
        "false_negatives": judge.false_negatives,
        "estimate": judge.estimate,
        "lower": judge.lower,
        "upper": judge.upper,
    }


def _carried(judge: FnEstimate) -> dict[str, Any]:
    return {k: judge.details[k] for k in CARRIED if k in judge.details}


def _human(people: FnEstimate) -> dict[str, Any]:
    keys = ("human_labels", "sprt", "sprt_status")
    return {k: people.details[k] for k in keys if k in people.details}


def with_people(
    estimate: FnEstimate, pj: PeopleAndJudge, judge: FnEstimate, *, used: str, why: str
) -> FnEstimate:
    """``estimate`` with the trio and the agreement in its details; ``used`` names it."""
    shown = replace(pj, used=used, why=why)
    details = {
        **_carried(judge),
        **dict(estimate.details),
        "people": shown.as_dict(),
        "judge": judge_summary(judge),
    }
    return replace(estimate, details=details)


def ppi_estimate(pj: PeopleAndJudge, judge: FnEstimate, people: FnEstimate) -> FnEstimate:
    """The stored prediction-powered estimate (``pj.used`` must be ``ppi``)."""
    if pj.used != "ppi" or pj.ppi is None:
        raise ValueError("no prediction-powered rate to store")
    ppi = {b.label: b.result for b in pj.ppi_buckets if b.result is not None}
    buckets = []
    for b in pj.judge_only.buckets:
        r = ppi.get(b.label)
        rate = r.interval if r is not None else b.rate
        if rate is None:
            continue
        buckets.append(
            FnBucket(b.label, b.judged, b.false_negatives, rate.estimate, rate.lower, rate.upper)
        )
    details: dict[str, Any] = {
        **_carried(judge),
        "source": PPI_SOURCE,
        **_human(people),
        "people": pj.as_dict(),
        "judge": judge_summary(judge),
    }
    return FnEstimate(
        oracle=f"{judge.oracle} + {REVIEW_SPEC}",
        sample_size=pj.judge_only.judged,
        false_negatives=pj.judge_only.false_negatives,
        estimate=pj.ppi.estimate,
        lower=pj.ppi.lower,
        upper=pj.ppi.upper,
        random_estimate=judge.random_estimate,
        amplification=judge.amplification,
        buckets=tuple(buckets),
        details=details,
        source=PPI_SOURCE,
    )
