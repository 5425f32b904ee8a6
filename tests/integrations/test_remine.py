"""The re-mining prescription on real text: SciFact with a near-duplicate of every positive.

The risky mining (``range_min=0``, no margin) picks the near-duplicates, false negatives the
audit qrels know. The audit judges the candidate pool ``mine()`` recorded (a census: qrels are
free) and prescribes a re-mining; run through ``mine()`` it must bring the *true* duplicate rate
(counted against the known duplicates) under the 5% target, for ``num_negatives`` 1 and 5.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from recallwatch.integrations.sentence_transformers import mine
from recallwatch.mining.audit import AuditConfig, run_audit
from recallwatch.mining.corpus import Corpus, load_corpus
from recallwatch.mining.formats import read_mined
from recallwatch.mining.oracles.qrels import QrelsOracle
from tests.integrations.helpers import jsonl

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

QUERIES = 60
OTHER_DOCS = 500


@pytest.fixture(scope="module")
def near_dup(tmp_path_factory: pytest.TempPathFactory, scifact_dir: Path) -> dict[str, Any]:
    """SciFact train slice: positives, a near-duplicate of each (new id), other documents."""
    out = tmp_path_factory.mktemp("near-dup")
    docs = {d["_id"]: d for d in jsonl(scifact_dir / "corpus.jsonl")}
    queries = {q["_id"]: q["text"] for q in jsonl(scifact_dir / "queries.jsonl")}
    rows = [
        r.split("\t")
        for r in (scifact_dir / "qrels" / "train.tsv").read_text().splitlines()[1:]
        if r.strip()
    ]
    chosen: list[str] = []
    qrels: list[tuple[str, str]] = []
    for qid, did, _ in rows:
        if qid not in chosen and len(chosen) == QUERIES:
            continue
        chosen = chosen if qid in chosen else [*chosen, qid]
        qrels.append((qid, did))
    positives = list(dict.fromkeys(d for _, d in qrels))
    others = [d for d in docs if d not in positives][:OTHER_DOCS]
    (out / "qrels").mkdir()
    dup_of = {d: f"dup-{d}" for d in positives}
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for d in positives + others:
            fh.write(json.dumps(docs[d]) + "\n")
        for d in positives:  # the same abstract, reprinted under a new id
            dup = {
                "_id": dup_of[d],
                "title": docs[d]["title"],
                "text": "Preprint. " + docs[d]["text"],
            }
            fh.write(json.dumps(dup) + "\n")
    with (out / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for q in chosen:
            fh.write(json.dumps({"_id": q, "text": queries[q]}) + "\n")
    (out / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in qrels)
    )
    audit = out / "audit.tsv"  # the audit knows the duplicates
    audit.write_text(
        "query-id\tcorpus-id\tscore\n"
        + "".join(f"{q}\t{d}\t1\n{q}\t{dup_of[d]}\t1\n" for q, d in qrels)
    )
    corpus = load_corpus(out)
    dups: dict[str, set[str]] = {}
    for q, d in qrels:
        dups.setdefault(q, set()).add(dup_of[d])
    from datasets import Dataset  # type: ignore[import-untyped]

    dataset = Dataset.from_dict(
        {
            "query": [queries[q] for q, _ in qrels],
            "positive": [corpus.text(d) for _, d in qrels],
        }
    )
    texts = [corpus.text(d) for d in corpus.doc_ids]
    return {
        "dir": out,
        "audit": audit,
        "corpus": corpus,
        "dups": dups,
        "dataset": dataset,
        "texts": texts,
        "cache": str(out / "embeddings"),
    }


def _mine(nd: dict[str, Any], teacher: Any, run: Path, **kwargs: Any) -> tuple[Path, Path]:
    mine(
        nd["dataset"],
        teacher,
        run_dir=run,
        id_corpus=nd["dir"],
        corpus=nd["texts"],
        cache_folder=nd["cache"],
        verbose=False,
        pool_depth=40,
        **kwargs,
    )
    meta = json.loads((run / "mining.json").read_text())
    return run / meta["mined_set"], run / meta["pool"]["path"]


def _dup_rate(mined: Path, dups: dict[str, set[str]]) -> tuple[float, int]:
    lines = jsonl(mined)
    negs = [(x["query_id"], n["doc_id"]) for x in lines for n in x["negatives"]]
    hits = sum(d in dups.get(q, set()) for q, d in negs)
    return hits / max(len(negs), 1), len(negs)


def _audit(mined: Path, pool: Path, corpus: Corpus, audit: Path) -> Any:
    return run_audit(
        read_mined(mined, corpus),
        corpus,
        QrelsOracle.from_file(audit),
        AuditConfig(control_size=0),
        pool=read_mined(pool, corpus),
    )


@pytest.mark.parametrize("num_negatives", [1, 5])
def test_prescribed_remining_brings_true_duplicates_under_target(
    near_dup: dict[str, Any], teacher: Any, tmp_path: Path, num_negatives: int
) -> None:
    nd = near_dup
    mined, pool = _mine(nd, teacher, tmp_path / "risky", range_min=0, num_negatives=num_negatives)
    risky, n_risky = _dup_rate(mined, nd["dups"])
    assert risky > 0.05  # the scenario: the risky mining picks the duplicates

    audit = _audit(mined, pool, nd["corpus"], nd["audit"])
    assert audit.size_note.startswith("census of")  # qrels are free: every negative judged
    rec = audit.recommendation
    assert rec.needed and rec.remining is not None and rec.remining.best is not None
    best = rec.remining.best
    assert rec.remining.pool_judged == rec.remining.pool_size  # the pool's census, too
    assert best.projected.upper <= 0.05 and best.spec.num_negatives == num_negatives
    sentence = rec.as_dict()["remining"]["sentence"]
    assert sentence.startswith("re-mine with mine(..., range_min=")

    new_mined, _ = _mine(nd, teacher, tmp_path / "remined", **best.spec.kwargs())
    rate, n_new = _dup_rate(new_mined, nd["dups"])
    print(
        f"num_negatives={num_negatives}: risky {risky:.1%} of {n_risky}; prescribed "
        f"{best.spec.describe()} projected {best.projected.estimate:.2%}, true {rate:.2%} of "
        f"{n_new} negatives ({best.negatives} projected)"
    )
    assert rate < 0.05
    # The projection was exact (census) and the pool is what mine() searched: it is the truth.
    assert n_new == best.negatives
    assert rate == pytest.approx(best.projected.estimate, abs=1e-9)
