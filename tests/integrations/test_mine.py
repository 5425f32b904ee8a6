"""``mine``: exact ranks and scores, a stable fingerprint, ids, and the filter round trip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recallwatch.integrations.sentence_transformers import fingerprint, mine
from recallwatch.mining.corpus import load_corpus
from recallwatch.mining.formats import read_mined
from tests.integrations.helpers import REPO, audit_qrels, train_pairs

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _dataset(beir: Path) -> tuple[Any, list[str]]:
    from datasets import Dataset  # type: ignore[import-untyped]

    pairs, corpus = train_pairs(beir)
    return Dataset.from_dict(pairs), corpus


def _mined(run: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    meta = json.loads((run / "mining.json").read_text())
    lines = [json.loads(x) for x in (run / meta["mined_set"]).read_text().splitlines()]
    return meta, {line["query_id"]: line for line in lines}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "service"), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "recallwatch.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=True,
    )


@pytest.fixture(scope="module")
def brute(tiny_beir: Path, teacher: Any) -> dict[str, Any]:
    """Cosine scores of every (train query, document) pair, encoded independently."""
    corpus = load_corpus(tiny_beir)
    qids = list(dict.fromkeys(corpus.query_texts[q] for q in corpus.query_texts))
    texts = [corpus.text(d) for d in corpus.doc_ids]
    q_emb = teacher.encode(qids, normalize_embeddings=True, convert_to_numpy=True)
    d_emb = teacher.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    sims = q_emb @ d_emb.T
    text_of_query = {t: i for i, t in enumerate(qids)}
    qid_row = {qid: text_of_query[t] for qid, t in corpus.query_texts.items()}
    return {"sims": sims, "row": qid_row, "doc_col": {d: i for i, d in enumerate(corpus.doc_ids)}}


@pytest.mark.parametrize(
    "config",
    [
        {"range_min": 3, "num_negatives": 3},
        {
            "relative_margin": 0.05,
            "sampling_strategy": "random",
            "range_max": 25,
            "num_negatives": 4,
            "output_format": "n-tuple",
            "output_scores": True,
        },
        {"max_score": 0.5, "num_negatives": 3, "output_format": "labeled-list"},
        # The margin removes the hardest candidates, so negatives come from the window's far end
        # (sentence-transformers >= 6.3 retrieves range_max + max_positives + 1 candidates).
        {"relative_margin": 0.3, "range_max": 5, "num_negatives": 5, "output_format": "n-tuple"},
    ],
    ids=["top-range_min", "random-relative_margin", "labeled-list-max_score", "window-edge-margin"],
)
def test_ranks_are_the_candidate_positions_of_a_brute_force_ranking(
    tmp_path: Path, tiny_beir: Path, teacher: Any, brute: dict[str, Any], config: dict[str, Any]
) -> None:
    dataset, corpus = _dataset(tiny_beir)
    out = mine(
        dataset,
        teacher,
        run_dir=tmp_path,
        id_corpus=tiny_beir,
        corpus=corpus,
        verbose=False,
        **config,
    )
    assert len(out) > 0
    meta, lines = _mined(tmp_path)
    assert meta["ranks"]["exact"] is True and meta["ranks"]["embeddings"] == "cache"
    sims, doc_col = brute["sims"], brute["doc_col"]
    checked = beyond = 0
    for qid, line in lines.items():
        row = sims[brute["row"][qid]]
        positives = {doc_col[p] for p in line["positive_ids"]}
        for p, s in zip(line["positive_ids"], line["positive_scores"], strict=True):
            assert s == pytest.approx(float(row[doc_col[p]]), abs=1e-5)
        others = np.array([j for j in range(len(row)) if j not in positives])
        for n in line["negatives"]:
            score = float(row[doc_col[n["doc_id"]]])
            assert n["score"] == pytest.approx(score, abs=1e-5)
            assert n["rank"] == 1 + int((row[others] > score + 1e-6).sum()), (qid, n)
            checked += 1
        if config.get("sampling_strategy", "top") == "top" and not (
            config.get("max_score") or config.get("relative_margin")
        ):
            rmin = config.get("range_min", 0)
            assert [n["rank"] for n in line["negatives"]] == list(range(rmin + 1, rmin + 4))
        if config.get("max_score"):
            assert all(n["score"] <= 0.5 for n in line["negatives"])
        beyond += sum(n["rank"] > config.get("range_max", 10**9) for n in line["negatives"])
    assert checked >= 20
    if config.get("range_max") == 5:
        assert beyond > 0  # the case exercises the candidates past range_max


def test_same_call_same_fingerprint_any_change_changes_it(
    tmp_path: Path, tiny_beir: Path, teacher: Any
) -> None:
    dataset, corpus = _dataset(tiny_beir)
    kw: dict[str, Any] = {"corpus": corpus, "num_negatives": 2, "verbose": False, "batch_size": 16}
    prints = []
    extras: list[dict[str, Any]] = [
        {},
        {},
        {"range_min": 1},
        {"relative_margin": 0.1},
        {"query_prompt": "q: "},
    ]
    for i, extra in enumerate(extras):
        run = tmp_path / f"run{i}"
        mine(dataset, teacher, run_dir=run, id_corpus=tiny_beir, **kw, **extra)
        prints.append(fingerprint(json.loads((run / "mining.json").read_text())))
    assert prints[0] == prints[1]
    assert len(set(prints[1:])) == 4
    # batch_size does not change what is mined: same fingerprint.
    run = tmp_path / "batch"
    mine(dataset, teacher, run_dir=run, id_corpus=tiny_beir, **{**kw, "batch_size": 7})
    assert fingerprint(json.loads((run / "mining.json").read_text())) == prints[0]
    meta = json.loads((tmp_path / "run0" / "mining.json").read_text())
    assert meta["teacher"]["weights_sha256"] and meta["dataset"]["sha256"]
    assert meta["arguments"]["num_negatives"] == 2
    assert meta["mined_set"].startswith("recallwatch-mining/")


def test_without_id_corpus_texts_get_stable_ids_in_a_readable_corpus(
    tmp_path: Path, tiny_beir: Path, teacher: Any
) -> None:
    dataset, corpus = _dataset(tiny_beir)
    mine(dataset, teacher, run_dir=tmp_path, corpus=corpus, num_negatives=2, verbose=False)
    meta, _ = _mined(tmp_path)
    assert meta["ids"] == {"documents": "text-sha256", "corpus_dir": "recallwatch-mining/corpus"}
    ids_corpus = load_corpus(tmp_path / meta["ids"]["corpus_dir"])
    mined = read_mined(tmp_path / meta["mined_set"], ids_corpus)  # every id is in the corpus
    assert len(mined.queries) == len(set(dataset["query"]))
    assert all(q.query_id.startswith("anchor:") and q.query_text for q in mined.queries)
    assert all(n.doc_id.startswith("text:") for q in mined.queries for n in q.negatives)


def _kept(path: Path) -> dict[str, set[str]]:
    return {
        line["query_id"]: {n["doc_id"] for n in line["negatives"]}
        for line in map(json.loads, path.read_text().splitlines())
    }


def _remine(tmp: Path, beir: Path, teacher: Any, name: str, **filters: Any) -> dict[str, set[str]]:
    dataset, corpus = _dataset(beir)
    run = tmp / name
    mine(
        dataset,
        teacher,
        run_dir=run,
        id_corpus=beir,
        corpus=corpus,
        num_negatives=5,
        verbose=False,
        **filters,
    )
    meta = json.loads((run / "mining.json").read_text())
    return _kept(run / meta["mined_set"])


@pytest.fixture(scope="module")
def risky(tmp_path_factory: pytest.TempPathFactory, tiny_beir: Path, teacher: Any) -> Path:
    """The risky mining (range_min=0, no margin), 5 negatives per query; its mined set."""
    dataset, corpus = _dataset(tiny_beir)
    run = tmp_path_factory.mktemp("risky")
    mine(
        dataset,
        teacher,
        run_dir=run,
        id_corpus=tiny_beir,
        corpus=corpus,
        num_negatives=5,
        verbose=False,
    )
    return run / str(json.loads((run / "mining.json").read_text())["mined_set"])


def test_fn_rate_recommends_a_margin_and_remining_drops_exactly_what_it_projected(
    tmp_path: Path, tiny_beir: Path, teacher: Any, risky: Path
) -> None:
    audit = audit_qrels(risky, tmp_path / "audit.tsv", 0.2)
    fn_json = tmp_path / "fn.json"
    _cli(
        "fn-rate",
        "--mined",
        str(risky),
        "--corpus",
        str(tiny_beir),
        "--oracle",
        f"qrels:{audit}",
        "--sample",
        "80",
        "--control",
        "0",
        "--criterion",
        "estimate",
        "--json",
        str(fn_json),
    )
    rec = json.loads(fn_json.read_text())["recommendation"]
    assert rec["needed"] and rec["best"] is not None, rec
    assert rec["best"]["family"] in ("relative_margin", "absolute_margin"), rec["best"]
    clean = tmp_path / "clean.jsonl"
    _cli("filter", "--mined", str(risky), "--out", str(clean), "--recommendation", str(fn_json))
    spec = {k: v for k, v in rec["best"]["filter"].items() if v not in (None, 0)}
    remined = _remine(tmp_path, tiny_beir, teacher, "remined", **spec)
    original, kept = _kept(risky), _kept(clean)
    for qid, negs in original.items():
        assert negs & remined.get(qid, set()) == kept.get(qid, set()), qid


@pytest.mark.parametrize(
    "spec",
    [{"relative_margin": 0.3}, {"absolute_margin": 0.12}, {"range_min": 2}],
    ids=["relative_margin", "absolute_margin", "range_min"],
)
def test_each_single_filter_fed_back_drops_exactly_what_filter_dropped(
    tmp_path: Path, tiny_beir: Path, teacher: Any, risky: Path, spec: dict[str, Any]
) -> None:
    fn_json = tmp_path / "fn.json"
    full = {"range_min": 0, "relative_margin": None, "absolute_margin": None, **spec}
    fn_json.write_text(json.dumps({"recommendation": {"best": {"filter": full}}}))
    clean = tmp_path / "clean.jsonl"
    _cli("filter", "--mined", str(risky), "--out", str(clean), "--recommendation", str(fn_json))
    remined = _remine(tmp_path, tiny_beir, teacher, "remined", **spec)
    original, kept = _kept(risky), _kept(clean)
    dropped = sum(len(v) for v in original.values()) - sum(len(v) for v in kept.values())
    assert dropped > 0  # the filter bites on this data
    for qid, negs in original.items():
        assert negs & remined.get(qid, set()) == kept.get(qid, set()), qid


def test_range_min_with_a_margin_is_not_exact_sentence_transformers_counts_after_the_margin(
    tmp_path: Path, tiny_beir: Path, teacher: Any, risky: Path
) -> None:
    """Documented limitation: ``range_min`` counts the candidates that pass the margin."""
    spec = {"range_min": 1, "relative_margin": 0.3}
    fn_json = tmp_path / "fn.json"
    fn_json.write_text(
        json.dumps({"recommendation": {"best": {"filter": {**spec, "absolute_margin": None}}}})
    )
    clean = tmp_path / "clean.jsonl"
    _cli("filter", "--mined", str(risky), "--out", str(clean), "--recommendation", str(fn_json))
    remined = _remine(tmp_path, tiny_beir, teacher, "remined", **spec)
    original, kept = _kept(risky), _kept(clean)
    actual = {q: negs & remined.get(q, set()) for q, negs in original.items()}
    assert all(actual[q] <= kept.get(q, set()) for q in original)  # never keeps more
    assert any(actual[q] != kept.get(q, set()) for q in original)  # but drops more


def test_verbose_false_prints_no_progress_bars(
    tmp_path: Path, tiny_beir: Path, teacher: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    dataset, corpus = _dataset(tiny_beir)
    capfd.readouterr()
    out = mine(dataset, teacher, run_dir=tmp_path, corpus=corpus, num_negatives=1, verbose=False)
    assert len(out) == len(dataset)
    captured = capfd.readouterr()
    # sentence-transformers draws "Batches" and "Computing similarity scores" bars regardless.
    assert "\r" not in captured.err and "it/s" not in captured.err, captured.err
    assert captured.out == ""
