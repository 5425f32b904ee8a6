"""A judge checked against people: agreement, and the rate from both (prediction-powered).

Pure functions over outcome arrays (``estimate``'s codes: 1 relevant, 0 not relevant, -1 unsure,
-2 not judged), one per sampled negative, in the sample's order.

- ``judge_agreement``: over the pairs both a judge and people labelled relevant / not relevant,
  the confusion matrix (people's label = truth, "relevant" = positive), sensitivity (share of
  people's false negatives the judge flags), specificity, accuracy and Cohen's kappa. Unsure
  answers of either side are counted, never compared.
- ``people_and_judge``: three estimates of the same sample's rate side by side. ``judge``: the
  judge's labels alone (every judged negative; biased by its errors); ``people``: the people's
  labels alone (``estimate_rates``: Wilson, stratified, as the rest); ``ppi``: the judge's labels
  on the whole sample corrected by its errors on the people's part (``stats.ppi``: PPI++,
  finite-population aware, never wider than people-only), per rank bucket and headline. ``used``
  says which of them is the headline: PPI when it can be computed, else the people's when they
  labelled, else the judge's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from recallwatch.mining.estimate import FN, NOT_FN, UNSURE, RateEstimate, estimate_rates
from recallwatch.mining.sampling import Sample
from recallwatch.stats import Interval
from recallwatch.stats.ppi import PPIResult, ppi_rate, ppi_stratified

__all__ = [
    "BucketPPI",
    "JudgeAgreement",
    "PeopleAndJudge",
    "judge_agreement",
    "people_and_judge",
]

Outcomes = npt.NDArray[np.int8]


@dataclass(frozen=True)
class JudgeAgreement:
    """How one judge agrees with people on the pairs both labelled."""

    judge: str
    #: Pairs both labelled relevant / not relevant.
    pairs: int
    #: people relevant & judge relevant, people relevant & judge not, and so on.
    true_positive: int
    false_negative: int
    false_positive: int
    true_negative: int
    #: Pairs people labelled that the judge was unsure about (or did not judge), and vice versa.
    judge_unsure: int
    people_unsure: int

    @property
    def sensitivity(self) -> float | None:
        """Share of the people's false negatives the judge calls relevant."""
        pos = self.true_positive + self.false_negative
        return self.true_positive / pos if pos else None

    @property
    def specificity(self) -> float | None:
        """Share of the people's true negatives the judge calls not relevant."""
        neg = self.true_negative + self.false_positive
        return self.true_negative / neg if neg else None

    @property
    def accuracy(self) -> float | None:
        """Share of pairs where the judge and people agree."""
        return (self.true_positive + self.true_negative) / self.pairs if self.pairs else None

    @property
    def kappa(self) -> float | None:
        """Cohen's kappa of the judge and people (None: chance agreement is certain)."""
        n = self.pairs
        if n == 0:
            return None
        judge_pos = (self.true_positive + self.false_positive) / n
        people_pos = (self.true_positive + self.false_negative) / n
        chance = judge_pos * people_pos + (1 - judge_pos) * (1 - people_pos)
        if chance >= 1.0:
            return None
        observed = (self.true_positive + self.true_negative) / n
        return (observed - chance) / (1 - chance)

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "judge": self.judge,
            "pairs": self.pairs,
            "confusion": {
                "people_relevant": {
                    "judge_relevant": self.true_positive,
                    "judge_not_relevant": self.false_negative,
                },
                "people_not_relevant": {
                    "judge_relevant": self.false_positive,
                    "judge_not_relevant": self.true_negative,
                },
            },
            "sensitivity": self.sensitivity,
            "specificity": self.specificity,
            "accuracy": self.accuracy,
            "kappa": self.kappa,
            "judge_unsure": self.judge_unsure,
            "people_unsure": self.people_unsure,
        }


def judge_agreement(judge: Outcomes, people: Outcomes, *, name: str) -> JudgeAgreement:
    """The confusion matrix and agreement of a judge with people, pair by pair."""
    j, p = np.asarray(judge), np.asarray(people)
    if j.shape != p.shape:
        raise ValueError("one judge outcome and one people outcome per pair are needed")
    both = (j >= 0) & (p >= 0)
    return JudgeAgreement(
        name,
        int(both.sum()),
        int(((p == FN) & (j == FN)).sum()),
        int(((p == FN) & (j == NOT_FN)).sum()),
        int(((p == NOT_FN) & (j == FN)).sum()),
        int(((p == NOT_FN) & (j == NOT_FN)).sum()),
        int(((p >= 0) & (j < 0)).sum()),
        int(((p == UNSURE) & (j >= 0)).sum()),
    )


@dataclass(frozen=True)
class BucketPPI:
    """The prediction-powered rate of one rank bucket."""

    label: str
    population: int
    result: PPIResult | None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        out: dict[str, Any] = {"bucket": self.label, "population": self.population}
        out.update(
            self.result.as_dict() if self.result is not None else {"rate": None, "note": self.note}
        )
        return out


