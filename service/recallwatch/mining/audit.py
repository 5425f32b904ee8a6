"""An FN-rate audit of a mined set, top to bottom: sample, judge, estimate, recommend.

This is the one place that wires the pure pieces (sampling, estimates, recommendation) to an
oracle, which may do I/O (a model, an endpoint). The random generator is seeded from the config,
so an audit is reproducible.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from recallwatch.errors import InputError
from recallwatch.mining.corpus import Corpus
from recallwatch.mining.curve import FilterCurve, filter_curve
from recallwatch.mining.estimate import (
    FN,
    MISSING,
    NOT_FN,
    UNSURE,
    Amplification,
    RateEstimate,
    SequentialDecision,
    estimate_amplification,
    estimate_rates,
    sequential_decision,
)
from recallwatch.mining.mined import MinedSet, NegativeTable
from recallwatch.mining.oracles.base import Judgement, Oracle, OracleInfo, Pair
from recallwatch.mining.people import PeopleAndJudge, people_and_judge
from recallwatch.mining.recommend import Criterion, Recommendation, recommend
from recallwatch.mining.remine import Prescription, prescribe
from recallwatch.mining.sampling import (
    Allocation,
    ControlSample,
    RankBuckets,
    Sample,
    SamplingMethod,
    control_sample,
    draw_sample,
)
from recallwatch.mining.sizing import audit_sample_size
from recallwatch.stats import Interval, SPRTDesign

__all__ = [
    "AuditConfig",
    "DrawnSample",
    "FNRateAudit",
    "PairBuilder",
    "draw",
    "outcome_codes",
    "prescribe_remining",
    "run_audit",
    "training_alternative",
]

#: How a recommendation note naming the training-time alternative starts (``audit_output``).
TRAINING_ALTERNATIVE = "training-time alternative:"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditConfig:
    """How to sample, estimate and recommend."""

    sample_size: int | None = None
    #: Derive the sample size from a target Wilson half-width instead (e.g. 0.025).
    half_width: float | None = None
    #: The rate assumed when deriving the size from a half-width (0.5 is the worst case).
    assumed_rate: float = 0.5
    sampling: SamplingMethod = "uniform"
    allocation: Allocation = "proportional"
    min_per_bucket: int = 20
    buckets: RankBuckets = field(default_factory=RankBuckets)
    #: Random (query, document) pairs for the amplification factor; None: as many as the sample.
    control_size: int | None = None
    seed: int = 0
    confidence: float = 0.95
    target: float = 0.05
    criterion: Criterion = "upper"
    sprt: SPRTDesign = field(default_factory=SPRTDesign)

    def __post_init__(self) -> None:
        if self.sample_size is not None and self.half_width is not None:
            raise ValueError("give a sample size or a half-width, not both")
        if self.sample_size is not None and self.sample_size < 1:
            raise ValueError("the sample size must be positive")

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "sample_size": self.sample_size,
            "half_width": self.half_width,
            "assumed_rate": self.assumed_rate,
            "sampling": self.sampling,
            "allocation": self.allocation if self.sampling == "stratified" else None,
            "min_per_bucket": self.min_per_bucket if self.sampling == "stratified" else None,
            "buckets": self.buckets.labels,
            "control_size": self.control_size,
            "seed": self.seed,
            "confidence": self.confidence,
            "target": self.target,
            "criterion": self.criterion,
        }


class PairBuilder:
    """Turn rows of a negative table (and control pairs) into ``Pair`` objects with texts."""

    def __init__(self, mined: MinedSet, corpus: Corpus | None) -> None:
        self.mined = mined
        self.corpus = corpus

    def query_text(self, qi: int) -> str | None:
        """The query's text: from the mined set, else from queries.jsonl."""
        q = self.mined.queries[qi]
        if q.query_text is not None:
            return q.query_text
        return None if self.corpus is None else self.corpus.query_texts.get(q.query_id)

    def doc_text(self, doc_id: str) -> str | None:
        """A document's text, when the corpus has it."""
        if self.corpus is None or doc_id not in self.corpus:
            return None
        return self.corpus.text(doc_id)

    def pair(self, qi: int, doc_id: str) -> Pair:
        """The pair of query ``qi`` and a document."""
        q = self.mined.queries[qi]
        texts = tuple(t for t in (self.doc_text(p) for p in q.positive_ids) if t is not None)
        return Pair(
            q.query_id,
            doc_id,
            self.query_text(qi),
            self.doc_text(doc_id),
            q.positive_ids if len(texts) == len(q.positive_ids) else (),
            texts if len(texts) == len(q.positive_ids) else (),
        )

    def rows(self, table: NegativeTable, rows: npt.NDArray[np.int64]) -> list[Pair]:
        """Pairs of the given table rows."""
        out = []
        for r in rows:
            qi = int(table.query_index[r])
            doc = self.mined.queries[qi].negatives[int(table.negative_index[r])].doc_id
            out.append(self.pair(qi, doc))
        return out


