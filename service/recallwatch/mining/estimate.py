"""Estimates from judged samples: overall, stratified and per-bucket rates, amplification, SPRT.

Pure functions over numpy arrays. Outcomes are coded per sampled negative:
``1`` relevant (a false negative), ``0`` not relevant, ``-1`` unsure, ``-2`` not judged. Unsure
and unjudged negatives are counted and reported, never counted either way.

Every rate is about the sample's population: the negatives the oracle can judge (all of them for
a model or an endpoint; the audited queries' for qrels, the labelled pairs for labels). The
finite-population corrections use that population too, the same one the sample size for a target
half-width was computed over, so the interval meets the half-width it was sized for.

- ``overall``: Wilson interval of the judged sample, with the finite-population correction; only
  for a uniform sample (a stratified one is not self-weighting).
- ``stratified``: bucket-weighted sum(W_h p_h), W_h the bucket's share of the judgeable
  population; post-stratified when the sample was uniform. A bucket with no judged negative is
  merged into its deeper neighbour (the shallower one for the last bucket), and the merge is noted.
- ``amplification``: the headline mined rate (``best``) / random (control) rate, Katz log
  interval; its estimate is exactly the ratio of the two rates reported beside it.
- ``sprt``: the sequential test over the uniform sample in the order it was drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from recallwatch.mining.sampling import Sample
from recallwatch.stats import (
    Interval,
    SPRTDesign,
    SPRTResult,
    ratio_interval,
    sprt_run,
    stratified_interval,
    wilson_interval,
)

__all__ = [
    "FN",
    "MISSING",
    "NOT_FN",
    "UNSURE",
    "Amplification",
    "BucketRate",
    "RateEstimate",
    "SequentialDecision",
    "estimate_amplification",
    "estimate_rates",
    "merge_empty_buckets",
    "sequential_decision",
]

FN, NOT_FN, UNSURE, MISSING = 1, 0, -1, -2
Outcomes = npt.NDArray[np.int8]


def _interval_dict(i: Interval | None) -> dict[str, Any] | None:
    return None if i is None else i.as_dict()


@dataclass(frozen=True)
class BucketRate:
    """The false-negative rate of one mining-rank bucket."""

    label: str
    #: Judgeable negatives of the bucket (the sampling frame).
    population: int
    drawn: int
    judged: int
    false_negatives: int
    unsure: int
    unjudged: int
    rate: Interval | None
    #: Every negative of the bucket, judgeable or not (None: the same as ``population``).
    negatives: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "bucket": self.label,
            "population": self.population,
            "negatives": self.population if self.negatives is None else self.negatives,
            "drawn": self.drawn,
            "judged": self.judged,
            "false_negatives": self.false_negatives,
            "unsure": self.unsure,
            "unjudged": self.unjudged,
            "rate": _interval_dict(self.rate),
        }


@dataclass(frozen=True)
class RateEstimate:
    """The false-negative rate of a mined set, estimated from one judged sample."""

    method: str
    #: Judgeable negatives the rates are about (the sampling frame).
    population: int
    drawn: int
    judged: int
    false_negatives: int
    unsure: int
    unjudged: int
    overall: Interval | None
    stratified: Interval | None
    stratified_effective_n: float | None
    buckets: list[BucketRate]
    notes: list[str] = field(default_factory=list)
    #: Every negative of the mined set, judgeable or not (None: the same as ``population``).
    total: int | None = None

    @property
    def best(self) -> Interval | None:
        """The headline estimate: stratified when available, else overall."""
        return self.stratified if self.stratified is not None else self.overall

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "sampling": self.method,
            "population": self.population,
            "negatives": self.population if self.total is None else self.total,
            "drawn": self.drawn,
            "judged": self.judged,
            "false_negatives": self.false_negatives,
            "unsure": self.unsure,
            "unjudged": self.unjudged,
            "overall": _interval_dict(self.overall),
            "stratified": _interval_dict(self.stratified),
            "stratified_effective_n": self.stratified_effective_n,
            "buckets": [b.as_dict() for b in self.buckets],
            "notes": list(self.notes),
        }


def merge_empty_buckets(
    x: npt.NDArray[np.int64],
    n: npt.NDArray[np.int64],
    size: npt.NDArray[np.int64],
    labels: list[str],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], list[str]]:
    """Merge each bucket with a population but no judged negative into its deeper neighbour."""
    xs, ns, sizes = list(x), list(n), list(size)
    names = list(labels)
    notes: list[str] = []
    i = 0
    while i < len(ns):
        if sizes[i] > 0 and ns[i] == 0 and len(ns) > 1:
            j = i + 1 if i + 1 < len(ns) else i - 1
            notes.append(f"bucket {names[i]} has no judged negative: merged with {names[j]}")
            xs[j] += xs[i]
            ns[j] += ns[i]
            sizes[j] += sizes[i]
            names[j] = f"{names[min(i, j)]}+{names[max(i, j)]}"
            del xs[i], ns[i], sizes[i], names[i]
            i = 0
            continue
        i += 1
    return (np.asarray(xs, np.int64), np.asarray(ns, np.int64), np.asarray(sizes, np.int64), notes)


def estimate_rates(
    sample: Sample,
    outcomes: Outcomes,
    labels: list[str],
    *,
    confidence: float = 0.95,
) -> RateEstimate:
    """Overall, stratified and per-bucket false-negative rates of a judged sample."""
    if outcomes.shape != sample.rows.shape:
        raise ValueError("one outcome per sampled row is needed")
    nb = len(labels)
    judged_mask = outcomes >= 0
    fn_mask = outcomes == FN
    x = np.bincount(sample.bucket[fn_mask], minlength=nb).astype(np.int64)
    n = np.bincount(sample.bucket[judged_mask], minlength=nb).astype(np.int64)
    unsure = np.bincount(sample.bucket[outcomes == UNSURE], minlength=nb).astype(np.int64)
    missing = np.bincount(sample.bucket[outcomes == MISSING], minlength=nb).astype(np.int64)
    drawn = np.bincount(sample.bucket, minlength=nb).astype(np.int64)
    pop = sample.bucket_population
    total = pop if sample.bucket_total is None else sample.bucket_total
    buckets = [
        BucketRate(
            labels[b],
            int(pop[b]),
            int(drawn[b]),
            int(n[b]),
            int(x[b]),
            int(unsure[b]),
            int(missing[b]),
            wilson_interval(int(x[b]), int(n[b]), confidence=confidence, population=int(pop[b]))
            if n[b] > 0
            else None,
            int(total[b]),
        )
        for b in range(nb)
    ]
    judged, fns = int(n.sum()), int(x.sum())
    notes: list[str] = []
    if sample.total > sample.population:
        notes.append(
            f"the rates are about the {sample.population:,} negatives the oracle can judge "
            f"(of {sample.total:,}); they stand for the whole mined set only as far as those "
            "are representative of it, which the intervals do not account for"
        )
    overall: Interval | None = None
    if judged and sample.method == "uniform":
        overall = wilson_interval(fns, judged, confidence=confidence, population=sample.population)
    elif sample.method != "uniform":
        notes.append("stratified sample: the overall rate is the stratified estimate")
    stratified: Interval | None = None
    eff_n: float | None = None
    if judged:
        mx, mn, msize, merge_notes = merge_empty_buckets(x, n, pop, labels)
        notes.extend(merge_notes)
        est = stratified_interval(mx, mn, msize, confidence=confidence)
        stratified, eff_n = est.interval, est.effective_n
    if int(unsure.sum()):
        notes.append(
            f"{int(unsure.sum())} sampled negative(s) judged unsure: left out of the rates"
        )
    if int(missing.sum()):
        notes.append(f"{int(missing.sum())} sampled negative(s) have no judgement: left out")
    return RateEstimate(
        sample.method,
        sample.population,
        int(sample.rows.size),
        judged,
        fns,
        int(unsure.sum()),
        int(missing.sum()),
        overall,
        stratified,
        None if eff_n is None or not np.isfinite(eff_n) else float(eff_n),
        buckets,
        notes,
        sample.total,
    )


@dataclass(frozen=True)
class Amplification:
    """Label-noise amplification: mined false-negative rate / random false-negative rate."""

    mined: Interval | None
    random: Interval | None
    control_drawn: int
    control_judged: int
    control_false_negatives: int
    control_unsure: int
    ratio: Interval | None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "ratio": _interval_dict(self.ratio),
            "mined": _interval_dict(self.mined),
            "random": _interval_dict(self.random),
            "control_drawn": self.control_drawn,
            "control_judged": self.control_judged,
            "control_false_negatives": self.control_false_negatives,
            "control_unsure": self.control_unsure,
            "note": self.note,
        }


def estimate_amplification(
    mined: RateEstimate, control: Outcomes, *, confidence: float = 0.95
) -> Amplification:
    """Ratio of the headline mined rate to the control sample's rate, Katz's log interval.

    The mined side is ``mined.best``, the rate reported beside the ratio: the overall Wilson
    counts when that is the headline, else the stratified (or post-stratified) estimate on its
    effective sample size. The ratio's estimate is exactly ``best.estimate / random.estimate``.
    """
    judged = int((control >= 0).sum())
    fns = int((control == FN).sum())
    unsure = int((control == UNSURE).sum())
    random = wilson_interval(fns, judged, confidence=confidence) if judged else None
    headline = mined.best
    if headline is None or random is None:
        why = "no judged control negative" if random is None else "no judged mined negative"
        return Amplification(headline, random, int(control.size), judged, fns, unsure, None, why)
    if headline is mined.overall:
        xa, na = float(mined.false_negatives), float(mined.judged)
    else:  # a (post-)stratified estimate: its effective counts
        na = float(mined.stratified_effective_n or mined.judged)
        xa = headline.estimate * na
    ratio = ratio_interval(xa, na, float(fns), float(judged), confidence=confidence)
    if random.estimate > 0:  # exactly the ratio of the two printed rates (no rounding of xa / na)
        estimate = headline.estimate / random.estimate
        ratio = replace(
            ratio,
            estimate=estimate,
            lower=min(ratio.lower, estimate),
            upper=max(ratio.upper, estimate),
        )
    note: str | None = None
    if fns == 0:
        note = (
            "no false negative among the control sample: the ratio has no finite estimate and "
            "no upper bound; only its lower bound is informative"
        )
    return Amplification(headline, random, int(control.size), judged, fns, unsure, ratio, note)


@dataclass(frozen=True)
class SequentialDecision:
    """The SPRT of the human-review decision, over the sample in draw order."""

    design: SPRTDesign
    result: SPRTResult | None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        d = self.design
        out: dict[str, Any] = {
            "h0_rate": d.p0,
            "h1_rate": d.p1,
            "alpha": d.alpha,
            "beta": d.beta,
            "upper_llr": d.upper,
            "lower_llr": d.lower,
            "note": self.note,
        }
        if self.result is not None:
            out.update(
                decision=self.result.decision,
                labels=self.result.labels,
                false_negatives=self.result.false_negatives,
                llr=self.result.llr,
            )
        return out


def sequential_decision(
    sample: Sample, outcomes: Outcomes, design: SPRTDesign
) -> SequentialDecision:
    """Run the SPRT over the judged outcomes in draw order (uniform samples only)."""
    if sample.method != "uniform":
        return SequentialDecision(
            design, None, "needs a uniform sample (use --sampling uniform for review order)"
        )
    judged = outcomes[outcomes >= 0] == FN
    return SequentialDecision(design, sprt_run(judged, design))
