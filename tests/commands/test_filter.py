"""``recallwatch filter``: strategies, recommendations from ``fn-rate``, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recallwatch.cli import main
from recallwatch.mining.corpus import load_corpus
from recallwatch.mining.formats import read_mined
from recallwatch.synthetic.mined import simulate_mined_set
from tests.helpers.mining import Simulated, run_cli_error, true_rate_of, write_jsonl


def test_filter_writes_the_query_text_back(small_corpus: Path, tmp_path: Path) -> None:
    rows = [
        {
            "query_id": "q1",
            "query": "cats, in my own words",
            "positive_ids": ["d1"],
            "negatives": [{"doc_id": "d5", "rank": 1}, {"doc_id": "d2", "rank": 2}],
        },
        {  # no query field: its text comes from queries.jsonl and is not written
            "query_id": "q2",
            "positive_ids": ["d2"],
            "negatives": [{"doc_id": "d3", "rank": 1}],
        },
    ]
    mined = write_jsonl(tmp_path / "m.jsonl", rows)
    out = tmp_path / "clean.jsonl"
    args = ["filter", "--mined", str(mined), "--corpus", str(small_corpus), "--out", str(out)]
    assert main([*args, "--range-min", "1"]) == 0
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert written[0]["query"] == "cats, in my own words"
    assert "query" not in written[1]
    again = read_mined(out, load_corpus(small_corpus))
    assert again.queries[0].query_text == "cats, in my own words"
    assert again.queries[1].query_text == "tell me about dogs"


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_recommended_filter_brings_the_known_rate_under_target(
    tmp_path: Path, seed: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """Must-show 3: fn-rate recommends, filter applies, the true rate ends <= 5%."""
    sim = simulate_mined_set(num_queries=300, negatives_per_query=30, num_docs=4000, seed=seed)
    corpus, mined, qrels = sim.write(tmp_path)
    before, total = true_rate_of(mined, sim)
    assert before > 0.05
    report = tmp_path / "fn.json"
    assert (
        main(
            [
                "fn-rate",
                "--mined",
                str(mined),
                "--corpus",
                str(corpus),
                "--oracle",
                f"qrels:{qrels}",
                "--sample",
                "600",
                "--seed",
                str(seed),
                "--json",
                str(report),
                "--control",
                "0",
            ]
        )
        == 0
    )
    rec = json.loads(report.read_text())["recommendation"]
    assert rec["needed"] and rec["best"] is not None
    cleaned = tmp_path / "clean.jsonl"
    assert (
        main(
            [
                "filter",
                "--mined",
                str(mined),
                "--out",
                str(cleaned),
                "--recommendation",
                str(report),
            ]
        )
        == 0
    )
    after, kept = true_rate_of(cleaned, sim)
    assert after <= 0.05
    assert 1 - kept / total == pytest.approx(rec["best"]["dropped_fraction"])
    assert "dropped" in capsys.readouterr().out


def test_filter_strategies_on_jsonl(
    simulated: Simulated, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, corpus, mined, qrels = simulated
    out = tmp_path / "ens.jsonl"
    summary = tmp_path / "summary.json"
    assert (
        main(
            [
                "filter",
                "--mined",
                str(mined),
                "--corpus",
                str(corpus),
                "--out",
                str(out),
                "--strategy",
                "ensemble",
                "--oracle",
                f"qrels:{qrels}",
                "--summary",
                str(summary),
            ]
        )
        == 0
    )
    after, _ = true_rate_of(out, sim)
    assert after == 0.0  # a perfect judge removes every false negative
    assert json.loads(summary.read_text())["dropped"] == int(sim.is_false_negative.sum())
    soft = tmp_path / "soft.jsonl"
    assert main(["filter", "--mined", str(mined), "--out", str(soft), "--strategy", "soft"]) == 0
    weights = [n.weight for q in read_mined(soft, None).queries for n in q.negatives]
    assert all(w is not None and 0.0 <= w <= 1.0 for w in weights)
    assert "weights: mean" in capsys.readouterr().out


def test_filter_recommendation_file_must_hold_one(
    simulated: Simulated, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, mined, _ = simulated
    bogus = tmp_path / "bogus.json"
    bogus.write_text(json.dumps({"recommendation": {"best": None}}))
    err = run_cli_error(
        [
            "filter",
            "--mined",
            str(mined),
            "--out",
            str(tmp_path / "o.jsonl"),
            "--recommendation",
            str(bogus),
        ],
        capsys,
    )
    assert "no recommended filter" in err


def test_filter_without_a_filter_names_the_options(
    simulated: Simulated, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, mined, _ = simulated
    err = run_cli_error(
        ["filter", "--mined", str(mined), "--out", str(tmp_path / "x.jsonl")], capsys
    )
    assert "--range-min" in err