def outcome_codes(judgements: Sequence[Judgement]) -> npt.NDArray[np.int8]:
    """Code judgements as outcomes: 1 relevant (FN), 0 not relevant, -1 unsure, -2 none."""
    code = {"relevant": FN, "not_relevant": NOT_FN, "unsure": UNSURE, None: MISSING}
    return np.fromiter((code[j.label] for j in judgements), dtype=np.int8, count=len(judgements))


def _require_texts(pairs: Sequence[Pair], oracle: Oracle) -> None:
    if not oracle.needs_text:
        return
    for p in pairs:
        if p.query_text is None:
            raise InputError(
                f"oracle {oracle.info.spec!r} needs query texts, but query {p.query_id!r} has "
                "none: add it to queries.jsonl of the corpus or a 'query' field to the mined set"
            )
        if p.doc_text is None:
            raise InputError(f"document {p.doc_id!r} has no text in the corpus")


@dataclass(frozen=True)
class DrawnSample:
    """The mined sample and the control sample of an audit, before judging."""

    table: NegativeTable
    sample: Sample
    control: ControlSample
    eligible_negatives: int
    size_note: str
    #: The rows the oracle can judge (the sampling frame); None: every row.
    eligible: npt.NDArray[np.bool_] | None = None


def draw(
    mined: MinedSet,
    corpus: Corpus | None,
    oracle: Oracle | None,
    config: AuditConfig,
) -> DrawnSample:
    """Draw the mined and control samples (restricted to what the oracle can judge).

    The two samples use independent streams of the seed, so the control pairs do not depend on
    which negatives the oracle can judge: a sheet exported without an oracle and labelled later is
    drawn again identically.
    """
    rng = np.random.default_rng([config.seed, 0])
    control_rng = np.random.default_rng([config.seed, 1])
    table = mined.table()
    if len(table) == 0:
        raise InputError("the mined set has no negative to sample", path=mined.path)
    eligible: npt.NDArray[np.bool_] | None = None
    if oracle is not None:
        qids = [mined.queries[int(i)].query_id for i in table.query_index]
        dids = [
            mined.queries[int(q)].negatives[int(n)].doc_id
            for q, n in zip(table.query_index, table.negative_index, strict=True)
        ]
        eligible = oracle.eligible(qids, dids)
    n_eligible = len(table) if eligible is None else int(eligible.sum())
    if n_eligible == 0:
        assert oracle is not None
        raise InputError(
            f"empty sample: oracle {oracle.info.spec!r} can judge none of the "
            f"{len(table)} mined negatives (for qrels: no mined query is audited; for labels: "
            "no labelled pair is in the mined set — are the ids the same?)",
            path=mined.path,
        )
    sized = audit_sample_size(
        n_eligible,
        free_labels=0 if oracle is None else oracle.info.free_labels,
        sample_size=config.sample_size,
        half_width=config.half_width,
        assumed_rate=config.assumed_rate,
        confidence=config.confidence,
        judge="the judge" if oracle is None else f"the judge ({oracle.info.spec})",
    )
    size, note = sized.size, sized.note
    bucket = config.buckets.assign(table.rank)
    sample = draw_sample(
        bucket,
        eligible,
        size,
        rng,
        num_buckets=len(config.buckets),
        method=config.sampling,
        allocation=config.allocation,
        min_per_bucket=config.min_per_bucket,
        seed=config.seed,
    )
    control = ControlSample(np.zeros(0, np.int64), np.zeros(0, np.int64))
    control_size = size if config.control_size is None else config.control_size
    if corpus is not None and control_size > 0:
        positives = [
            {corpus.position(p) for p in q.positive_ids if p in corpus} for q in mined.queries
        ]
        eligible_queries = None
        if eligible is not None and oracle is not None and oracle.judges_whole_queries:
            eligible_queries = np.zeros(len(mined.queries), dtype=bool)
            eligible_queries[table.query_index[eligible]] = True
        control = control_sample(
            positives, len(corpus), control_size, control_rng, eligible_queries=eligible_queries
        )
    return DrawnSample(table, sample, control, n_eligible, note, eligible)


