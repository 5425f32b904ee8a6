"""Human review of a mined set, label by label: the seeded sample, the live estimate, agreement.

Pure: no store, no HTTP. The review pages and ``recallwatch review`` wire it to the labels.

- ``plan_review``: the sample to review, in order. It is the seeded sample ``fn-rate`` draws
  (``audit.draw`` with the same seed, size and buckets), so the labels of its first k items are a
  random sample of the mined set and stopping early is valid; ``fn-rate --oracle labels:FILE``
  with the same ``--seed`` and ``--sample`` reads an export back to the same estimate.
- ``live_estimate``: the rates of ``estimate.estimate_rates`` (the headline, per rank bucket)
  and the SPRT of ``stats.sequential`` over the labels so far. A pair labelled by several
  reviewers counts as their label when they agree and as unsure when they do not (the
  ``labels:`` oracle's rule).
- ``agreement``: Cohen's kappa over the pairs with two labels (the first two reviewers of each
  pair as the two raters), and the disagreements.
- ``write_review_labels``: CSV or JSONL that the ``labels:`` oracle reads.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from recallwatch.mining.audit import AuditConfig, DrawnSample, PairBuilder, draw, outcome_codes
from recallwatch.mining.cells import neutralise
from recallwatch.mining.corpus import Corpus
from recallwatch.mining.estimate import (
    MISSING,
    RateEstimate,
    estimate_rates,
    sequential_decision,
)
from recallwatch.mining.mined import MinedSet
from recallwatch.mining.oracles.base import Judgement, Label
from recallwatch.mining.oracles.labels import MemoryLabelStore, ReviewLabel
from recallwatch.stats import SPRTDesign

__all__ = [
    "REVIEW_COLUMNS",
    "Agreement",
    "LiveEstimate",
    "ReviewItem",
    "ReviewPlan",
    "agreement",
    "judge_outcomes",
    "live_estimate",
    "people_outcomes",
    "plan_review",
    "shared_terms",
    "text_segments",
    "write_review_labels",
]

REVIEW_COLUMNS = ["query_id", "doc_id", "label", "reviewer", "time", "sample", "rank"]
_WORD = re.compile(r"\w+", re.UNICODE)
_STOP = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "how",
        "in",
        "is",
        "it",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
    }
)


@dataclass(frozen=True)
class ReviewItem:
    """One sampled negative, at its place in the review order."""

    position: int
    query_id: str
    doc_id: str
    rank: int
    score: float | None
    bucket: str


@dataclass(frozen=True)
class ReviewPlan:
    """The seeded sample to review and what it was drawn from."""

    mined: MinedSet
    corpus: Corpus | None
    config: AuditConfig
    drawn: DrawnSample
    items: list[ReviewItem]

    def view(self, position: int) -> dict[str, Any]:
        """Everything the page shows of one item: texts, positives, shared terms marked."""
        item = self.items[position]
        table, row = self.drawn.table, int(self.drawn.sample.rows[position])
        qi = int(table.query_index[row])
        builder = PairBuilder(self.mined, self.corpus)
        pair = builder.pair(qi, item.doc_id)
        query = pair.query_text or ""
        positives = [
            {"doc_id": p, "segments": text_segments(builder.doc_text(p) or "", query)}
            for p in self.mined.queries[qi].positive_ids
        ]
        return {
            "position": position,
            "query_id": item.query_id,
            "doc_id": item.doc_id,
            "rank": item.rank,
            "score": item.score,
            "bucket": item.bucket,
            "query": query,
            "positives": positives,
            "negative": text_segments(pair.doc_text or "", query),
            "shared_terms": sorted(shared_terms(query, pair.doc_text or "")),
        }


def plan_review(mined: MinedSet, corpus: Corpus | None, config: AuditConfig) -> ReviewPlan:
    """The review order: ``fn-rate``'s seeded sample of every mined negative (no control)."""
    cfg = replace(config, control_size=0)
    drawn = draw(mined, corpus, None, cfg)
    table, sample = drawn.table, drawn.sample
    labels = cfg.buckets.labels
    items = []
    for i, row in enumerate(sample.rows):
        qi, ni = int(table.query_index[row]), int(table.negative_index[row])
        neg = mined.queries[qi].negatives[ni]
        items.append(
            ReviewItem(
                i,
                mined.queries[qi].query_id,
                neg.doc_id,
                int(table.rank[row]),
                neg.score,
                labels[int(sample.bucket[i])],
            )
        )
    return ReviewPlan(mined, corpus, cfg, drawn, items)


def shared_terms(query: str, text: str) -> set[str]:
    """Lower-cased words of the query that the text contains too (stop words left out)."""
    words = {w.lower() for w in _WORD.findall(query)} - _STOP
    return words & {w.lower() for w in _WORD.findall(text)}


def text_segments(text: str, query: str) -> list[tuple[str, bool]]:
    """``text`` cut into (piece, is a shared term) for highlighting; the pieces join to it."""
    terms = shared_terms(query, text)
    out: list[tuple[str, bool]] = []
    last = 0
    for m in _WORD.finditer(text):
        if m.group().lower() in terms:
            if m.start() > last:
                out.append((text[last : m.start()], False))
            out.append((m.group(), True))
            last = m.end()
    if last < len(text):
        out.append((text[last:], False))
    return out


@dataclass(frozen=True)
class LiveEstimate:
    """The estimate from the labels so far, and whether the SPRT has decided."""

    rates: RateEstimate
    sprt: dict[str, Any]
    status: str
    labelled: int

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        best = self.rates.best
        return {
            "labelled_items": self.labelled,
            "judged": self.rates.judged,
            "false_negatives": self.rates.false_negatives,
            "unsure": self.rates.unsure,
            "headline": None if best is None else best.as_dict(),
            "rates": self.rates.as_dict(),
            "sprt": self.sprt,
            "status": self.status,
        }


