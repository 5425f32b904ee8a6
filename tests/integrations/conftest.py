"""Fixtures of the integration tests: a tiny SciFact slice, the MiniLM teacher, a real daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")
SERVE = [sys.executable, "-m", "recallwatch.cli", "serve"]

# Training on CPU emits warnings that are not ours (no accelerator for pin_memory, ...).
TRAINING_WARNINGS = [
    "ignore::UserWarning",
    "ignore::DeprecationWarning",
    "ignore::FutureWarning",
    "ignore::ResourceWarning",
]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.fixture(scope="session")
def tiny_beir(tmp_path_factory: pytest.TempPathFactory, scifact_dir: Path) -> Path:
    """16 train queries, 8 test queries and 72 SciFact documents (their positives first)."""
    out = tmp_path_factory.mktemp("tiny-scifact")
    docs = {d["_id"]: d for d in _jsonl(scifact_dir / "corpus.jsonl")}
    queries = {q["_id"]: q for q in _jsonl(scifact_dir / "queries.jsonl")}

    def qrels(split: str, n: int) -> list[list[str]]:
        rows = [
            line.split("\t")
            for line in (scifact_dir / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]
            if line.strip()
        ]
        chosen: list[str] = []
        kept = []
        for qid, did, score in rows:
            if qid not in chosen:
                if len(chosen) == n:
                    continue
                chosen.append(qid)
            kept.append([qid, did, score])
        return kept

    train, test = qrels("train", 16), qrels("test", 8)
    ids = list(dict.fromkeys([d for _, d, _ in train + test]))
    ids += [d for d in docs if d not in ids][: 72 - len(ids)]
    (out / "qrels").mkdir()
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for d in ids:
            fh.write(json.dumps(docs[d]) + "\n")
    with (out / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for q in dict.fromkeys([q for q, _, _ in train + test]):
            fh.write(json.dumps(queries[q]) + "\n")
    for split, rows in (("train", train), ("test", test)):
        text = "query-id\tcorpus-id\tscore\n" + "".join("\t".join(r) + "\n" for r in rows)
        (out / "qrels" / f"{split}.tsv").write_text(text)
    return out


@pytest.fixture(scope="session")
def teacher(minilm_dir: Path) -> Any:
    """all-MiniLM-L6-v2 on CPU with 64-token inputs (fast); never trained."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_dir), device="cpu", local_files_only=True)
    model.max_seq_length = 64
    return model


def train_pairs(beir: Path, split: str = "train") -> tuple[dict[str, list[str]], list[str]]:
    """(query, positive) text columns of a BEIR split and every corpus text, as BEIR joins them."""
    docs = {
        d["_id"]: f"{d.get('title') or ''} {d['text']}".strip()
        for d in _jsonl(beir / "corpus.jsonl")
    }
    queries = {q["_id"]: q["text"] for q in _jsonl(beir / "queries.jsonl")}
    pairs: dict[str, list[str]] = {"query": [], "positive": []}
    for line in (beir / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]:
        qid, did, _ = line.split("\t")
        pairs["query"].append(queries[qid])
        pairs["positive"].append(docs[did])
    return pairs, list(docs.values())


def wait_until(probe: Callable[[], T | None], *, alive: subprocess.Popen[bytes], what: str) -> T:
    """Poll ``probe`` until it returns something truthy; fail only if the process died."""
    last: Exception | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except Exception as exc:  # not answering yet
            last = exc
        if alive.poll() is not None:
            raise AssertionError(f"{what}: the process exited ({alive.returncode}); last {last!r}")
        time.sleep(0.2)


class Serve:
    """``recallwatch serve`` as a real subprocess logging JSON lines."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        env = {**os.environ, "PYTHONPATH": str(REPO / "service"), "HF_HUB_OFFLINE": "1"}
        with log.open("ab") as fh:
            self.proc = subprocess.Popen(
                [*SERVE, "--config", str(config), "--log-format", "json"],
                stdout=fh,
                stderr=fh,
                env=env,
                cwd=REPO,
            )
        self.url: str = wait_until(self._url, alive=self.proc, what="the daemon to serve")

    def _url(self) -> str | None:
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            with_url = line.startswith("{") and '"url"' in line
            if with_url:
                url = json.loads(line).get("url")
                if url:
                    return str(url)
        return None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not stop."""
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def serve() -> Iterator[Callable[[Path, Path], Serve]]:
    """Start daemons; every one started is stopped at the end of the test."""
    started: list[Serve] = []

    def start(config: Path, log: Path) -> Serve:
        s = Serve(config, log)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
