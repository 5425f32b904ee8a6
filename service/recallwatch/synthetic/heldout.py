"""Synthetic held-out sets and checkpoints with known quality, for the demo, tests and benchmarks.

Documents are random unit vectors; each query is the mean of its relevant documents plus Gaussian
noise of a chosen scale, so a checkpoint's recall is controlled by one number (``noise``): more
noise, lower recall. Everything is seeded and written in the real on-disk formats (BEIR layout and
``eval_embeddings/``), so it exercises exactly the code paths a real run does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from recallwatch.encoders.precomputed import EMBEDDINGS_DIR

__all__ = ["SyntheticSet", "write_heldout", "write_precomputed_checkpoint"]


@dataclass(frozen=True)
class SyntheticSet:
    """Where a synthetic held-out set lives and the latent vectors behind it."""

    path: Path
    doc_ids: list[str]
    query_ids: list[str]
    qrels: dict[str, dict[str, int]]
    doc_vectors: npt.NDArray[np.float32]


def _unit(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    out: npt.NDArray[np.float32] = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def write_heldout(
    path: Path | str,
    *,
    num_docs: int = 2_000,
    num_queries: int = 200,
    relevant_per_query: int = 2,
    dim: int = 64,
    split: str = "test",
    seed: int = 0,
) -> SyntheticSet:
    """Write a BEIR-layout held-out set with random topics and return its latent vectors."""
    root = Path(path)
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    doc_ids = [f"doc{i}" for i in range(num_docs)]
    query_ids = [f"q{i}" for i in range(num_queries)]
    docs = _unit(rng.standard_normal((num_docs, dim)).astype(np.float32))
    with (root / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for i, d in enumerate(doc_ids):
            fh.write(json.dumps({"_id": d, "title": f"Document {i}", "text": f"topic {i % 97}"}))
            fh.write("\n")
    with (root / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for i, q in enumerate(query_ids):
            fh.write(json.dumps({"_id": q, "text": f"question {i} about topic {i % 97}"}) + "\n")
    qrels: dict[str, dict[str, int]] = {}
    with (root / "qrels" / f"{split}.tsv").open("w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for q in query_ids:
            rel = rng.choice(num_docs, size=relevant_per_query, replace=False)
            qrels[q] = {doc_ids[int(j)]: 1 for j in rel}
            for d in qrels[q]:
                fh.write(f"{q}\t{d}\t1\n")
    return SyntheticSet(root, doc_ids, query_ids, qrels, docs)


def write_precomputed_checkpoint(
    checkpoint: Path | str, heldout: SyntheticSet, *, noise: float, seed: int = 0
) -> Path:
    """Write ``eval_embeddings/`` for a checkpoint whose quality is set by ``noise``."""
    ckpt = Path(checkpoint)
    out = ckpt / EMBEDDINGS_DIR
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    index = {d: i for i, d in enumerate(heldout.doc_ids)}
    dim = heldout.doc_vectors.shape[1]
    queries = np.empty((len(heldout.query_ids), dim), dtype=np.float32)
    for qi, q in enumerate(heldout.query_ids):
        rel = [index[d] for d in heldout.qrels[q]]
        centre = heldout.doc_vectors[rel].mean(axis=0)
        queries[qi] = centre + noise * rng.standard_normal(dim) / np.sqrt(dim)
    np.save(out / "queries.npy", _unit(queries))
    np.save(out / "corpus.npy", heldout.doc_vectors)
    (out / "query_ids.txt").write_text("\n".join(heldout.query_ids) + "\n", encoding="utf-8")
    (out / "corpus_ids.txt").write_text("\n".join(heldout.doc_ids) + "\n", encoding="utf-8")
    return ckpt