@dataclass(frozen=True)
class PeopleAndJudge:
    """The judge-only, people-only and prediction-powered rates of one sample, and which is used."""

    judge: str
    agreement: list[JudgeAgreement]
    judge_only: RateEstimate
    people_only: RateEstimate | None
    ppi: Interval | None
    ppi_people_only: Interval | None
    ppi_buckets: list[BucketPPI]
    #: ``ppi``, ``people`` or ``judge``: the estimate the audit's headline uses.
    used: str
    why: str
    notes: list[str] = field(default_factory=list)

    @property
    def headline(self) -> Interval | None:
        """The rate ``used`` names."""
        if self.used == "ppi":
            return self.ppi
        if self.used == "people" and self.people_only is not None:
            return self.people_only.best
        return self.judge_only.best

    @property
    def people_interval(self) -> Interval | None:
        """The people-only rate shown beside PPI: of the same design as the PPI headline (the
        people's labels alone, overall Wilson with the finite-population correction) when PPI
        was computed, else the people's headline (``estimate_rates``)."""
        if self.ppi_people_only is not None:
            return self.ppi_people_only
        return None if self.people_only is None else self.people_only.best

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""

        def iv(i: Interval | None) -> dict[str, Any] | None:
            return None if i is None else i.as_dict()

        return {
            "judge": self.judge,
            "used": self.used,
            "why": self.why,
            "headline": iv(self.headline),
            "estimates": {
                "ppi": iv(self.ppi),
                "people": iv(self.people_interval),
                "judge": iv(self.judge_only.best),
            },
            "ppi_buckets": [b.as_dict() for b in self.ppi_buckets],
            "people_rates": None if self.people_only is None else self.people_only.as_dict(),
            "judge_rates": self.judge_only.as_dict(),
            "agreement": [a.as_dict() for a in self.agreement],
            "notes": list(self.notes),
        }


def _ppi_of(
    judge: Outcomes, people: Outcomes, population: int, confidence: float
) -> PPIResult | None:
    labelled = (people >= 0) & (judge >= 0)
    unlabelled = (people < 0) & (judge >= 0)
    if labelled.sum() < 2 or unlabelled.sum() < 1:
        return None
    y = (people[labelled] == FN).astype(np.float64)
    fl = (judge[labelled] == FN).astype(np.float64)
    fu = (judge[unlabelled] == FN).astype(np.float64)
    return ppi_rate(y, fl, fu, population=population, confidence=confidence)


def people_and_judge(
    sample: Sample,
    judge: Outcomes,
    people: Outcomes,
    labels: list[str],
    *,
    judge_name: str,
    members: dict[str, Outcomes] | None = None,
    confidence: float = 0.95,
) -> PeopleAndJudge:
    """Judge-only, people-only and PPI rates of a sample both labelled (see the module).

    ``judge`` and ``people`` are outcomes per sampled row; ``members`` the outcomes of each
    judge of an ensemble, for one agreement row each (the combined judge's row comes first).
    """
    judge_only = estimate_rates(sample, judge, labels, confidence=confidence)
    labelled = int((people >= 0).sum())
    agreement = [judge_agreement(judge, people, name=judge_name)]
    for name, out in (members or {}).items():
        agreement.append(judge_agreement(out, people, name=name))
    if labelled == 0:
        return PeopleAndJudge(
            judge_name,
            agreement,
            judge_only,
            None,
            None,
            None,
            [],
            "judge",
            "no people's label in the sample yet: the judge's labels alone",
        )
    people_only = estimate_rates(sample, people, labels, confidence=confidence)
    notes: list[str] = []
    buckets: list[BucketPPI] = []
    results: list[PPIResult] = []
    weights: list[int] = []
    missing: list[str] = []
    for b, label in enumerate(labels):
        pop = int(sample.bucket_population[b])
        if pop == 0:
            continue
        mask = sample.bucket == b
        r = _ppi_of(judge[mask], people[mask], pop, confidence)
        buckets.append(
            BucketPPI(label, pop, r, None if r is not None else "needs 2 pairs both labelled")
        )
        if r is None:
            missing.append(label)
        else:
            results.append(r)
            weights.append(pop)
    ppi: Interval | None = None
    ppi_people: Interval | None = None
    if sample.method == "uniform":  # self-weighting: one PPI over the whole sample
        whole = _ppi_of(judge, people, sample.population, confidence)
        if whole is not None:
            ppi, ppi_people = whole.interval, whole.people_only
    elif results and not missing:
        ppi, ppi_people = ppi_stratified(results, weights, confidence=confidence)
    elif missing:
        notes.append(
            "stratified sample: bucket(s) " + ", ".join(missing) + " have fewer than 2 pairs "
            "labelled by people and the judge, so there is no prediction-powered headline"
        )
    unsure = int((people == UNSURE).sum())
    if unsure:
        notes.append(
            f"{unsure} pair(s) people marked unsure count as unlabelled by people (the judge's "
            "label stands for them)"
        )
    if ppi is not None:
        return PeopleAndJudge(
            judge_name,
            agreement,
            judge_only,
            people_only,
            ppi,
            ppi_people,
            buckets,
            "ppi",
            f"prediction-powered: the judge's labels on all {int((judge >= 0).sum())} judged "
            f"negatives, corrected by its errors on the {labelled} people labelled",
            notes,
        )
    return PeopleAndJudge(
        judge_name,
        agreement,
        judge_only,
        people_only,
        None,
        None,
        buckets,
        "people",
        "too few pairs labelled by both for a prediction-powered estimate: the people's "
        "labels alone",
        notes,
    )
