"""A checkpoint's regression verdicts and FN estimates in the JSON API, from its views."""

from __future__ import annotations

from fastapi.testclient import TestClient

from recallwatch.store import FnBucket, FnEstimate, Store
from recallwatch.views.checkpoints import checkpoint_of, checkpoints
from tests.web.helpers import app_over

RUN = "/api/v1/runs/demo"


def _audit_and_judge(store: Store) -> None:
    """An FN estimate on checkpoint-200; checkpoint-300 judged against it, regressed at recall@1."""
    by_name = {c.checkpoint.name: c.checkpoint.id for c in checkpoints(
        store, "demo", state=None, limit=10, offset=0
    ).items}  # fmt: skip
    estimate = FnEstimate(
        "qrels", 400, 12, 0.03, 0.017, 0.052, random_estimate=0.01, amplification=3.0,
        buckets=(FnBucket("1-5", 100, 9, 0.09, 0.05, 0.16),),
    )  # fmt: skip
    store.results.record_fn_estimate(by_name["checkpoint-200"], None, "h", estimate, 250.0)
    for k, value, p, regressed in ((1, 0.7, 0.004, True), (10, 0.9, 0.5, False)):
        store.ledger.record_verdict(
            by_name["checkpoint-300"],
            dataset="synth",
            metric="recall",
            k=k,
            kind="previous_mining",
            value=value,
            baseline_value=0.8 if k == 1 else 0.9,
            baseline_checkpoint_id=by_name["checkpoint-200"],
            p_value=p,
            regressed=regressed,
            now=310.0,
        )


def test_checkpoint_detail_has_its_regression_verdicts(small_store: Store) -> None:
    _audit_and_judge(small_store)
    view = checkpoint_of(small_store, "demo", "checkpoint-300")
    assert view is not None and view.regressed is True
    assert {v.baseline for v in view.verdicts} == {"checkpoint-200"}
    with TestClient(app_over(small_store)) as api:
        doc = api.get(f"{RUN}/checkpoints/checkpoint-300").json()
        assert doc["regressed"] is True
        by_k = {v["k"]: v for v in doc["regression_verdicts"]}
        assert by_k[1] == {
            "dataset": "synth",
            "metric": "recall",
            "k": 1,
            "kind": "previous_mining",
            "baseline_checkpoint": "checkpoint-200",
            "value": 0.7,
            "baseline_value": 0.8,
            "p_value": 0.004,
            "regressed": True,
            "details": {},
            "decided_at": 310.0,
        }
        assert by_k[10]["regressed"] is False and by_k[10]["p_value"] == 0.5
        # Not judged yet: no verdict, no answer either way; the alias path answers the same.
        earlier = api.get(f"{RUN}/evaluations/checkpoint-200").json()
        assert earlier["regressed"] is None and earlier["regression_verdicts"] == []


def test_checkpoints_listing_carries_each_fn_estimate(small_store: Store) -> None:
    _audit_and_judge(small_store)
    with TestClient(app_over(small_store)) as api:
        page = api.get(f"{RUN}/checkpoints").json()
        fn = {c["name"]: c["false_negatives"] for c in page["items"]}
        assert fn["checkpoint-100"] is None and fn["checkpoint-300"] is None
        assert fn["checkpoint-200"]["estimate"] == 0.03
        assert fn["checkpoint-200"]["sample_size"] == 400
        assert fn["checkpoint-200"]["buckets"][0]["rank_bucket"] == "1-5"
        # The listing's estimate is the detail's.
        detail = api.get(f"{RUN}/checkpoints/checkpoint-200").json()
        assert detail["false_negatives"] == fn["checkpoint-200"]


def test_alert_page_schema_marks_the_old_key_deprecated(small_store: Store) -> None:
    with TestClient(app_over(small_store)) as api:
        schema = api.get("/openapi.json").json()["components"]["schemas"]["AlertPage"]
    assert schema["properties"]["alerts"]["deprecated"] is True
    assert {"items", "alerts"} <= set(schema["required"])
