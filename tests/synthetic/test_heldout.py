"""Synthetic held-out sets and checkpoints (``synthetic/heldout.py``), read by the real loaders."""

from __future__ import annotations

from pathlib import Path

from recallwatch.encoders import open_source
from recallwatch.evaluation.pipeline import evaluate
from recallwatch.heldout.sets import load_heldout
from recallwatch.synthetic.heldout import write_heldout, write_precomputed_checkpoint


def test_written_set_loads_with_its_judgements(tmp_path: Path) -> None:
    s = write_heldout(tmp_path / "h", num_docs=120, num_queries=15, relevant_per_query=2, seed=4)
    heldout = load_heldout(s.path, "test")
    assert heldout.corpus_ids == s.doc_ids and heldout.num_docs == 120
    assert heldout.query_ids == s.query_ids and heldout.qrels == s.qrels
    assert all(len(heldout.relevant(q)) == 2 for q in heldout.query_ids)


def test_less_noise_gives_a_better_checkpoint(tmp_path: Path) -> None:
    s = write_heldout(tmp_path / "h", num_docs=300, num_queries=40, dim=16, seed=5)
    heldout = load_heldout(s.path, "test")
    recall = {}
    for noise in (0.1, 2.0):
        ckpt = write_precomputed_checkpoint(tmp_path / f"ckpt-{noise}", s, noise=noise, seed=2)
        ev = evaluate(heldout, open_source("precomputed", ckpt), ks=(10,))
        recall[noise] = ev.mean("recall", 10)
    assert recall[0.1] > recall[2.0]
