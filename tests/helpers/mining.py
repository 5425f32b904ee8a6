"""BEIR corpus directories, mined sets and JSON helpers shared by the mining and command tests.

The fixtures ``small_corpus`` and ``simulated`` are registered by the conftest of each test
directory that uses them (``from tests.helpers.mining import simulated, small_corpus``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recallwatch.cli import main
from recallwatch.mining.formats import read_mined
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


def strict_json(text: str) -> object:
    """Parse JSON rejecting the non-standard ``Infinity`` / ``NaN`` literals."""

    def refuse(literal: str) -> object:
        raise ValueError(f"non-standard JSON literal {literal}")

    return json.loads(text, parse_constant=refuse)


#: The ``simulated`` fixture: (truth, corpus dir, mined JSONL, dense audit qrels).
Simulated = tuple[SimulatedSet, Path, Path, Path]


def true_rate_of(path: Path, sim: SimulatedSet) -> tuple[float, int]:
    """The known false-negative rate of a (filtered) mined set, and its negatives."""
    mined = read_mined(path, None)
    flags = [n.doc_id in sim.relevant[q.query_id] for q in mined.queries for n in q.negatives]
    return float(np.mean(flags)), len(flags)


def run_cli_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI, expect exit status 2 (bad input), and return what it wrote to stderr."""
    assert main(argv) == 2
    return capsys.readouterr().err
