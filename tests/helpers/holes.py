"""A planted-holes scenario: a held-out set with some relevant judgements removed, a baseline
checkpoint, and a post-change checkpoint that ranks exactly the removed documents higher.

Every query has ``relevant`` relevant documents. For the *planted* queries all but one
judgement are removed from the written qrels (the holes); the baseline's query vector is the mean
of all its relevant documents (it finds them all), the post-change checkpoint's is the mean of
the removed ones, so it ranks the holes first and the one judged positive falls out of the top k.
The *real* queries lose for real: the post-change checkpoint points them at random documents.
Written in the real formats: BEIR layout and ``eval_embeddings/`` of precomputed checkpoints.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from recallwatch.encoders.precomputed import EMBEDDINGS_DIR


@dataclass(frozen=True)
class Planted:
    path: Path
    #: Every relevant judgement (the truth).
    full_qrels: dict[str, dict[str, int]]
    #: What the written qrels file holds.
    written_qrels: dict[str, dict[str, int]]
    #: (query, document) judgements removed from the written file.
    removed: list[tuple[str, str]]
    planted: list[str]
    real: list[str]


def _unit(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _write_checkpoint(
    path: Path, queries: npt.NDArray[np.float32], docs: npt.NDArray[np.float32], qids: list[str]
) -> Path:
    out = path / EMBEDDINGS_DIR
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "queries.npy", queries)
    np.save(out / "corpus.npy", docs)
    (out / "query_ids.txt").write_text("\n".join(qids) + "\n", encoding="utf-8")
    ids = [f"doc{i}" for i in range(docs.shape[0])]
    (out / "corpus_ids.txt").write_text("\n".join(ids) + "\n", encoding="utf-8")
    return path


def write_planted(
    root: Path,
    *,
    seed: int = 0,
    num_docs: int = 1500,
    num_queries: int = 150,
    relevant: int = 3,
    planted: int = 30,
    real: int = 0,
    dim: int = 64,
    noise: float = 0.05,
) -> tuple[Planted, Path, Path]:
    """Write the set and two checkpoints (baseline, post-change) under ``root``."""
    rng = np.random.default_rng(seed)
    heldout = root / "heldout"
    (heldout / "qrels").mkdir(parents=True, exist_ok=True)
    doc_ids = [f"doc{i}" for i in range(num_docs)]
    qids = [f"q{i}" for i in range(num_queries)]
    docs = _unit(rng.standard_normal((num_docs, dim)))
    with (heldout / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for i, d in enumerate(doc_ids):
            fh.write(json.dumps({"_id": d, "title": f"Document {i}", "text": f"text {i}"}) + "\n")
    with (heldout / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for i, q in enumerate(qids):
            fh.write(json.dumps({"_id": q, "text": f"question {i}"}) + "\n")
    rel = {q: rng.choice(num_docs, size=relevant, replace=False) for q in qids}
    full = {q: {doc_ids[int(j)]: 1 for j in rel[q]} for q in qids}
    order = rng.permutation(num_queries)
    planted_q = [qids[i] for i in order[:planted]]
    real_q = [qids[i] for i in order[planted : planted + real]]
    written = {q: dict(v) for q, v in full.items()}
    removed: list[tuple[str, str]] = []
    for q in planted_q:
        for j in rel[q][1:]:
            removed.append((q, doc_ids[int(j)]))
            del written[q][doc_ids[int(j)]]
    with (heldout / "qrels" / "test.tsv").open("w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for q in qids:
            for d, g in written[q].items():
                fh.write(f"{q}\t{d}\t{g}\n")
    jitter = noise * rng.standard_normal((num_queries, dim))
    base = _unit(np.stack([docs[rel[q]].mean(axis=0) for q in qids]) + jitter)
    post_rows = []
    for qi, q in enumerate(qids):
        if q in planted_q:
            post_rows.append(docs[rel[q][1:]].mean(axis=0) + jitter[qi])
        elif q in real_q:
            post_rows.append(rng.standard_normal(dim))
        else:
            post_rows.append(docs[rel[q]].mean(axis=0) + jitter[qi])
    post = _unit(np.stack(post_rows))
    # The control: the real losses alone (the planted queries as the baseline ranks them).
    control = np.stack([post[i] if q in real_q else base[i] for i, q in enumerate(qids)])
    before = _write_checkpoint(root / "baseline", base, docs, qids)
    after = _write_checkpoint(root / "post", post, docs, qids)
    _write_checkpoint(root / "control", control, docs, qids)
    scenario = Planted(heldout, full, written, removed, planted_q, real_q)
    return scenario, before, after


def write_run(
    run_dir: Path, pre: Path, post: Path, steps: tuple[int, ...] = (100, 200, 300, 400)
) -> None:
    """A run of complete checkpoints: ``pre``'s embeddings under mining config A, then the last
    step ``post``'s under mining config B (a mining change right before it)."""
    for step in steps:
        ckpt = run_dir / f"checkpoint-{step}"
        shutil.copytree(post if step == steps[-1] else pre, ckpt)
        mining = {"teacher": "t", "range_min": 0 if step == steps[-1] else 10}
        (ckpt / "mining.json").write_text(json.dumps(mining), encoding="utf-8")
        (ckpt / "trainer_state.json").write_text(
            json.dumps({"global_step": step}), encoding="utf-8"
        )


def write_labels(path: Path, pairs: list[tuple[str, str]]) -> Path:
    """A labels file (``labels:`` oracle) saying each pair is relevant."""
    lines = ["query_id,doc_id,label"] + [f"{q},{d},relevant" for q, d in pairs]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
