"""The audit's texts for people: the recommendation in one sentence."""

from __future__ import annotations

from recallwatch.mining.audit_output import recommendation_text


def test_recommendation_text() -> None:
    rec = {
        "target": 0.05,
        "needed": True,
        "best": {
            "describe": "range_min=10",
            "dropped_fraction": 0.21,
            "projected": {"estimate": 0.038},
        },
        "options": [
            {
                "describe": "range_min=10",
                "dropped_fraction": 0.21,
                "projected": {"estimate": 0.038},
            },
            {
                "describe": "relative_margin=0.05",
                "dropped_fraction": 0.24,
                "projected": {"estimate": 0.041},
            },
        ],
    }
    assert recommendation_text(rec) == (
        "set range_min=10: projected FN rate 3.8%, drops 21% of negatives "
        "(or relative_margin=0.05: projected FN rate 4.1%, drops 24% of negatives)"
    )
    assert recommendation_text({"needed": False, "target": 0.05}) == (
        "no filter needed: the mined set is within the false-negative target (5%)"
    )
    assert recommendation_text(None) is None
