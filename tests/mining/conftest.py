"""Fixtures of the mining tests: a small real corpus, simulated mined sets, real ST outputs."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.mining import simulated, small_corpus, write_corpus  # noqa: F401 - fixtures


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
