"""The Ray backend gives the local path's numbers: per query, on SciFact, with every encoder kind,
and when a worker dies mid-evaluation (Ray retries its shard). One local Ray for the module."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from recallwatch.encoders import EncoderOptions, open_source
from recallwatch.evaluation.distributed import RayOptions, evaluate_on_ray
from recallwatch.evaluation.pipeline import Evaluation, evaluate
from recallwatch.heldout.sets import load_heldout
from recallwatch.synthetic.heldout import write_heldout
from tests.helpers.ray_cluster import DIE_ONCE, DIED, DYING_ENCODER, ray_cluster  # noqa: F401

pytest.importorskip("ray")


def assert_same(ray_ev: Evaluation, local: Evaluation, *, same_scores: bool = True) -> None:
    """Every metric of every query within 1e-9, the same ranked lists, and (``same_scores``)
    bit-identical scores. A model's embeddings depend on the batch a text is encoded in
    (sentence-transformers sorts each call's texts by length and pads per batch), and shards
    batch differently from the local path: there scores agree to float32 rounding only."""
    assert ray_ev.metrics.ks == local.metrics.ks
    for metric, by_k in local.metrics.per_query.items():
        for k, values in by_k.items():
            got = ray_ev.metrics.per_query[metric][k]
            assert got.shape == values.shape
            assert np.max(np.abs(got - values), initial=0.0) <= 1e-9, (metric, k)
    np.testing.assert_array_equal(ray_ev.topk.positions, local.topk.positions)
    if same_scores:
        np.testing.assert_array_equal(ray_ev.topk.scores, local.topk.scores)
    else:
        np.testing.assert_allclose(ray_ev.topk.scores, local.topk.scores, rtol=0, atol=1e-5)
    for field in ("dataset", "encoder", "precision", "num_queries", "num_docs", "dim"):
        assert getattr(ray_ev, field) == getattr(local, field), field


def precomputed_checkpoint(root: Path, cache: object) -> Path:
    """A checkpoint whose eval_embeddings are the cached SciFact MiniLM embeddings."""
    folder = root / "eval_embeddings"
    folder.mkdir(parents=True)
    for name in ("corpus.npy", "queries.npy"):
        np.save(folder / name, getattr(cache, name.removesuffix(".npy")))
    (folder / "corpus_ids.txt").write_text("\n".join(cache.corpus_ids) + "\n")  # type: ignore[attr-defined]
    (folder / "query_ids.txt").write_text("\n".join(cache.query_ids) + "\n")  # type: ignore[attr-defined]
    return root


@pytest.mark.slow
def test_precomputed_scifact_equals_the_local_path_per_query(
    ray_cluster: ModuleType,  # noqa: F811
    tmp_path: Path,
    scifact_dir: Path,
    scifact_minilm: object,
) -> None:
    ckpt = precomputed_checkpoint(tmp_path / "ckpt", scifact_minilm)
    ks = (1, 5, 10, 100)
    local = evaluate(load_heldout(scifact_dir), open_source("precomputed", ckpt), ks=ks)
    seen: list[tuple[int, int]] = []
    ev, heldout = evaluate_on_ray(
        scifact_dir,
        "test",
        1,
        "precomputed",
        ckpt,
        EncoderOptions(),
        RayOptions(shards=5),
        ks=ks,
        shard_rows=700,  # blocks within a shard, unlike the local path's
        progress=lambda done, total: seen.append((done, total)),
    )
    assert len(heldout.shards) == 5
    assert seen[-1] == (5183, 5183)
    assert_same(ev, local)
    assert ev.precision is None and ev.encoder == "precomputed"


def slice_of(scifact_dir: Path, root: Path, queries: int = 12, extra: int = 50) -> Path:
    """A BEIR slice of SciFact: some test queries, their judged documents and ``extra`` others."""
    full = load_heldout(scifact_dir, "test")
    qids = full.query_ids[:queries]
    wanted = {d for q in qids for d in full.qrels[q]}
    (root / "qrels").mkdir(parents=True)
    kept = 0
    with (root / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for line in (scifact_dir / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
            doc_id = json.loads(line)["_id"]
            if doc_id in wanted or kept < extra:
                kept += doc_id not in wanted
                fh.write(line + "\n")
    lines = (scifact_dir / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    (root / "queries.jsonl").write_text(
        "".join(q + "\n" for q in lines if json.loads(q)["_id"] in set(qids)), encoding="utf-8"
    )
    rows = [f"{q}\t{d}\t{s}" for q in qids for d, s in full.qrels[q].items()]
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n", encoding="utf-8"
    )
    return root


@pytest.mark.slow
def test_st_encoder_on_a_scifact_slice_equals_the_local_path_per_query(
    ray_cluster: ModuleType,  # noqa: F811
    tmp_path: Path,
    scifact_dir: Path,
    minilm_dir: Path,
) -> None:
    root = slice_of(scifact_dir, tmp_path / "slice")
    options = EncoderOptions(batch_size=16, precision="fp32")
    ks = (1, 5, 10)
    local = evaluate(load_heldout(root), open_source("st", minilm_dir, options), ks=ks)
    ev, heldout = evaluate_on_ray(
        root, "test", 1, "st", minilm_dir, options, RayOptions(shards=2), ks=ks
    )
    assert len(heldout.shards) == 2
    assert_same(ev, local, same_scores=False)
    assert ev.encoder == "sentence-transformers" and ev.precision == "fp32"


def test_a_worker_killed_mid_evaluation_is_retried_and_changes_nothing(
    ray_cluster: ModuleType,  # noqa: F811
    tmp_path: Path,
) -> None:
    synthetic = write_heldout(tmp_path / "heldout", num_docs=900, num_queries=40, seed=5)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    ks = (1, 10, 100)
    local = evaluate(load_heldout(synthetic.path), open_source(DYING_ENCODER, ckpt), ks=ks)
    (ckpt / DIE_ONCE).write_text("")
    ev, heldout = evaluate_on_ray(
        synthetic.path,
        "test",
        1,
        DYING_ENCODER,
        ckpt,
        EncoderOptions(),
        RayOptions(shards=3, max_retries=2),
        ks=ks,
    )
    assert (ckpt / DIED).exists(), "a shard task's worker died"
    assert len(heldout.shards) == 3
    assert_same(ev, local)
    # And ties across shards were there to order: documents with one shared vector.
    assert (np.diff(local.topk.scores, axis=1) == 0).any()
    shutil.rmtree(ckpt)
