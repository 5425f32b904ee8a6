"""Where the judge is a model, the recommendation names GISTEmbedLoss and when it applies."""

from __future__ import annotations

from recallwatch.mining.audit import training_alternative
from recallwatch.mining.audit_output import recommendation_text
from recallwatch.mining.oracles import OracleInfo


def _model(scorer: str) -> OracleInfo:
    return OracleInfo("model", f"model:{scorer}", details={"scorer": scorer})


def test_a_cross_encoder_judge_names_gist_with_a_bi_encoder_guide() -> None:
    text = training_alternative(_model("cross-encoder"))
    assert text is not None and "GISTEmbedLoss" in text
    assert "guide must be a bi-encoder" in text and "in-batch negatives" in text
    rec = {
        "needed": True,
        "best": {"describe": "range_min=3", "dropped_fraction": 0.1, "projected": {}},
        "notes": [text],
    }
    sentence = recommendation_text(rec)
    assert sentence is not None and sentence.startswith("set range_min=3")
    assert "GISTEmbedLoss" in sentence


def test_a_bi_encoder_judge_can_be_the_guide_itself() -> None:
    text = training_alternative(_model("minilm-judge"))
    assert text is not None and "guide=<this judge>" in text


def test_qrels_and_labels_name_no_training_alternative() -> None:
    assert training_alternative(OracleInfo("qrels", "qrels:x")) is None
    ensemble = OracleInfo(
        "ensemble", "e", members=(OracleInfo("labels", "l"), _model("bi-encoder"))
    )
    assert training_alternative(ensemble) is not None
