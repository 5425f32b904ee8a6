"""``fn-rate --people`` and the curve in ``--json``; ``filter`` thresholds as percentiles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recallwatch.cli import main
from recallwatch.mining.audit import AuditConfig
from recallwatch.mining.corpus import load_corpus
from recallwatch.mining.formats import read_mined
from recallwatch.mining.oracles import ReviewLabel
from recallwatch.mining.review import plan_review, write_review_labels
from tests.helpers.mining import Simulated, run_cli_error


def test_fn_rate_with_people_reports_ppi_agreement_and_the_curve(
    simulated: Simulated, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, corpus_dir, mined_path, qrels = simulated
    corpus = load_corpus(corpus_dir)
    plan = plan_review(read_mined(mined_path, corpus), corpus, AuditConfig(sample_size=500))
    labels = [
        ReviewLabel(
            i.query_id,
            i.doc_id,
            "relevant" if i.doc_id in sim.relevant[i.query_id] else "not_relevant",
            "ann",
        )
        for i in plan.items[:60]
    ]
    sheet = write_review_labels(tmp_path / "review.csv", labels, {})
    out = tmp_path / "fn.json"
    argv = ["fn-rate", "--mined", str(mined_path), "--corpus", str(corpus_dir)]
    argv += ["--oracle", f"qrels:{qrels}", "--people", f"labels:{sheet}", "--sample", "500"]
    assert main([*argv, "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "prediction-powered" in text and "agreement of qrels:" in text
    doc = json.loads(out.read_text())
    people = doc["people"]
    assert people["used"] == "ppi"
    [a] = people["agreement"]
    assert a["pairs"] == 60 and a["kappa"] == 1.0  # the judge is the truth, and so are people
    assert set(doc["curve"]["families"]) == {"range_min", "absolute_margin", "relative_margin"}
    ppi = people["estimates"]["ppi"]
    assert ppi["lower"] <= sim.true_rate <= ppi["upper"]


def test_filter_takes_a_percentile_of_the_miners_margins(
    simulated: Simulated, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mined_path = simulated[2]
    out, summary = tmp_path / "clean.jsonl", tmp_path / "summary.json"
    argv = ["filter", "--mined", str(mined_path), "--out", str(out), "--summary", str(summary)]
    assert main([*argv, "--relative-margin", "p30"]) == 0
    doc = json.loads(summary.read_text())
    assert doc["dropped_fraction"] == pytest.approx(0.30, abs=0.01)
    err = run_cli_error([*argv, "--relative-margin", "q30"], capsys)
    assert "--relative-margin" in err and "percentile of the miner's scores such as p95" in err
