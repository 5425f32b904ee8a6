"""``records.precision``: the precision report's JSON round trip and its line for people."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from recallwatch.records.precision import PrecisionReport, ProbeShift

SHIFT = ProbeShift(
    queries=16,
    documents=64,
    k=10,
    recall_fp32=0.875,
    recall_candidate=0.9375,
    ndcg_fp32=0.7,
    ndcg_candidate=0.71,
    flips=1,
    reordered=3,
)
PASSED = PrecisionReport(
    requested="auto",
    used="bf16",
    verdict="passed",
    candidate="bf16",
    texts=32,
    min_cosine=0.999981,
    threshold=0.999,
    shift=SHIFT,
)


@pytest.mark.parametrize(
    "report",
    [
        PASSED,
        PrecisionReport("auto", "fp32", "failed", "bf16", 32, 0.98, 0.999, None, "no judgements"),
        PrecisionReport("fp32", "fp32", "not-run", note="fp32 as configured"),
        PrecisionReport.not_applicable("precomputed embeddings"),
    ],
)
def test_a_report_survives_json_and_the_child_process_form(report: PrecisionReport) -> None:
    """``as_json`` (stored, served) and ``asdict`` (the runner's child writes its ``Result``)."""
    assert PrecisionReport.from_json(report.as_json()) == report
    assert PrecisionReport.from_json(asdict(report)) == report


def test_the_json_states_the_shift_and_the_shift_is_candidate_minus_fp32() -> None:
    doc = PASSED.as_json()["shift"]
    assert doc["recall_shift"] == pytest.approx(0.9375 - 0.875)
    assert doc["ndcg_shift"] == pytest.approx(0.71 - 0.7)


def test_a_bad_stored_report_is_a_value_error_naming_the_field() -> None:
    with pytest.raises(ValueError, match="verdict 'maybe'"):
        PrecisionReport.from_json({**PASSED.as_json(), "verdict": "maybe"})
    with pytest.raises(ValueError, match="precision report: KeyError"):
        PrecisionReport.from_json({**PASSED.as_json(), "shift": {"queries": 1}})


def test_each_verdict_reads_as_one_line() -> None:
    assert PASSED.describe() == (
        "Encoded in bf16 (auto requested; parity probe passed for bf16: min cosine 0.999981 on "
        "32 texts (threshold 0.999); probe recall@10 shift +0.0625, nDCG@10 shift +0.0100 "
        "(1 of 16 probe queries flip, 64 documents))"
    )
    failed = PrecisionReport("auto", "fp32", "failed", "bf16", 32, 0.98, 0.999, None, "why")
    assert failed.describe() == (
        "Encoded in fp32 (auto requested; parity probe FAILED for bf16: min cosine 0.980000 on "
        "32 texts (threshold 0.999); probe shift not measured: why)"
    )
    same = PrecisionReport(
        "auto",
        "bf16",
        "passed",
        "bf16",
        8,
        1.0,
        0.999,
        SHIFT.__class__(
            **{**asdict(SHIFT), "recall_candidate": 0.875, "ndcg_candidate": 0.7, "flips": 0}
        ),
    )
    assert "probe recall@10 shift +0.0000, nDCG@10 shift +0.0000 (0 of 16" in same.describe()
    rejected = PrecisionReport("auto", "fp32", "failed", "bf16", 32, 0.98, 0.999, SHIFT)
    assert rejected.describe().endswith(
        "probe recall@10 shift +0.0625, nDCG@10 shift +0.0100 (1 of 16 probe queries flip, "
        "64 documents) of the rejected bf16)"
    )
    broken = PrecisionReport("auto", "fp32", "failed", "bf16", note="the bf16 copy failed: E")
    assert broken.describe() == (
        "Encoded in fp32 (auto requested; parity probe FAILED for bf16: the bf16 copy failed: E)"
    )
    assert PrecisionReport("fp32", "fp32", "not-run", note="fp32 as configured").describe() == (
        "Encoded in fp32 (parity probe not run: fp32 as configured)"
    )
    assert PrecisionReport.not_applicable("precomputed embeddings").describe() == (
        "Precision: not applicable (precomputed embeddings)"
    )
