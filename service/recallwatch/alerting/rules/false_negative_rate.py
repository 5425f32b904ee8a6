"""``false_negative_rate``: the lower bound of the mined set's FN-rate interval above a threshold.

The rule reads the checkpoint's latest false-negative estimate (``store.results.fn_estimate``)
and fires when the lower bound of the FN-rate interval is above ``threshold``. ``FnEstimateRule``
is the part it shares with ``label_noise_amplification``: their alerts carry the estimates of this
and the previous mining config, the mining change between them and the estimator's filter
recommendation. An estimate made from people's labels on ``/review`` (source ``review``,
or ``ppi`` where they correct a judge's labels, ``daemon.review_feed``) names them in the alert:
how many labels, of which relevant, by whom, the SPRT's decision over them and, for ``ppi``, the
judge's agreement with people and the people-only and judge-only rates (``human_evidence``); the
alert opens and resolves as the labels change, without a restart.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol, TypeVar

from recallwatch.alerting.evidence import fn_snapshot, recommendation
from recallwatch.alerting.rules.base import AlertRule, Decision, RuleConfig, register
from recallwatch.config import FalseNegativeRateRule
from recallwatch.records.alert import Alert, AlertKey, Evidence, Resolution
from recallwatch.store import CheckpointRow, FnEstimate

__all__ = ["HUMAN_SOURCES", "FalseNegativeRate", "FnEstimateRule", "fn_rate_high", "human_evidence"]


def fn_rate_high(lower: float, threshold: float) -> bool:
    """The FN rate is too high when its interval's lower bound exceeds ``threshold``."""
    return lower > threshold


#: Sources of an estimate made with people's labels: alone (``review``) or correcting a judge's
#: (``ppi``, prediction-powered; ``daemon.review_ppi``).
HUMAN_SOURCES = ("review", "ppi")


def _pct(iv: Any) -> str:
    if not isinstance(iv, dict) or iv.get("estimate") is None:
        return "-"
    return f"{iv['estimate']:.1%} [{iv['lower']:.1%}, {iv['upper']:.1%}]"


def _rate(v: Any) -> str:
    return "-" if v is None else f"{v:.0%}"


def human_evidence(estimate: FnEstimate) -> tuple[dict[str, Any], str]:
    """What an estimate from review labels says of them: details, and a sentence (else empty).

    A prediction-powered one (source ``ppi``) also names its judge, the judge's agreement with
    people and the people-only and judge-only rates beside it.
    """
    human = estimate.details.get("human_labels")
    if estimate.source not in HUMAN_SOURCES or not isinstance(human, dict):
        return {}, ""
    sprt = estimate.details.get("sprt")
    decision = sprt.get("decision") if isinstance(sprt, dict) else None
    status = str(estimate.details.get("sprt_status") or "")
    reviewers = ", ".join(str(r) for r in human.get("reviewers") or []) or "nobody"
    labels = (
        f"{human.get('labels', 0)} human review labels ({human.get('relevant', 0)} relevant, "
        f"{human.get('not_relevant', 0)} not relevant, {human.get('unsure', 0)} unsure; "
        f"reviewers: {reviewers})"
    )
    details: dict[str, Any] = {
        "source": estimate.source,
        "human_labels": dict(human),
        "sprt_decision": decision,
        "sprt_status": status,
        "sprt": dict(sprt) if isinstance(sprt, dict) else None,
    }
    people = estimate.details.get("people")
    if estimate.source != "ppi" or not isinstance(people, dict):
        return details, f"from {labels}; SPRT: {status or 'n/a'}"
    estimates = people.get("estimates") or {}
    agreement = (people.get("agreement") or [{}])[0]
    kappa = agreement.get("kappa")
    sentence = (
        f"prediction-powered: judge {people.get('judge')} on the whole sample corrected by "
        f"{labels}; judge agreement with people: sensitivity "
        f"{_rate(agreement.get('sensitivity'))}, specificity "
        f"{_rate(agreement.get('specificity'))}, kappa "
        f"{'-' if kappa is None else format(kappa, '.2f')} over {agreement.get('pairs', 0)} "
        f"pairs; people only {_pct(estimates.get('people'))}, judge only "
        f"{_pct(estimates.get('judge'))}; SPRT: {status or 'n/a'}"
    )
    details.update(
        used=people.get("used"),
        estimates=dict(estimates),
        agreement=dict(agreement),
        judge=estimate.details.get("judge"),
    )
    return details, sentence


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
        human, said = human_evidence(est)
        if said:
            what = f"{what}, {said}"
        key = AlertKey(self.config.name, row.run)

        def build(aid: str) -> Alert:
            evidence_reader = self.context.evidence
            evidence = Evidence(
                fn_before=fn_snapshot(evidence_reader.previous_mining_estimate(row)),
                fn_after=fn_snapshot(est),
                mining_diff=evidence_reader.mining_diff_before(row),
                recommendation=recommendation(est),
                details={
                    "threshold": self.config.threshold,
                    "oracle": est.oracle,
                    "source": est.source,
                    **human,
                },
            )
            return self.new_alert(aid, key, row, f"{what} ({row.run}, {row.name})", what, evidence)

        resolution = None
        if human and not firing:
            now_is = (
                f"false-negative rate of the mined set {est.estimate:.1%} "
                f"[{est.lower:.1%}, {est.upper:.1%}] {said}"
            )
            resolution = Resolution(
                summary=f"resolved by review labels: {now_is} ({row.run}, {row.name})",
                description=f"resolved by review labels: {now_is}",
                checkpoint=row.name,
                step=row.step,
            )
        return [self.decision(key, firing, row.name, build, row, resolution=resolution)]


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
