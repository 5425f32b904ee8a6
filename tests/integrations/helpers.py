"""Helpers of the integration tests: paths, a real daemon, waiting, SciFact slices, audit labels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

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


def jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def train_pairs(beir: Path, split: str = "train") -> tuple[dict[str, list[str]], list[str]]:
    """(query, positive) text columns of a BEIR split and every corpus text, as BEIR joins them."""
    docs = {
        d["_id"]: f"{d.get('title') or ''} {d['text']}".strip()
        for d in jsonl(beir / "corpus.jsonl")
    }
    queries = {q["_id"]: q["text"] for q in jsonl(beir / "queries.jsonl")}
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


def audit_qrels(mined: Path, out: Path, fraction: float) -> Path:
    """Audit judgements: the negatives scoring closest to their positive are false negatives."""
    lines = [json.loads(x) for x in mined.read_text().splitlines()]
    gaps = sorted(
        (min(line["positive_scores"]) - n["score"]) / abs(min(line["positive_scores"]))
        for line in lines
        for n in line["negatives"]
    )
    cut = gaps[int(len(gaps) * fraction)]
    rows = ["query-id\tcorpus-id\tscore"]
    for line in lines:
        pos = min(line["positive_scores"])
        rows += [f"{line['query_id']}\t{p}\t1" for p in line["positive_ids"]]
        rows += [
            f"{line['query_id']}\t{n['doc_id']}\t1"
            for n in line["negatives"]
            if (pos - n["score"]) / abs(pos) < cut
        ]
    out.write_text("\n".join(rows) + "\n")
    return out
