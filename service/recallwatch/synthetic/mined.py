"""Simulated mined sets with a known false-negative rate per mining rank, for tests and demos.

Each query has ``negatives_per_query`` mined negatives at ranks 1..n. Whether the negative at rank
r is really relevant is drawn with the rate of r's bucket (default 25% at rank 1 falling to 2%
beyond rank 100), and ``random_rate`` of the rest of the corpus is relevant too (the label noise of
random negatives). Scores follow the ranks, and a false negative scores closer to the positive,
as real ones do, so margin filters have something to find.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from recallwatch.mining.corpus import Corpus
from recallwatch.mining.mined import ImportReport, MinedQuery, MinedSet, Negative
from recallwatch.mining.sampling import RankBuckets

__all__ = ["DEFAULT_BUCKET_RATES", "SimulatedSet", "simulate_mined_set"]

#: False-negative rate per default bucket: 1, 2-3, 4-10, 11-30, 31-100, >100.
DEFAULT_BUCKET_RATES = (0.25, 0.15, 0.10, 0.06, 0.03, 0.02)


@dataclass
class SimulatedSet:
    """A simulated mined set, its corpus, and the truth behind it."""

    mined: MinedSet
    corpus: Corpus
    #: Per query: every relevant document id (labelled positives excluded).
    relevant: dict[str, set[str]]
    #: Truth of each negative, in ``mined.table()`` order.
    is_false_negative: npt.NDArray[np.bool_]

    @property
    def true_rate(self) -> float:
        """The false-negative rate of the whole mined set."""
        return float(self.is_false_negative.mean())

    def write(self, root: Path | str) -> tuple[Path, Path, Path]:
        """Write the corpus dir, the mined set (recallwatch JSONL) and dense audit qrels."""
        from recallwatch.mining.mined import write_recallwatch_jsonl

        base = Path(root)
        corpus_dir = base / "corpus"
        corpus_dir.mkdir(parents=True, exist_ok=True)
        with (corpus_dir / "corpus.jsonl").open("w", encoding="utf-8") as fh:
            for did, title, body in zip(
                self.corpus.doc_ids, self.corpus.doc_titles, self.corpus.doc_bodies, strict=True
            ):
                fh.write(json.dumps({"_id": did, "title": title, "text": body}) + "\n")
        with (corpus_dir / "queries.jsonl").open("w", encoding="utf-8") as fh:
            for qid, text in self.corpus.query_texts.items():
                fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
        mined_path = base / "mined.jsonl"
        write_recallwatch_jsonl(self.mined, mined_path)
        qrels = base / "audit.tsv"
        with qrels.open("w", encoding="utf-8") as fh:
            fh.write("query-id\tcorpus-id\tscore\n")
            for q in self.mined.queries:
                for p in q.positive_ids:
                    fh.write(f"{q.query_id}\t{p}\t1\n")
                for d in sorted(self.relevant[q.query_id]):
                    fh.write(f"{q.query_id}\t{d}\t1\n")
        return corpus_dir, mined_path, qrels


def simulate_mined_set(
    *,
    num_queries: int = 300,
    negatives_per_query: int = 30,
    num_docs: int = 20_000,
    bucket_rates: tuple[float, ...] = DEFAULT_BUCKET_RATES,
    buckets: RankBuckets | None = None,
    random_rate: float = 0.005,
    seed: int = 0,
    path: Path | str = "simulated.jsonl",
) -> SimulatedSet:
    """Generate a mined set whose false negatives are known."""
    rb = buckets or RankBuckets()
    if len(bucket_rates) != len(rb):
        raise ValueError(f"need {len(rb)} bucket rates, got {len(bucket_rates)}")
    if negatives_per_query + 1 > num_docs:
        raise ValueError("the corpus is too small for that many negatives")
    rng = np.random.default_rng(seed)
    doc_ids = [f"d{i}" for i in range(num_docs)]
    corpus = Corpus(
        Path("simulated"),
        doc_ids,
        [f"Title {i}" for i in range(num_docs)],
        [f"body of document {i}" for i in range(num_docs)],
        {f"q{i}": f"query number {i}" for i in range(num_queries)},
    )
    ranks = np.arange(1, negatives_per_query + 1)
    rate_of_rank = np.asarray(bucket_rates)[rb.assign(ranks)]
    queries: list[MinedQuery] = []
    relevant: dict[str, set[str]] = {}
    truth: list[npt.NDArray[np.bool_]] = []
    for qi in range(num_queries):
        qid = f"q{qi}"
        picks = rng.choice(num_docs, size=negatives_per_query + 1, replace=False)
        positive, negs = doc_ids[int(picks[0])], [doc_ids[int(i)] for i in picks[1:]]
        fn = rng.random(negatives_per_query) < rate_of_rank
        pos_score = float(rng.uniform(0.70, 0.90))
        # Scores fall with rank; a false negative sits closer to the positive.
        gap = 0.03 + 0.25 * np.log(ranks) / np.log(max(negatives_per_query, 2))
        gap = gap * np.where(fn, 0.35, 1.0) + np.abs(rng.normal(0.0, 0.02, negatives_per_query))
        scores = pos_score - gap
        queries.append(
            MinedQuery(
                qid,
                (positive,),
                tuple(
                    Negative(d, int(r), round(float(s), 6))
                    for d, r, s in zip(negs, ranks, scores, strict=True)
                ),
                (round(pos_score, 6),),
            )
        )
        rel = {d for d, f in zip(negs, fn, strict=True) if f}
        extra = rng.binomial(num_docs, random_rate)
        mined_or_pos = set(negs) | {positive}
        for i in rng.choice(num_docs, size=extra, replace=False):
            if doc_ids[int(i)] not in mined_or_pos:
                rel.add(doc_ids[int(i)])
        relevant[qid] = rel
        truth.append(fn)
    report = ImportReport(
        rows=num_queries, queries=num_queries, negatives=num_queries * negatives_per_query
    )
    mined = MinedSet(queries, Path(path), "recallwatch", report)
    return SimulatedSet(mined, corpus, relevant, np.concatenate(truth))
