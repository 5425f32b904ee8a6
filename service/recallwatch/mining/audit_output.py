"""An FN-rate audit for people and machines: a table, JSON, the recommendation in a sentence."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from recallwatch.mining.audit import TRAINING_ALTERNATIVE, FNRateAudit
from recallwatch.mining.mined import MinedSet
from recallwatch.mining.people import PeopleAndJudge
from recallwatch.stats import Interval

__all__ = ["audit_json", "format_audit", "format_people", "recommendation_text"]

_DECISIONS = {
    "too_high": "decided: the rate is TOO HIGH (H1)",
    "acceptable": "decided: the rate is acceptable (H0)",
    "continue": "undecided: more labels needed",
    "undecided": "stopped undecided at the label limit",
}


def _pct(i: Interval | None) -> tuple[str, str]:
    if i is None:
        return "n/a", ""
    return f"{i.estimate:6.1%}", f"[{i.lower:.1%}, {i.upper:.1%}]"


def _times(v: float) -> str:
    return f"{v:.2f}x" if math.isfinite(v) else "inf"


def format_audit(audit: FNRateAudit, mined: MinedSet) -> str:
    """A plain-text report: rates with intervals, buckets, amplification, SPRT, recommendation."""
    r = audit.rates
    o = audit.oracle
    lines = [
        f"false-negative rate of {mined.path} ({mined.format}), judged by {o.spec}"
        + ("  [PROXY: the checkpoint judges itself]" if o.proxy else ""),
        f"negatives: {audit.total_negatives:,} of {len(mined.queries):,} queries; "
        f"{audit.eligible_negatives:,} judgeable by the oracle",
        f"sample: {r.method}, {r.drawn} drawn ({audit.size_note}, seed {audit.config.seed}); "
        f"{r.judged} judged, {r.unsure} unsure, {r.unjudged} without judgement",
        "",
        f"{'':24}{'rate':>8}  {'95% interval':<18}{'FN / judged':>14}",
    ]
    est, ci = _pct(r.overall)
    lines.append(
        f"{'overall (Wilson)':24}{est:>8}  {ci:<18}{f'{r.false_negatives} / {r.judged}':>14}"
    )
    est, ci = _pct(r.stratified)
    lines.append(f"{'stratified by rank':24}{est:>8}  {ci:<18}")
    lines.append("by mining rank")
    for b in r.buckets:
        negatives = b.population if b.negatives is None else b.negatives
        if negatives == 0:
            continue
        est, ci = _pct(b.rate)
        counts = f"{b.false_negatives} / {b.judged}"
        size = f"{negatives:,} negatives"
        if b.population != negatives:
            size += f", {b.population:,} judgeable"
        lines.append(f"  {b.label:<22}{est:>8}  {ci:<18}{counts:>14}   ({size})")
    a = audit.amplification
    if a.ratio is not None:
        rnd = a.random
        ratio = _times(a.ratio.estimate) if math.isfinite(a.ratio.estimate) else "n/a"
        lines.append(
            f"{'amplification':24}{ratio:>8}  "
            f"[{_times(a.ratio.lower)}, {_times(a.ratio.upper)}]   random negatives: "
            f"{a.control_false_negatives} / {a.control_judged}"
            + (f" = {rnd.estimate:.2%}" if rnd is not None else "")
        )
    else:
        lines.append(f"{'amplification':24}{'n/a':>8}  ({a.note})")
    if a.note and a.ratio is not None:
        lines.append(f"  note: {a.note}")
    s = audit.sequential
    d = s.design
    head = f"SPRT H0 rate <= {d.p0:.0%} vs H1 >= {d.p1:.0%} (alpha {d.alpha:g}, beta {d.beta:g})"
    if s.result is None:
        lines.append(f"{head}: n/a ({s.note})")
    else:
        lines.append(
            f"{head}: {_DECISIONS[s.result.decision]} after {s.result.labels} labels "
            f"({s.result.false_negatives} FN)"
        )
    rec = audit.recommendation
    crit = "upper bound" if rec.criterion == "upper" else "estimate"
    lines.append("")
    if rec.best is None:
        lines.append(f"recommendation (target {rec.target:.0%}): none")
    elif not rec.needed:
        lines.append(
            f"recommendation: no filter needed (projected {rec.best.projected.estimate:.1%}, "
            f"{crit} {rec.best.projected.upper:.1%} <= target {rec.target:.0%})"
        )
    else:
        best = rec.best
        lines.append(
            f"recommendation (target {rec.target:.0%}, {crit}): {best.spec.describe()} -> "
            f"projected {best.projected.estimate:.1%} (upper {best.projected.upper:.1%}), drops "
            f"{best.dropped_fraction:.1%} of negatives"
        )
        for opt in rec.options[1:]:
            lines.append(
                f"  or {opt.spec.describe()}: projected {opt.projected.estimate:.1%} "
                f"(upper {opt.projected.upper:.1%}), drops {opt.dropped_fraction:.1%}"
            )
    if rec.remining is not None:
        pres = rec.remining
        if pres.best is not None:
            lines.append(f"re-mining (target {pres.target:.0%}): {pres.best.sentence()}")
        else:
            lines.append(f"re-mining (target {pres.target:.0%}): none confirmed")
    notes = r.notes + rec.notes + mined.report.assumptions
    if rec.remining is not None:
        notes += rec.remining.notes
    if mined.report.unmatched_negatives or mined.report.unmatched_positives:
        notes.append(
            f"{mined.report.unmatched_negatives} negative and {mined.report.unmatched_positives} "
            "positive text(s) matched no corpus document and were excluded"
        )
    if notes:
        lines.append("")
        lines.extend(f"note: {n}" for n in notes)
    return "\n".join(line.rstrip() for line in lines)


def audit_json(audit: FNRateAudit, mined: MinedSet) -> dict[str, Any]:
    """The full audit as a JSON document."""
    return {
        "mined_set": str(mined.path),
        "format": mined.format,
        "import": mined.report.as_dict(),
        **audit.as_dict(),
    }


#: Above this fraction of negatives dropped, a filter is named after the re-mining, not before.
FILTER_DROPS_TOO_MUCH = 0.5


def recommendation_text(recommendation: Mapping[str, Any] | None) -> str | None:
    """One sentence from the FN estimator's recommendation (``Recommendation.as_dict()``)."""
    if not recommendation:
        return None
    best = recommendation.get("best")
    target = recommendation.get("target")
    if not recommendation.get("needed"):
        return "no filter needed: the mined set is within the false-negative target" + (
            f" ({target:.0%})" if isinstance(target, int | float) else ""
        )
    remining = recommendation.get("remining") or {}
    remine = remining.get("sentence") if isinstance(remining, Mapping) else None
    if not best:
        if remine:
            return f"no filter of the mined set meets the target; {remine}"
        notes = recommendation.get("notes") or []
        return str(notes[0]) if notes else "no candidate filter meets the false-negative target"
    options: Sequence[Mapping[str, Any]] = recommendation.get("options") or [best]

    def one(o: Mapping[str, Any]) -> str:
        projected = (o.get("projected") or {}).get("estimate")
        rate = f"projected FN rate {projected:.1%}" if projected is not None else "projected"
        return (
            f"{o.get('describe')}: {rate}, drops {o.get('dropped_fraction', 0.0):.0%} of negatives"
        )

    text = f"set {one(best)}"
    others = [o for o in options if o.get("describe") != best.get("describe")][:1]
    if others:
        text += f" (or {one(others[0])})"
    alternative = [
        n
        for n in recommendation.get("notes") or []
        if isinstance(n, str) and n.startswith(TRAINING_ALTERNATIVE)
    ]
    if alternative:
        text += "; " + alternative[0]
    if remine and float(best.get("dropped_fraction") or 0.0) > FILTER_DROPS_TOO_MUCH:
        # A filter that leaves few negatives is no fix: the re-mining comes first.
        return f"{remine}; a filter would drop {best.get('dropped_fraction', 0.0):.0%} ({text})"
    if remine:
        text += f"; or {remine}"
    return text


def format_people(people: PeopleAndJudge) -> str:
    """The judge-only, people-only and prediction-powered rates, and the judge's agreement."""
    lines = ["", f"judge {people.judge} and people (used: {people.used} — {people.why})"]
    rows = [
        ("prediction-powered", people.ppi),
        ("people only", None if people.people_only is None else people.people_only.best),
        ("judge only", people.judge_only.best),
    ]
    for name, iv in rows:
        est, ci = _pct(iv)
        lines.append(f"  {name:22}{est:>8}  {ci}")
    for a in people.agreement:
        sens = "n/a" if a.sensitivity is None else f"{a.sensitivity:.0%}"
        spec = "n/a" if a.specificity is None else f"{a.specificity:.0%}"
        kappa = "n/a" if a.kappa is None else f"{a.kappa:.2f}"
        lines.append(
            f"  agreement of {a.judge}: {a.pairs} pairs, sensitivity {sens}, specificity {spec}, "
            f"kappa {kappa} (TP {a.true_positive}, FN {a.false_negative}, FP {a.false_positive}, "
            f"TN {a.true_negative})"
        )
    lines.extend(f"  note: {n}" for n in people.notes)
    return "\n".join(lines)
