"""``mining/review.py``: the seeded review order, the live estimate, kappa and the export."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from recallwatch.mining.audit import AuditConfig, run_audit
from recallwatch.mining.oracles import Label, LabelsOracle, ReviewLabel
from recallwatch.mining.review import (
    agreement,
    live_estimate,
    plan_review,
    text_segments,
    write_review_labels,
)
from recallwatch.synthetic.mined import simulate_mined_set

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_stopping_early_and_reading_the_export_back_give_the_same_estimate(
    tmp_path: Path,
) -> None:
    sim = simulate_mined_set(num_queries=100, negatives_per_query=20, num_docs=3000, seed=5)
    cfg = AuditConfig(sample_size=120, seed=9, control_size=0)
    plan = plan_review(sim.mined, sim.corpus, cfg)
    assert len(plan.items) == 120
    truth = {
        (q.query_id, n.doc_id): n.doc_id in sim.relevant[q.query_id]
        for q in sim.mined.queries
        for n in q.negatives
    }
    # The first 70 items only: a review stopped early.
    labels = [
        ReviewLabel(
            i.query_id,
            i.doc_id,
            "relevant" if truth[(i.query_id, i.doc_id)] else "not_relevant",
            "ann",
            T0 + timedelta(seconds=k),
        )
        for k, i in enumerate(plan.items[:70])
    ]
    live = live_estimate(plan, labels)
    assert live.rates.judged == 70 and live.labelled == 70
    assert live.rates.population == len(sim.mined.table())  # about the whole mined set
    for suffix in ("csv", "jsonl"):
        path = write_review_labels(tmp_path / f"labels.{suffix}", labels, {})
        oracle = LabelsOracle.from_file(path)
        assert oracle.seeded_sample
        audit = run_audit(sim.mined, sim.corpus, oracle, cfg)
        assert audit.rates.best == live.rates.best
        assert audit.rates.as_dict() == live.rates.as_dict()
    assert live.status in ("keep going",) or live.status.startswith("decided")


def test_sprt_status_says_decided_on_a_planted_sample() -> None:
    sim = simulate_mined_set(num_queries=50, negatives_per_query=10, num_docs=2000, seed=1)
    plan = plan_review(sim.mined, sim.corpus, AuditConfig(sample_size=50, seed=2))
    relevant = [ReviewLabel(i.query_id, i.doc_id, "relevant", "ann") for i in plan.items[:6]]
    assert live_estimate(plan, relevant[:2]).status == "keep going"
    assert live_estimate(plan, relevant).status == "decided: too high after 5 labels"


def test_kappa_and_disagreements() -> None:
    pairs = [("q", f"d{i}") for i in range(10)]
    ann = cast(list[Label], ["relevant"] * 4 + ["not_relevant"] * 6)
    bob = cast(list[Label], ["relevant"] * 3 + ["not_relevant"] * 7)
    labels = [ReviewLabel(q, d, a, "ann", T0) for (q, d), a in zip(pairs, ann, strict=True)]
    labels += [
        ReviewLabel(q, d, b, "bob", T0 + timedelta(1)) for (q, d), b in zip(pairs, bob, strict=True)
    ]
    labels.append(ReviewLabel("q", "solo", "relevant", "ann", T0))  # one label: not counted
    result = agreement(labels)
    # po = 0.9, pe = 0.4*0.3 + 0.6*0.7 = 0.54: kappa = 0.36 / 0.46
    assert result.pairs == 10 and result.agreeing == 9
    assert result.kappa == pytest.approx(0.36 / 0.46)
    assert result.disagreements == [
        {"query_id": "q", "doc_id": "d3", "labels": {"ann": "relevant", "bob": "not_relevant"}}
    ]
    assert agreement(labels[:3]).kappa is None


def test_shared_terms_are_marked_and_the_text_is_kept_whole() -> None:
    text = "Cats <b>are</b> small; cats purr."
    segs = text_segments(text, "what are small cats")
    assert "".join(s for s, _ in segs) == text
    assert [s for s, marked in segs if marked] == ["Cats", "small", "cats"]
    assert np.all([not m for s, m in segs if "<b>" in s])