@dataclass(frozen=True)
class FNRateAudit:
    """Everything an FN-rate audit found, and what judged it."""

    oracle: OracleInfo
    config: AuditConfig
    eligible_negatives: int
    total_negatives: int
    size_note: str
    rates: RateEstimate
    amplification: Amplification
    sequential: SequentialDecision
    recommendation: Recommendation
    #: The filter curve per family (the recommendation is a point on it).
    curve: FilterCurve | None = None
    #: Where people labelled part of the sample too: judge-only, people-only and PPI rates.
    people: PeopleAndJudge | None = None
    #: The judge's outcome of each sampled negative, in the sample's order: (query id, doc id,
    #: code of ``outcome_codes``). Not in ``as_dict`` (the daemon stores it, ``judged_sample``).
    judged: tuple[tuple[str, str, int], ...] = ()

    def judged_sample(self) -> dict[str, Any]:
        """The judge's labels of the sample, for combining with people's labels later (PPI)."""
        return {"judge": self.oracle.spec, "pairs": [list(p) for p in self.judged]}

    @property
    def headline(self) -> Interval | None:
        """The rate to report: ``people.used``'s when people labelled, else ``rates.best``."""
        if self.people is not None and self.people.headline is not None:
            return self.people.headline
        return self.rates.best

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            **({} if self.curve is None else {"curve": self.curve.as_dict()}),
            **({} if self.people is None else {"people": self.people.as_dict()}),
            "oracle": self.oracle.as_dict(),
            "config": self.config.as_dict(),
            "total_negatives": self.total_negatives,
            "eligible_negatives": self.eligible_negatives,
            "sample_size": self.size_note,
            "rates": self.rates.as_dict(),
            "amplification": self.amplification.as_dict(),
            "sprt": self.sequential.as_dict(),
            "recommendation": self.recommendation.as_dict(),
        }


def _scorers(info: OracleInfo) -> set[str]:
    found = {str(info.details.get("scorer"))} if info.kind == "model" else set()
    for m in info.members:
        found |= _scorers(m)
    return found


def training_alternative(info: OracleInfo) -> str | None:
    """Where the judge is a model: sentence-transformers' GISTEmbedLoss, and when it applies.

    ``GISTEmbedLoss(model, guide)`` drops, during training, the in-batch negatives its guide
    model scores above the positive (``margin_strategy`` / ``margin`` as the filters here), so
    nothing is removed from the mined set. Its guide must be a SentenceTransformer (bi-encoder).
    """
    scorers = _scorers(info)
    if not scorers:
        return None
    when = (
        "it applies when training with in-batch negatives (MultipleNegativesRankingLoss-style "
        "data: anchor, positive, hard negatives) and a second model fits in training memory; "
        "it keeps the hard negatives a filter would drop"
    )
    if scorers - {"cross-encoder"}:  # a bi-encoder judge (its scorer is named after it)
        return (
            f"{TRAINING_ALTERNATIVE} instead of filtering, train with sentence-transformers' "
            "GISTEmbedLoss(model, guide=<this judge>, margin_strategy='relative', margin=...) so "
            f"the judge drops likely false negatives from each batch; {when}"
        )
    return (
        f"{TRAINING_ALTERNATIVE} sentence-transformers' GISTEmbedLoss drops likely false "
        "negatives from each batch during training, but its guide must be a bi-encoder "
        "(SentenceTransformer), not this cross-encoder: use a strong bi-encoder as the guide, or "
        f"keep filtering with the cross-encoder; {when}"
    )


def prescribe_remining(
    mined: MinedSet,
    pool: MinedSet,
    corpus: Corpus | None,
    oracle: Oracle,
    config: AuditConfig,
) -> Prescription:
    """Judge a sample of the candidate pool (by rank bucket) and prescribe a re-mining."""
    pool_config = replace(config, sampling="stratified", control_size=0)
    drawn = draw(pool, corpus, oracle, pool_config)
    pairs = PairBuilder(pool, corpus).rows(drawn.table, drawn.sample.rows)
    _require_texts(pairs, oracle)
    log.info("judging %d sampled pool candidates with %s", len(pairs), oracle.info.spec)
    outcomes = outcome_codes(oracle.judge(pairs))
    judged = outcomes >= 0
    num_negatives = max((len(q.negatives) for q in mined.queries), default=1)
    prescription = prescribe(
        drawn.table,
        drawn.sample.rows[judged],
        outcomes[judged] == FN,
        num_negatives=max(num_negatives, 1),
        buckets=config.buckets,
        eligible=drawn.eligible,
        target=config.target,
        confidence=config.confidence,
    )
    return replace(prescription, notes=[f"pool sample: {drawn.size_note}", *prescription.notes])


