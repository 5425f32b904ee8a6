"""The early_warning rule in the engine: fired on an early warning while the exact evaluation
runs, once per checkpoint; resolved with a follow-up when the exact evaluation clears, confirms or
fails; recorded, not sent, for a backfill checkpoint. (The whole path in a real daemon, with real
receivers: tests/daemon/test_early_alerts.py.)"""

from __future__ import annotations

import json

import pytest

from recallwatch.alerting.early import early_text, followup_text
from recallwatch.alerting.engine import Alerting
from recallwatch.config import parse_config
from recallwatch.errors import ConfigError
from recallwatch.records.alert import iso
from recallwatch.store import CheckpointRow, EarlyVerdict, NewEarlyVerdict, Store
from recallwatch.synthetic.heldout import SyntheticSet
from tests.alerting.helpers import A, Clock, Run, hits, make_config, outbox

RULE = {"name": "early", "type": "early_warning"}


def _warn(store: Store, run: Run, row: CheckpointRow, baseline: CheckpointRow) -> EarlyVerdict:
    """Record a warning early verdict of ``row`` against ``baseline``'s exact evaluation."""
    [ev] = store.results.current_evaluations(baseline.id)
    store.early.record(
        NewEarlyVerdict(
            checkpoint_id=row.id,
            dataset="synth",
            config_hash=run.key,
            baseline_evaluation_id=ev.id,
            metric="recall",
            k=10,
            upper_bound=0.7123,
            baseline=0.9,
            p_value=0.001,
            alpha=0.01,
            min_drop=0.01,
            warned=True,
            pool_docs=2000,
            corpus_docs=100_000,
            seconds=1.0,
            created_at=run.clock(),
        )
    )
    verdict = store.early.get(row.id, "synth", run.key)
    assert verdict is not None
    return verdict


def _bodies(store: Store, event: str) -> list[list[dict[str, object]]]:
    rows = store.db.query("SELECT body FROM outbox WHERE event = ? ORDER BY id", (event,))
    return [json.loads(bytes(r[0])) for r in rows]


def test_fires_once_with_its_text_and_link_then_the_exact_pass_clears_it(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(synthetic.path, [RULE])
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    first = run.add(100, A, hits(30))
    second = run.add(200, A, hits(30))
    verdict = _warn(store, run, second, first)
    assert verdict.baseline_checkpoint == "checkpoint-100"

    alerting.after_early(second, verdict)
    (record,) = store.ledger.open_alerts()
    alert = record.alert
    assert alert.alertname == "RecallEarlyWarning" and alert.severity == "warning"
    assert alert.key.baseline == "checkpoint-100" and alert.checkpoint == "checkpoint-200"
    assert (
        alert.description
        == early_text(verdict)
        == (
            "early: recall@10 <= 0.71 on a pool of 2,000 documents against 0.90 exact at "
            "checkpoint-100; confirming with the exact evaluation…"
        )
    )
    assert alert.links["evaluation"] == "http://rw.example/runs/r/checkpoints/checkpoint-200"
    [[am]] = _bodies(store, "firing")
    assert am["labels"]["alertname"] == "RecallEarlyWarning"  # type: ignore[index]

    # Decided again (a restart during the exact pass): nothing new is sent.
    alerting.after_early(second, verdict)
    assert [e for e, _, _ in outbox(store)] == ["firing"]

    # The exact pass does not confirm it: resolved, with the follow-up text.
    store.early.resolve(verdict.id, exact=0.78, p_value=0.4, regressed=False, at=clock())
    cleared = store.early.get(second.id, "synth", run.key)
    assert cleared is not None and cleared.state == "cleared"
    alerting.after_checkpoint(second)
    assert store.ledger.open_alerts() == []
    [[resolved]] = _bodies(store, "resolved")
    annotations = resolved["annotations"]  # type: ignore[index]
    assert annotations["summary"] == f"RESOLVED: {followup_text(cleared)}"
    assert followup_text(cleared) == (
        "early warning for checkpoint-200 cleared by the exact evaluation: recall@10 0.78"
    )
    assert resolved["endsAt"] == iso(clock())  # type: ignore[index]
    # Never sent again for this checkpoint, even if decided once more.
    alerting.after_early(second, verdict)
    assert [e for e, _, _ in outbox(store)] == ["firing", "resolved"]


def test_a_confirmed_warning_resolves_and_the_regression_alert_notes_it(
    store: Store, synthetic: SyntheticSet
) -> None:
    rules = [
        RULE,
        {"name": "drop", "type": "recall_regression", "compare_with": "same_mining"},
    ]
    config = make_config(synthetic.path, rules)
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    rows = [run.add(step, A, hits(30, shift=step // 100)) for step in (100, 200, 300)]
    for row in rows:
        alerting.after_checkpoint(row)
    clock.now += 60
    # The early verdict is recorded before the exact evaluation; the Run helper records both at
    # once, so the warning is decided on the evaluated row (the rule reads only the verdict).
    damaged = run.add(400, A, hits(150))
    verdict = _warn(store, run, damaged, rows[-1])
    alerting.after_early(damaged, verdict)
    store.early.resolve(verdict.id, exact=0.5, p_value=0.0001, regressed=True, at=clock())
    alerting.after_checkpoint(damaged)

    by_rule = {r.alert.key.rule: r for r in store.ledger.alerts()}
    early, drop = by_rule["early"], by_rule["drop"]
    assert early.status == "resolved" and drop.status == "firing"
    assert early.alert.summary.startswith(
        "RESOLVED: early warning for checkpoint-400 confirmed by the exact evaluation"
    )
    note = f"early warning at {iso(verdict.created_at)} confirmed"
    assert drop.alert.evidence.details["early_warning"]["note"].startswith(note)
    assert note[1:] in drop.alert.description


def test_a_failed_exact_evaluation_resolves_the_warning_as_neither(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(synthetic.path, [RULE])
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    first = run.add(100, A, hits(30))
    failed = run.add(200, A, None)
    alerting.after_early(failed, _warn(store, run, failed, first))
    alerting.after_checkpoint(failed)
    (record,) = store.ledger.alerts()
    assert record.status == "resolved"
    assert "neither confirmed nor cleared: the exact evaluation failed (bad_embeddings)" in (
        record.alert.description
    )


def test_a_backfill_checkpoint_records_the_warning_without_sending_it(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(synthetic.path, [RULE])
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    first = run.add(100, A, hits(30), completed_ago=3 * 86400)
    old = run.add(200, A, hits(30), completed_ago=3 * 86400)
    alerting.after_early(old, _warn(store, run, old, first))
    (record,) = store.ledger.open_alerts()
    assert record.alert.alertname == "RecallEarlyWarning"
    assert outbox(store) == [] and alerting.suppressed["backfill"] == 1


def test_the_rule_needs_the_early_pass(synthetic: SyntheticSet) -> None:
    doc = make_config(synthetic.path, [RULE]).model_dump(mode="json")
    for key in ("store", "http"):
        doc.pop(key)
    doc["runs"][0] = {"name": "r", "directory": "/nonexistent"}
    doc["evaluation"]["early"]["enabled"] = False
    with pytest.raises(ConfigError, match="early_warning needs the early pass"):
        parse_config(doc)
