"""``recallwatch fn-rate`` end to end: reports, sampling, reviewer sheets, judges and errors."""

from __future__ import annotations

import csv
import json
import logging
import socket
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from recallwatch.cli import main
from tests.helpers.judge import (
    QUERY_SECRET,
    TOKEN,
    good_judge,
    judge_server,
    secrets_in,
)
from tests.helpers.mining import Simulated, run_cli_error, strict_json, write_jsonl


def test_fn_rate_json_is_strict_when_the_control_has_no_false_negative(
    small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # q1's negative d5 (kittens) is relevant; the control pairs are judged by the same qrels,
    # where nothing else is relevant: the control rate is 0 and the ratio is unbounded.
    mined = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {
                "query_id": "q1",
                "positive_ids": ["d1"],
                "negatives": [{"doc_id": "d5", "rank": 1}, {"doc_id": "d3", "rank": 2}],
            },
            {"query_id": "q2", "positive_ids": ["d2"], "negatives": [{"doc_id": "d6", "rank": 1}]},
        ],
    )
    qrels = tmp_path / "audit.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td5\t1\nq2\td2\t1\n")
    out = tmp_path / "fn.json"
    code = main(
        [
            "fn-rate",
            "--mined",
            str(mined),
            "--corpus",
            str(small_corpus),
            "--oracle",
            f"qrels:{qrels}",
            "--control",
            "3",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    capsys.readouterr()
    doc = strict_json(out.read_text())
    assert isinstance(doc, dict)
    amp = doc["amplification"]
    assert amp["control_judged"] > 0 and amp["control_false_negatives"] == 0
    assert amp["ratio"]["lower"] > 0 and amp["ratio"]["upper"] is None
    assert amp["ratio"]["non_finite"] == {"estimate": "inf", "upper": "inf"}
    assert "no upper bound" in amp["note"]


def test_fn_rate_cli_passes_the_auth_header_from_the_environment(
    small_corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    mined = write_jsonl(
        tmp_path / "m.jsonl",
        [{"query_id": "q1", "positive_ids": ["d1"], "negatives": [{"doc_id": "d5", "rank": 1}]}],
    )
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    monkeypatch.setenv("JUDGE_TOKEN", TOKEN)
    monkeypatch.setenv("JUDGE_KEY", "key-0a1b2c3d")
    seen: list[tuple[str | None, str | None]] = []

    def judge(h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        seen.append((h.headers.get("Authorization"), h.headers.get("X-Api-Key")))
        good_judge(h, body)

    caplog.set_level(logging.DEBUG, logger="recallwatch")
    out = tmp_path / "fn.json"
    with judge_server(judge) as (url, _):
        for auth in (["--http-auth-env", "JUDGE_TOKEN"], ["--http-auth-file", str(token_file)]):
            seen.clear()
            code = main(
                [
                    "fn-rate",
                    "--mined",
                    str(mined),
                    "--corpus",
                    str(small_corpus),
                    "--oracle",
                    f"{url}?token={QUERY_SECRET}",
                    *auth,
                    "--http-header-env",
                    "X-Api-Key=JUDGE_KEY",
                    "--control",
                    "0",
                    "--json",
                    str(out),
                ]
            )
            assert code == 0
            assert seen and set(seen) == {(TOKEN, "key-0a1b2c3d")}
            printed = capsys.readouterr()
            doc = out.read_text()
            assert not secrets_in(printed.out + printed.err + doc)
            assert "key-0a1b2c3d" not in doc
            assert json.loads(doc)["oracle"]["spec"] == f"http:{url}?***"
    assert not secrets_in("\n".join(r.getMessage() for r in caplog.records))


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


def test_bad_input_gives_clear_errors(
    simulated: Simulated, small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Must-show 4: unknown ids, unmatched texts, an empty sample, a judge down, no oracle."""
    _, corpus, mined, _ = simulated
    unknown = write_jsonl(
        tmp_path / "unknown.jsonl",
        [
            {"query_id": "q1", "positive_ids": ["d1"], "negatives": [{"doc_id": "d2", "rank": 1}]},
            {"query_id": "q2", "positive_ids": ["d2"], "negatives": [{"doc_id": "zzz", "rank": 1}]},
        ],
    )
    err = run_cli_error(
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
    err = run_cli_error(
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
    err = run_cli_error(
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
    err = run_cli_error(
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

    err = run_cli_error(["fn-rate", "--mined", str(mined), "--corpus", str(corpus)], capsys)
    assert "give an oracle" in err
