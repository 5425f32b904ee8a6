"""``false_negative_rate``: the lower bound of the mined set's FN-rate interval above a threshold.

The rule reads the checkpoint's latest false-negative estimate (``store.results.fn_estimate``)
and fires when the lower bound of the FN-rate interval is above ``threshold``. ``FnEstimateRule``
is the part it shares with ``label_noise_amplification``: their alerts carry the estimates of this
and the previous mining config, the mining change between them and the estimator's filter
recommendation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol, TypeVar

from recallwatch.alerting.evidence import fn_snapshot, recommendation
from recallwatch.alerting.rules.base import AlertRule, Decision, RuleConfig, register
from recallwatch.config import FalseNegativeRateRule
from recallwatch.records.alert import Alert, AlertKey, Evidence
from recallwatch.store import CheckpointRow, FnEstimate

__all__ = ["FalseNegativeRate", "FnEstimateRule", "fn_rate_high"]


def fn_rate_high(lower: float, threshold: float) -> bool:
    """The FN rate is too high when its interval's lower bound exceeds ``threshold``."""
    return lower > threshold


class ThresholdRuleConfig(RuleConfig, Protocol):
    """A rule config with a ``threshold``."""

    @property
    def threshold(self) -> float: ...


ThresholdT = TypeVar("ThresholdT", bound=ThresholdRuleConfig)


class FnEstimateRule(AlertRule[ThresholdT], ABC):
    """A rule over the checkpoint's FN estimate: ``judge`` says whether it fires, and why.

    Abstract: the registered subclasses (``FalseNegativeRate``, ``LabelNoiseAmplification``)
    implement ``judge``.
    """

    @abstractmethod
    def judge(self, estimate: FnEstimate) -> tuple[bool, str]:
        """Whether the estimate fires the rule, and the sentence that says so."""

    def decide(self, row: CheckpointRow) -> list[Decision]:
        """One decision per run, from the checkpoint's latest FN estimate (none without one)."""
        est = self.context.store.results.fn_estimate(row.id)
        if est is None:
            return []
        firing, what = self.judge(est)
        key = AlertKey(self.config.name, row.run)

        def build(aid: str) -> Alert:
            evidence_reader = self.context.evidence
            evidence = Evidence(
                fn_before=fn_snapshot(evidence_reader.previous_mining_estimate(row)),
                fn_after=fn_snapshot(est),
                mining_diff=evidence_reader.mining_diff_before(row),
                recommendation=recommendation(est),
                details={"threshold": self.config.threshold, "oracle": est.oracle},
            )
            return self.new_alert(aid, key, row, f"{what} ({row.run}, {row.name})", what, evidence)

        return [self.decision(key, firing, row.name, build, row)]


@register
class FalseNegativeRate(FnEstimateRule[FalseNegativeRateRule]):
    """The lower bound of the mined set's FN-rate interval above ``threshold``."""

    type = "false_negative_rate"
    alertname = "FalseNegativeRateHigh"

    def judge(self, estimate: FnEstimate) -> tuple[bool, str]:
        """Fires on the interval's lower bound, so an uncertain estimate does not."""
        threshold = self.config.threshold
        what = (
            f"false-negative rate of the mined set {estimate.estimate:.1%} "
            f"[{estimate.lower:.1%}, {estimate.upper:.1%}]: lower bound above {threshold:.0%}"
        )
        return fn_rate_high(estimate.lower, threshold), what
