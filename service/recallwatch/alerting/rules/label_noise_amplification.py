"""``label_noise_amplification``: the mined set's FN rate too many times the random negatives'.

The rule reads the checkpoint's latest false-negative estimate (``store.results.fn_estimate``) and
fires when its amplification (mined ÷ random FN rate) is known and above ``threshold``; its alert
carries the same evidence as ``false_negative_rate``'s (``FnEstimateRule``).
"""

from __future__ import annotations

import math

from recallwatch.alerting.rules.base import register
from recallwatch.alerting.rules.false_negative_rate import FnEstimateRule
from recallwatch.config import AmplificationRule
from recallwatch.store import FnEstimate

__all__ = ["LabelNoiseAmplification", "amplification_high"]


def amplification_high(amplification: float | None, threshold: float) -> bool:
    """Label-noise amplification above ``threshold`` (unknown amplification never fires)."""
    return amplification is not None and math.isfinite(amplification) and amplification > threshold


@register
class LabelNoiseAmplification(FnEstimateRule[AmplificationRule]):
    """Label-noise amplification (mined ÷ random FN rate) above ``threshold``."""

    type = "label_noise_amplification"
    alertname = "LabelNoiseAmplificationHigh"

    def judge(self, estimate: FnEstimate) -> tuple[bool, str]:
        """Fires when the amplification is known and above the threshold."""
        threshold = self.config.threshold
        amp = "unknown" if estimate.amplification is None else f"{estimate.amplification:.1f}x"
        what = f"label-noise amplification {amp} (threshold {threshold:g}x)"
        return amplification_high(estimate.amplification, threshold), what
