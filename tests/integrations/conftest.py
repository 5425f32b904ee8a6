"""Fixtures of the integration tests: a tiny SciFact slice, the MiniLM teacher, a real daemon."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integrations.helpers import Serve, jsonl


@pytest.fixture(scope="session")
def tiny_beir(tmp_path_factory: pytest.TempPathFactory, scifact_dir: Path) -> Path:
    """16 train queries, 8 test queries and 72 SciFact documents (their positives first)."""
    out = tmp_path_factory.mktemp("tiny-scifact")
    docs = {d["_id"]: d for d in jsonl(scifact_dir / "corpus.jsonl")}
    queries = {q["_id"]: q for q in jsonl(scifact_dir / "queries.jsonl")}

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
