"""``recallwatch fn-rate`` and ``recallwatch filter`` end to end; their errors (must-show 3, 4)."""

from __future__ import annotations

import csv
import json
import socket
from pathlib import Path

import numpy as np
import pytest

from recallwatch.cli import main
from recallwatch.mining.formats import read_mined
from recallwatch.synthetic.mined import SimulatedSet, simulate_mined_set

from .conftest import write_jsonl

Simulated = tuple[SimulatedSet, Path, Path, Path]


def true_rate_of(path: Path, sim: SimulatedSet) -> tuple[float, int]:
    """The known false-negative rate of a (filtered) mined set, and its negatives."""
    mined = read_mined(path, None)
    flags = [n.doc_id in sim.relevant[q.query_id] for q in mined.queries for n in q.negatives]
    return float(np.mean(flags)), len(flags)


def test_fn_rate_with_qrels_prints_the_table_and_json(
    simulated: Simulated, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, corpus, mined, qrels = simulated
    out = tmp_path / "fn.json"
    code = main(
        [
            "fn-rate",
            "--mined",
            str(mined),
            "--corpus",
            str(corpus),
            "--oracle",
            f"qrels:{qrels}",
            "--sample",
            "500",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    for needle in (
        "overall (Wilson)",
        "stratified by rank",
        "amplification",
        "SPRT",
        "recommendation",
        f"judged by qrels:{qrels}",
    ):
        assert needle in text
    doc = json.loads(out.read_text())
    assert doc["oracle"]["kind"] == "qrels" and doc["oracle"]["proxy"] is False
    overall = doc["rates"]["overall"]
    assert overall["lower"] <= sim.true_rate <= overall["upper"]
    assert [b["bucket"] for b in doc["rates"]["buckets"]][:4] == ["1", "2-3", "4-10", "11-30"]
    assert doc["amplification"]["ratio"]["lower"] > 1.0  # mining amplifies the label noise
    assert doc["sprt"]["decision"] in ("too_high", "acceptable", "continue")


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


def test_stratified_sampling_and_half_width(
    simulated: Simulated, capsys: pytest.CaptureFixture[str]
) -> None:
    _, corpus, mined, qrels = simulated
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
                "--sampling",
                "stratified",
                "--half-width",
                "0.03",
                "--assumed-rate",
                "0.1",
                "--json",
                "-",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    doc = json.loads(out[out.index("{") :])
    assert doc["rates"]["overall"] is None and doc["rates"]["stratified"] is not None
    assert "decision" not in doc["sprt"] and "uniform sample" in doc["sprt"]["note"]
    assert "for a ±3.0% interval" in doc["sample_size"]
    assert doc["rates"]["buckets"][0]["drawn"] >= 20  # the floor per bucket


def test_export_sample_then_labels(
    simulated: Simulated, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, corpus, mined, _ = simulated
    sheet = tmp_path / "review.csv"
    args = [
        "fn-rate",
        "--mined",
        str(mined),
        "--corpus",
        str(corpus),
        "--sample",
        "60",
        "--control",
        "30",
        "--seed",
        "5",
    ]
    assert main([*args, "--export-sample", str(sheet)]) == 0
    with sheet.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 90 and {r["sample"] for r in rows} == {"mined", "control"}
    # A reviewer fills the sheet from the truth, marking one pair unsure.
    for i, r in enumerate(rows):
        relevant = r["doc_id"] in sim.relevant[r["query_id"]]
        r["label"] = "unsure" if i == 0 else ("relevant" if relevant else "not_relevant")
        r["reviewer"] = "ann"
    with sheet.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    report = tmp_path / "fn.json"
    assert main([*args, "--oracle", f"labels:{sheet}", "--json", str(report)]) == 0
    doc = json.loads(report.read_text())
    assert doc["oracle"]["kind"] == "labels"
    assert doc["rates"]["drawn"] == 60 and doc["rates"]["unsure"] == 1
    assert doc["amplification"]["control_judged"] == 30
    assert "unsure" in capsys.readouterr().out


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


def _run_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err


def test_bad_input_gives_clear_errors(
    simulated: Simulated, small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Must-show 4: unknown ids, unmatched texts, an empty sample, a judge that is down."""
    _, corpus, mined, _ = simulated
    unknown = write_jsonl(
        tmp_path / "unknown.jsonl",
        [
            {"query_id": "q1", "positive_ids": ["d1"], "negatives": [{"doc_id": "d2", "rank": 1}]},
            {"query_id": "q2", "positive_ids": ["d2"], "negatives": [{"doc_id": "zzz", "rank": 1}]},
        ],
    )
    err = _run_error(
        ["fn-rate", "--mined", str(unknown), "--corpus", str(small_corpus), "--oracle", "qrels:x"],
        capsys,
    )
    assert f"{unknown}, line 2, field 'negatives[0].doc_id': unknown document id 'zzz'" in err

    unmatched = write_jsonl(
        tmp_path / "triplets.jsonl",
        [
            {
                "anchor": "what are cats",
                "positive": "Cats are small domesticated carnivores.",
                "negative": "This sentence is in no corpus at all.",
            },
        ],
    )
    err = _run_error(
        [
            "fn-rate",
            "--mined",
            str(unmatched),
            "--corpus",
            str(small_corpus),
            "--oracle",
            "qrels:x",
        ],
        capsys,
    )
    assert "1 text(s) match no document of the corpus" in err and "line 1" in err

    other_qrels = tmp_path / "other.tsv"
    other_qrels.write_text("query-id\tcorpus-id\tscore\nnot-a-mined-query\td1\t1\n")
    err = _run_error(
        [
            "fn-rate",
            "--mined",
            str(mined),
            "--corpus",
            str(corpus),
            "--oracle",
            f"qrels:{other_qrels}",
        ],
        capsys,
    )
    assert "empty sample" in err and "no mined query is audited" in err

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    err = _run_error(
        [
            "fn-rate",
            "--mined",
            str(mined),
            "--corpus",
            str(corpus),
            "--oracle",
            f"http://127.0.0.1:{port}/judge",
            "--http-retries",
            "0",
            "--sample",
            "5",
        ],
        capsys,
    )
    assert f"judge endpoint http://127.0.0.1:{port}/judge is unavailable" in err

    err = _run_error(["fn-rate", "--mined", str(mined), "--corpus", str(corpus)], capsys)
    assert "give an oracle" in err
    err = _run_error(["filter", "--mined", str(mined), "--out", str(tmp_path / "x.jsonl")], capsys)
    assert "--range-min" in err


def test_filter_recommendation_file_must_hold_one(
    simulated: Simulated, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, mined, _ = simulated
    bogus = tmp_path / "bogus.json"
    bogus.write_text(json.dumps({"recommendation": {"best": None}}))
    err = _run_error(
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