def _status(sprt: dict[str, Any]) -> str:
    decision = sprt.get("decision")
    if decision == "too_high":
        return f"decided: too high after {sprt['labels']} labels"
    if decision == "acceptable":
        return f"decided: acceptable after {sprt['labels']} labels"
    if decision is None:
        return f"n/a: {sprt.get('note') or 'no SPRT'}"
    return "keep going"


def people_outcomes(plan: ReviewPlan, labels: Iterable[ReviewLabel]) -> npt.NDArray[np.int8]:
    """The people's outcome of each item of the plan (``outcome_codes``; -2: unlabelled).

    A pair several reviewers labelled counts as their label when they agree, else as unsure.
    """
    store = MemoryLabelStore(labels)
    return outcome_codes([Judgement(store.get(i.query_id, i.doc_id)) for i in plan.items])


def judge_outcomes(plan: ReviewPlan, pairs: Iterable[Sequence[Any]]) -> npt.NDArray[np.int8] | None:
    """A judge's outcome of each item of the plan from its ``(query id, doc id, code)`` list.

    None when the judge's list lacks an item of the plan (its audit drew another sample): a
    prediction-powered estimate needs the judge's label of every item people may label.
    """
    codes: dict[tuple[str, str], int] = {}
    for p in pairs:
        if len(p) != 3:
            return None
        codes[(str(p[0]), str(p[1]))] = int(p[2])
    out = np.empty(len(plan.items), dtype=np.int8)
    for k, item in enumerate(plan.items):
        code = codes.get((item.query_id, item.doc_id))
        if code is None:
            return None
        out[k] = code
    return out


def live_estimate(
    plan: ReviewPlan, labels: Iterable[ReviewLabel], design: SPRTDesign | None = None
) -> LiveEstimate:
    """Rates and SPRT status from the labels of the plan's items (others are ignored)."""
    outcomes = people_outcomes(plan, labels)
    rates = estimate_rates(
        plan.drawn.sample, outcomes, plan.config.buckets.labels, confidence=plan.config.confidence
    )
    seq = sequential_decision(plan.drawn.sample, outcomes, design or plan.config.sprt).as_dict()
    return LiveEstimate(rates, seq, _status(seq), int((outcomes != MISSING).sum()))


@dataclass(frozen=True)
class Agreement:
    """Agreement of reviewers on the pairs two of them labelled."""

    pairs: int
    agreeing: int
    kappa: float | None
    disagreements: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "pairs": self.pairs,
            "agreeing": self.agreeing,
            "kappa": self.kappa,
            "disagreements": list(self.disagreements),
        }


def agreement(labels: Iterable[ReviewLabel]) -> Agreement:
    """Cohen's kappa over pairs with two labels (first and second reviewer), and disagreements."""
    per_pair: dict[tuple[str, str], dict[str, ReviewLabel]] = {}
    for lab in sorted(labels, key=lambda x: x.time or datetime.min.replace(tzinfo=UTC)):
        per_pair.setdefault((lab.query_id, lab.doc_id), {})[lab.reviewer or ""] = lab
    first: list[Label] = []
    second: list[Label] = []
    disagreements = []
    for (qid, did), by in per_pair.items():
        if len(by) < 2:
            continue
        ordered = list(by.values())
        first.append(ordered[0].label)
        second.append(ordered[1].label)
        if len({lab.label for lab in ordered}) > 1:
            disagreements.append(
                {"query_id": qid, "doc_id": did, "labels": {r: v.label for r, v in by.items()}}
            )
    n = len(first)
    if n == 0:
        return Agreement(0, 0, None, [])
    agree = sum(a == b for a, b in zip(first, second, strict=True))
    cats: tuple[Label, ...] = ("relevant", "not_relevant", "unsure")
    p1 = np.array([first.count(c) / n for c in cats])
    p2 = np.array([second.count(c) / n for c in cats])
    chance = float((p1 * p2).sum())
    observed = agree / n
    kappa = None if chance >= 1.0 else (observed - chance) / (1.0 - chance)
    return Agreement(n, agree, kappa, disagreements)


def _iso(t: datetime | None) -> str:
    if t is None:
        return ""
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def write_review_labels(
    path: Path | str, labels: Sequence[ReviewLabel], ranks: dict[tuple[str, str], int]
) -> Path:
    """Write labels as CSV (``.csv``) or JSON lines (``.jsonl``) for the ``labels:`` oracle.

    The ``sample`` column marks them as labels of the seeded sample (see ``oracles.labels``).
    The file is replaced atomically (written beside it, then renamed).
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "query_id": lab.query_id,
            "doc_id": lab.doc_id,
            "label": lab.label,
            "reviewer": lab.reviewer or "",
            "time": _iso(lab.time),
            "sample": "mined",
            "rank": ranks.get((lab.query_id, lab.doc_id), ""),
        }
        for lab in labels
    ]
    tmp = p.with_name(p.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        if p.suffix.lower() in (".jsonl", ".ndjson", ".json"):
            fh.writelines(json.dumps(r) + "\n" for r in rows)
        else:
            writer = csv.DictWriter(fh, fieldnames=REVIEW_COLUMNS)
            writer.writeheader()
            # A reviewer named "=HYPERLINK(...)" must not be a formula in a spreadsheet.
            writer.writerows({k: neutralise(v) for k, v in r.items()} for r in rows)
    tmp.replace(p)
    return p
