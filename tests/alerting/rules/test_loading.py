"""The rules package registers each built-in rule type from its module (or package's ``rule``)."""

from __future__ import annotations

from recallwatch.alerting.rules import RULE_TYPES


def test_each_built_in_type_is_registered_by_its_own_rule_module() -> None:
    built_in = {
        t: cls.__module__
        for t, cls in RULE_TYPES.items()
        if cls.__module__.startswith("recallwatch.")
    }
    assert built_in == {
        "recall_regression": "recallwatch.alerting.rules.recall_regression.rule",
        "false_negative_rate": "recallwatch.alerting.rules.false_negative_rate",
        "label_noise_amplification": "recallwatch.alerting.rules.label_noise_amplification",
        "recall_floor": "recallwatch.alerting.rules.recall_floor",
        "evaluation_failing": "recallwatch.alerting.rules.evaluation_failing",
        "no_recent_evaluation": "recallwatch.alerting.rules.no_recent_evaluation",
        "early_warning": "recallwatch.alerting.rules.early_warning",
    }
