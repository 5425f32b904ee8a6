"""Must-show 2: SciFact train queries, negatives mined with all-MiniLM-L6-v2, judged end to end.

Mining treats only each query's first relevant document as its positive, as a trainer with
incomplete labels would; the other train-relevant documents that the model ranks high become
mined negatives — real false negatives. The train qrels then serve as the audit (the test qrels
are not used).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recallwatch.cli import main
from recallwatch.evaluation.search import ExactSearcher, prepare_embeddings, tiebreak_ranks
from recallwatch.heldout.beir import read_qrels
from recallwatch.mining.audit import AuditConfig, PairBuilder, draw, run_audit
from recallwatch.mining.corpus import load_corpus
from recallwatch.mining.formats import read_mined
from recallwatch.mining.oracles import JudgeRule, ModelOracle, QrelsOracle
from recallwatch.mining.oracles.model import open_scorer

DEPTH = 30

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scifact_mined(
    scifact_dir: Path, scifact_minilm: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, set[str]]]:
    """Mine DEPTH negatives per train query; return the file and each query's hidden positives."""
    raw = read_qrels(scifact_dir / "qrels" / "train.tsv")
    row_of = {q: i for i, q in enumerate(scifact_minilm.query_ids)}
    qids = [q for q in raw if q in row_of]
    ordered = {q: sorted((line, d) for d, (s, line) in raw[q].items() if s >= 1) for q in qids}
    known = {q: docs[0][1] for q, docs in ordered.items() if docs}
    hidden = {q: {d for _, d in docs[1:]} for q, docs in ordered.items()}
    qids = list(known)
    queries = prepare_embeddings(scifact_minilm.queries[[row_of[q] for q in qids]], "cosine")
    corpus = prepare_embeddings(scifact_minilm.corpus, "cosine")
    searcher = ExactSearcher(
        queries, DEPTH + 1, similarity="cosine", tiebreak=tiebreak_ranks(scifact_minilm.corpus_ids)
    )
    searcher.add(corpus, np.arange(corpus.shape[0], dtype=np.int64))
    top = searcher.result()
    position = {d: i for i, d in enumerate(scifact_minilm.corpus_ids)}
    path = tmp_path_factory.mktemp("scifact") / "mined.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i, q in enumerate(qids):
            pos = known[q]
            pos_score = float(queries[i] @ corpus[position[pos]])
            negatives = []
            for p, s in zip(top.positions[i], top.scores[i], strict=True):
                doc = scifact_minilm.corpus_ids[int(p)]
                if doc != pos and len(negatives) < DEPTH:
                    negatives.append({"doc_id": doc, "rank": len(negatives) + 1, "score": float(s)})
            line = {
                "query_id": q,
                "positive_ids": [pos],
                "positive_scores": [pos_score],
                "negatives": negatives,
            }
            fh.write(json.dumps(line) + "\n")
    return path, hidden


def test_qrels_oracle_end_to_end(
    scifact_dir: Path,
    scifact_mined: tuple[Path, dict[str, set[str]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, hidden = scifact_mined
    corpus = load_corpus(scifact_dir)
    mined = read_mined(path, corpus)
    assert len(mined.queries) > 700
    truth = np.array([n.doc_id in hidden[q.query_id] for q in mined.queries for n in q.negatives])
    assert truth.sum() > 20  # real false negatives were mined
    oracle = QrelsOracle.from_file(scifact_dir / "qrels" / "train.tsv")
    config = AuditConfig(sample_size=300, sampling="stratified", seed=3)
    audit = run_audit(mined, corpus, oracle, config)
    drawn = draw(mined, corpus, oracle, config)
    assert audit.rates.false_negatives == int(truth[drawn.sample.rows].sum())
    assert audit.oracle.kind == "qrels" and audit.rates.judged == drawn.sample.rows.size
    top = audit.rates.buckets[0]
    assert top.rate is not None and top.rate.estimate > audit.rates.buckets[3].rate.estimate  # type: ignore[union-attr]
    code = main(
        [
            "fn-rate",
            "--mined",
            str(path),
            "--corpus",
            str(scifact_dir),
            "--oracle",
            f"qrels:{scifact_dir / 'qrels' / 'train.tsv'}",
            "--sampling",
            "stratified",
            "--sample",
            "300",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "stratified by rank" in out and "recommendation" in out


def test_model_oracle_end_to_end(
    scifact_dir: Path,
    minilm_dir: Path,
    scifact_mined: tuple[Path, dict[str, set[str]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, _ = scifact_mined
    corpus = load_corpus(scifact_dir)
    mined = read_mined(path, corpus)
    # The real model, judging pairs, reproduces the scores the negatives were mined with.
    oracle = ModelOracle(
        open_scorer(minilm_dir), JudgeRule(relative_margin=0.05), spec=f"model:{minilm_dir}"
    )
    drawn = draw(mined, corpus, oracle, AuditConfig(sample_size=16, seed=1))
    pairs = PairBuilder(mined, corpus).rows(drawn.table, drawn.sample.rows)
    judged = oracle.judge(pairs)
    mined_scores = drawn.table.score[drawn.sample.rows]
    np.testing.assert_allclose([j.score for j in judged], mined_scores, atol=2e-3)
    np.testing.assert_allclose(
        [j.positive_score for j in judged], drawn.table.positive_score[drawn.sample.rows], atol=2e-3
    )
    out_json = tmp_path / "model.json"
    code = main(
        [
            "fn-rate",
            "--mined",
            str(path),
            "--corpus",
            str(scifact_dir),
            "--oracle",
            f"proxy:{minilm_dir}",
            "--sample",
            "16",
            "--control",
            "8",
            "--json",
            str(out_json),
        ]
    )
    assert code == 0
    assert "PROXY" in capsys.readouterr().out
    doc = json.loads(out_json.read_text())
    assert doc["oracle"]["proxy"] is True and doc["oracle"]["kind"] == "proxy"
    assert doc["rates"]["judged"] == 16 and doc["amplification"]["control_judged"] == 8