def run_audit(
    mined: MinedSet,
    corpus: Corpus | None,
    oracle: Oracle,
    config: AuditConfig | None = None,
    *,
    people: Oracle | None = None,
    pool: MinedSet | None = None,
) -> FNRateAudit:
    """Sample the mined set, judge the sample with ``oracle``, and estimate and recommend.

    ``people``: human labels (a ``labels:`` oracle, the review's labels) looked up for the
    sampled pairs they cover, without restricting the sample: the audit then reports the judge's,
    the people's and the prediction-powered rates side by side, the judge's agreement with
    people, and ``headline`` is the one ``people.used`` names (``mining.people``).

    ``pool``: the candidate pool ``mine()`` recorded beside the mined set; when the mined set
    is over the target, a sample of it is judged too and the recommendation prescribes a
    re-mining (``mining.remine``).
    """
    cfg = config or AuditConfig()
    drawn = draw(mined, corpus, oracle, cfg)
    builder = PairBuilder(mined, corpus)
    pairs = builder.rows(drawn.table, drawn.sample.rows)
    _require_texts(pairs, oracle)
    log.info("judging %d sampled negatives with %s", len(pairs), oracle.info.spec)
    judgements = oracle.judge(pairs)
    outcomes = outcome_codes(judgements)
    rates = estimate_rates(drawn.sample, outcomes, cfg.buckets.labels, confidence=cfg.confidence)

    control_outcomes = np.zeros(0, dtype=np.int8)
    if drawn.control.query_index.size:
        assert corpus is not None
        cpairs = [
            builder.pair(int(q), corpus.doc_ids[int(d)])
            for q, d in zip(drawn.control.query_index, drawn.control.doc_position, strict=True)
        ]
        ok = oracle.eligible([p.query_id for p in cpairs], [p.doc_id for p in cpairs])
        judged_idx = np.arange(len(cpairs)) if ok is None else np.flatnonzero(ok)
        control_outcomes = np.full(len(cpairs), MISSING, dtype=np.int8)
        if judged_idx.size:
            chosen = [cpairs[int(i)] for i in judged_idx]
            _require_texts(chosen, oracle)
            log.info("judging %d control pairs", len(chosen))
            control_outcomes[judged_idx] = outcome_codes(oracle.judge(chosen))
    amplification = estimate_amplification(rates, control_outcomes, confidence=cfg.confidence)
    if not drawn.control.query_index.size:
        amplification = Amplification(
            rates.best,
            None,
            0,
            0,
            0,
            0,
            None,
            "no control sample (it needs the corpus, and --control > 0)",
        )
    sequential = sequential_decision(drawn.sample, outcomes, cfg.sprt)

    judged = outcomes >= 0
    rows = drawn.sample.rows[judged]
    recommendation = recommend(
        drawn.table,
        rows,
        outcomes[judged] == FN,
        buckets=cfg.buckets,
        eligible=drawn.eligible,
        target=cfg.target,
        criterion=cfg.criterion,
        confidence=cfg.confidence,
    )
    if pool is not None and recommendation.needed:
        recommendation = replace(
            recommendation, remining=prescribe_remining(mined, pool, corpus, oracle, cfg)
        )
    alternative = training_alternative(oracle.info) if recommendation.needed else None
    if alternative is not None:
        recommendation = replace(recommendation, notes=[*recommendation.notes, alternative])
    curve = filter_curve(
        drawn.table,
        rows,
        outcomes[judged] == FN,
        buckets=cfg.buckets,
        eligible=drawn.eligible,
        confidence=cfg.confidence,
        recommendation=recommendation,
    )
    with_people = (
        None
        if people is None
        else _with_people(drawn, pairs, judgements, outcomes, oracle, people, cfg)
    )
    return FNRateAudit(
        oracle.info,
        cfg,
        drawn.eligible_negatives,
        len(drawn.table),
        drawn.size_note,
        rates,
        amplification,
        sequential,
        recommendation,
        curve,
        with_people,
        tuple((p.query_id, p.doc_id, int(c)) for p, c in zip(pairs, outcomes, strict=True)),
    )


def _with_people(
    drawn: DrawnSample,
    pairs: list[Pair],
    judgements: Sequence[Judgement],
    outcomes: npt.NDArray[np.int8],
    oracle: Oracle,
    people: Oracle,
    cfg: AuditConfig,
) -> PeopleAndJudge:
    """The people's labels of the sampled pairs they cover, beside the judge's."""
    covered = people.eligible([p.query_id for p in pairs], [p.doc_id for p in pairs])
    idx = np.arange(len(pairs)) if covered is None else np.flatnonzero(covered)
    people_outcomes = np.full(len(pairs), MISSING, dtype=np.int8)
    if idx.size:
        people_outcomes[idx] = outcome_codes(people.judge([pairs[int(i)] for i in idx]))
    members: dict[str, npt.NDArray[np.int8]] = {}
    infos = oracle.info.members
    if infos and all(len(j.votes) == len(infos) for j in judgements):
        for m, info in enumerate(infos):
            members[info.spec] = outcome_codes([Judgement(j.votes[m]) for j in judgements])
    return people_and_judge(
        drawn.sample,
        outcomes,
        people_outcomes,
        cfg.buckets.labels,
        judge_name=oracle.info.spec,
        members=members,
        confidence=cfg.confidence,
    )
