"""Alerts with realistic evidence, for the rendering and delivery tests."""

from __future__ import annotations

from recallwatch.alerting.rules import RULE_TYPES
from recallwatch.records.alert import (
    Alert,
    AlertKey,
    BaselineRef,
    Evidence,
    FnSnapshot,
    LostQueryRef,
    MetricChange,
    MiningKeyChange,
    alert_id,
)
from recallwatch.stats import Interval

T0 = 1_790_000_000.0


def regression_alert(
    *, lost: int = 37, mining_keys: int = 2, text_length: int = 60, status: str = "firing"
) -> Alert:
    """A recall@10 regression after a mining change, with ``lost`` lost queries."""
    key = AlertKey("recall-after-mining", "run-a", "scifact", 10, "checkpoint-1000")
    diff = [MiningKeyChange("range_min", 0, 10, "changed")]
    diff += [
        MiningKeyChange(f"extra.key_{i:04d}", None, "v" * text_length, "added")
        for i in range(mining_keys - 1)
    ]
    top = tuple(
        LostQueryRef(
            query_id=f"q{i}",
            query_text=f"does <b>&</b> treatment {i} reduce " + "x" * text_length,
            doc_id=f"d{i}",
            doc_title=f"A trial of treatment {i} " + "y" * text_length,
            rank_before=1 + i,
            rank_after=0 if i % 2 else 37,
            lost=1,
        )
        for i in range(min(lost, 5))
    )
    aid = alert_id(key, "checkpoint-1500")
    return (
        Alert(
            id=aid,
            key=key,
            rule_type="recall_regression",
            alertname=RULE_TYPES["recall_regression"].alertname,
            severity="critical",
            status="firing",
            summary="recall@10 fell 5.0 points after a mining change (run-a, checkpoint-1500)",
            description="recall@10 0.7200 -> 0.6700 vs checkpoint-1000, p = 0.0001",
            run="run-a",
            checkpoint="checkpoint-1500",
            step=1500,
            started_at=T0,
            evidence=Evidence(
                regression_kind="mining_change",
                metric=MetricChange(
                    metric="recall",
                    k=10,
                    dataset="scifact",
                    before=Interval(0.72, 0.69, 0.75),
                    after=Interval(0.67, 0.64, 0.70),
                    difference=Interval(-0.05, -0.065, -0.035),
                    p_value=1e-4,
                    alpha=0.01,
                    min_drop=0.01,
                    queries=1000,
                    permutations=10_000,
                ),
                baseline=BaselineRef("checkpoint-1000", 1000, "previous_mining", "best", "ab" * 32),
                mining_diff=tuple(diff),
                fn_before=FnSnapshot(0.031, 0.015, 0.06, "qrels", 200, 1.4),
                fn_after=FnSnapshot(0.12, 0.085, 0.17, "qrels", 200, 4.2),
                lost_count=lost,
                lost_top=top,
                recommendation="set range_min=10: projected FN rate 3.8%, drops 21% of negatives",
            ),
            links={
                "dashboard": "http://grafana.example/d/recallwatch?var-run=run-a",
                "alert": f"http://recallwatch.example/api/v1/alerts/{aid}",
            },
        )
        if status == "firing"
        else regression_alert(lost=lost, mining_keys=mining_keys, text_length=text_length).resolved(
            T0 + 3600, checkpoint="checkpoint-2000", step=2000
        )
    )
