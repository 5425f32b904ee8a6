"""``sizing``: free judges get a census (up to what they give free), paid ones a budget."""

from __future__ import annotations

import pytest

from recallwatch.mining.sizing import DEFAULT_SAMPLE_SIZE, audit_sample_size


def test_free_judge_gets_a_census() -> None:
    got = audit_sample_size(4035, free_labels=1_000_000, judge="qrels:audit.tsv")
    assert got.size == 4035 and got.census and "census of 4,035" in got.note
    assert "qrels:audit.tsv" in got.note and "free" in got.note


def test_free_judge_capped_at_what_it_gives_free() -> None:
    got = audit_sample_size(80_000, free_labels=5_000)
    assert got.size == 5_000 and not got.census and "free up to" in got.note


def test_paid_judge_gets_the_default_budget() -> None:
    got = audit_sample_size(4035, free_labels=0)
    assert got.size == DEFAULT_SAMPLE_SIZE and not got.census and got.note.startswith("default")


def test_an_asked_size_or_half_width_wins_over_free() -> None:
    assert audit_sample_size(4035, free_labels=10**6, sample_size=50).size == 50
    hw = audit_sample_size(4035, free_labels=10**6, half_width=0.05)
    assert 0 < hw.size < 4035 and "±5.0%" in hw.note
    with pytest.raises(ValueError):
        audit_sample_size(-1)
