"""Fixtures of the mining tests: a small real corpus, simulated mined sets, real ST outputs."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from recallwatch.synthetic.mined import SimulatedSet, simulate_mined_set

DOCS = {
    "d1": ("Cats", "Cats are small domesticated carnivores."),
    "d2": ("Dogs", "Dogs are loyal   companions of humans."),
    "d3": ("Cars", "Cars have four wheels and an engine."),
    "d4": ("Trains", "Trains run on rails between stations."),
    "d5": ("Kittens", "Kittens are young cats that play a lot."),
    "d6": ("Puppies", "Puppies are young dogs."),
}
QUERIES = {"q1": "what are cats", "q2": "tell me about dogs"}


def write_corpus(root: Path, docs: dict[str, tuple[str, str]] = DOCS) -> Path:
    """Write a BEIR corpus directory (corpus.jsonl, queries.jsonl)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for did, (title, text) in docs.items():
            fh.write(json.dumps({"_id": did, "title": title, "text": text}) + "\n")
    with (root / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for qid, text in QUERIES.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    return root


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows as JSON lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    """A six-document corpus with two queries."""
    return write_corpus(tmp_path / "corpus")


@pytest.fixture(scope="session")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[SimulatedSet, Path, Path, Path]:
    """A simulated mined set on disk: (truth, corpus dir, mined JSONL, dense audit qrels)."""
    sim = simulate_mined_set(num_queries=400, negatives_per_query=30, num_docs=5000, seed=11)
    corpus, mined, qrels = sim.write(tmp_path_factory.mktemp("simulated"))
    return sim, corpus, mined, qrels


@pytest.fixture(scope="session")
def st_outputs(
    tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path
) -> Callable[..., tuple[Path, Path]]:
    """Real ``mine_hard_negatives`` outputs (MiniLM, a tiny corpus), written as JSON lines.

    Returns ``make(output_format, output_scores, suffix) -> (mined file, corpus dir)``; the file
    is written by ``datasets``' own ``to_json`` / ``to_csv`` / ``to_parquet``.
    """
    datasets = pytest.importorskip("datasets")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives

    root = tmp_path_factory.mktemp("st")
    docs = {
        f"d{i}": (f"Topic {i}", f"A note about topic {i} and animal {i % 4}.") for i in range(40)
    }
    corpus_dir = write_corpus(root / "corpus", docs)
    texts = [f"{t} {b}" for t, b in docs.values()]
    anchors = [f"what about topic {i}" for i in range(8)] + ["what about topic 0"]
    positives = [texts[i] for i in range(8)] + [texts[9]]  # topic 0 has two positives
    model = SentenceTransformer(str(minilm_dir), local_files_only=True)
    cache: dict[tuple[str, bool, str], tuple[Path, Path]] = {}

    def make(output_format: str, output_scores: bool, suffix: str = ".jsonl") -> tuple[Path, Path]:
        key = (output_format, output_scores, suffix)
        if key not in cache:
            dataset = datasets.Dataset.from_dict({"query": anchors, "answer": positives})
            out = mine_hard_negatives(
                dataset,
                model,
                corpus=texts,
                num_negatives=3,
                output_format=output_format,
                output_scores=output_scores,
                verbose=False,
            )
            path = root / f"{output_format}-{int(output_scores)}{suffix}"
            if suffix == ".jsonl":
                out.to_json(str(path))
            elif suffix == ".csv":
                out.to_csv(str(path))
            else:
                out.to_parquet(str(path))
            cache[key] = (path, corpus_dir)
        return cache[key]

    return make
