"""The decision step over a real SQLite store: rules, transitions, outbox, idempotency."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recallwatch.alerting.engine import Alerting, Notifier
from recallwatch.config import Config, dataset_key, parse_config
from recallwatch.store import (
    AlertWrite,
    CheckpointRow,
    FnEstimate,
    NewEvaluation,
    NewMessage,
    Store,
)
from recallwatch.synthetic.heldout import SyntheticSet, write_heldout
from tests.alerting.samples import regression_alert

QUERIES = 300
REC = {
    "target": 0.05,
    "needed": True,
    "best": {
        "describe": "range_min=10",
        "dropped_fraction": 0.21,
        "projected": {"estimate": 0.038},
    },
    "options": [],
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> SyntheticSet:
    return write_heldout(
        tmp_path_factory.mktemp("h"), num_docs=500, num_queries=QUERIES, relevant_per_query=1
    )


def make_config(
    heldout: Path, rules: list[dict[str, Any]], repeat: float | None = 4 * 3600.0
) -> Config:
    return parse_config(
        {
            "heldout": [{"name": "synth", "path": str(heldout)}],
            "runs": [{"name": "r", "directory": "/nonexistent"}],
            "evaluation": {"ks": [10]},
            "notifications": {
                "api_url": "http://rw.example",
                "repeat_interval_seconds": repeat,
                "channels": [{"name": "am", "type": "alertmanager", "url": "http://127.0.0.1:9"}],
                "rules": [{"channels": ["am"], **r} for r in rules],
            },
        }
    )


class Run:
    """Checkpoints with chosen per-query hits written into a real store."""

    def __init__(self, store: Store, config: Config, synthetic: SyntheticSet, clock: Clock) -> None:
        self.store, self.config, self.synthetic, self.clock = store, config, synthetic, clock
        self.run_id = store.queue.ensure_run("r", "/nonexistent", clock())
        self.key = dataset_key(config, config.runs[0], config.heldout[0])

    def add(
        self,
        step: int,
        mining: dict[str, Any] | None,
        hits: np.ndarray | None,
        *,
        fn: FnEstimate | None = None,
    ) -> CheckpointRow:
        from recallwatch.checkpoints import canonical_json, fingerprint

        self.clock.now += 60
        cid = self.store.queue.add_checkpoint(
            self.run_id,
            name=f"checkpoint-{step}",
            path=f"/nonexistent/checkpoint-{step}",
            step=step,
            eval_key=json.dumps({"synth": self.key}),
            completed_at=self.clock(),
            now=self.clock(),
            mining_fingerprint=None if mining is None else fingerprint(mining),
            mining_content=None if mining is None else canonical_json(mining),
        )
        assert cid is not None
        if hits is None:
            self.store.results.record_failure(
                cid,
                dataset="synth",
                encoder="precomputed",
                config_hash=self.key,
                started_at=self.clock(),
                finished_at=self.clock(),
                reason="bad_embeddings",
                message="NaN in row 3",
            )
        else:
            outcomes = {
                q: {next(iter(self.synthetic.qrels[q])): (1 if h else 0)}
                for q, h in zip(self.synthetic.query_ids, hits, strict=True)
            }
            self.store.results.record_evaluation(
                NewEvaluation(
                    checkpoint_id=cid,
                    dataset="synth",
                    encoder="precomputed",
                    config_hash=self.key,
                    started_at=self.clock(),
                    finished_at=self.clock(),
                    metrics={"recall": {10: float(np.mean(hits))}},
                    timings={},
                    counts={},
                    outcomes=outcomes,
                ),
                self.run_id,
            )
            if fn is not None:
                self.store.results.record_fn_estimate(
                    cid, None if mining is None else fingerprint(mining), "h", fn, self.clock()
                )
            self.store.queue.set_state(cid, "evaluated", self.clock())
        return self.store.queue.checkpoint_by_id(cid)


def hits(n_miss: int, *, shift: int = 0) -> np.ndarray:
    h = np.ones(QUERIES, dtype=bool)
    h[shift : shift + n_miss] = False
    return h


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = Store.open(tmp_path / "rw.db")
    yield s
    s.close()


def outbox(store: Store) -> list[tuple[str, str, str]]:
    rows = store._query("SELECT event, channel, message_id FROM outbox ORDER BY id")
    return [(r[0], r[1], r[2]) for r in rows]


A = {"range_min": 10, "mined_set": "a.jsonl"}
B = {"range_min": 0, "mined_set": "b.jsonl"}


def test_regression_fires_once_dedups_and_resolves(store: Store, synthetic: SyntheticSet) -> None:
    config = make_config(synthetic.path, [{"name": "reg", "type": "recall_regression"}])
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    fn_b = FnEstimate("qrels", 200, 24, 0.12, 0.08, 0.17, details={"recommendation": REC})
    for step, mining, h in ((100, A, hits(60)), (200, A, hits(50))):
        alerting.after_checkpoint(run.add(step, mining, h))
    assert outbox(store) == []  # no mining change yet
    alerting.after_checkpoint(run.add(300, B, hits(52, shift=3)))  # noise-level change
    assert outbox(store) == []
    bad = run.add(400, B, hits(70), fn=fn_b)  # 20 more queries lost vs the best (200)
    alerting.after_checkpoint(bad)
    alerting.after_checkpoint(bad)  # a re-run of the same decision writes nothing twice
    ((event, channel, _),) = outbox(store)
    assert (event, channel) == ("firing", "am")
    (record,) = store.ledger.open_alerts()
    alert = record.alert
    assert alert.key.baseline == "checkpoint-200" and alert.checkpoint == "checkpoint-400"
    ev = alert.evidence
    assert ev.regression_kind == "mining_change" and ev.metric is not None
    assert ev.metric.before.estimate == pytest.approx(250 / 300)
    assert ev.metric.after.estimate == pytest.approx(230 / 300)
    assert ev.metric.alpha == pytest.approx(0.01 / 2)  # the best of 2 candidates
    assert [(c.key, c.before, c.after) for c in ev.mining_diff] == [
        ("mined_set", "a.jsonl", "b.jsonl"),
        ("range_min", 10, 0),
    ]
    assert ev.lost_count == 20 and len(ev.lost_top) == 5
    assert ev.lost_top[0].query_text.startswith("question ")
    assert ev.lost_top[0].doc_title.startswith("Document ")
    assert ev.fn_after is not None and ev.fn_after.oracle == "qrels"
    assert ev.recommendation == ("set range_min=10: projected FN rate 3.8%, drops 21% of negatives")
    assert alert.links["alert"] == f"http://rw.example/api/v1/alerts/{alert.id}"
    (v,) = [v for v in store.ledger.verdicts(bad.id) if v["kind"] == "previous_mining"]
    assert v["regressed"] == 1 and v["p_value"] <= 0.01
    alerting.after_checkpoint(run.add(500, B, hits(71)))  # still regressed: nothing new
    assert len(outbox(store)) == 1
    alerting.after_checkpoint(run.add(600, B, hits(50)))  # recovered
    events = [e for e, _, _ in outbox(store)]
    assert events == ["firing", "resolved"]
    assert store.ledger.open_alerts() == []
    resolved = store.ledger.alert(alert.id)
    assert resolved is not None and resolved.status == "resolved"
    assert resolved.alert.checkpoint == "checkpoint-600"


def test_confirmation_needs_consecutive_regressions(store: Store, synthetic: SyntheticSet) -> None:
    config = make_config(
        synthetic.path, [{"name": "reg", "type": "recall_regression", "confirm": 2}]
    )
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.after_checkpoint(run.add(100, A, hits(50)))
    alerting.after_checkpoint(run.add(200, B, hits(70)))
    assert outbox(store) == []  # one regressed checkpoint is not enough
    alerting.after_checkpoint(run.add(300, B, hits(50)))
    alerting.after_checkpoint(run.add(400, B, hits(70)))
    assert outbox(store) == []  # not consecutive
    alerting.after_checkpoint(run.add(500, B, hits(72)))
    assert [e for e, _, _ in outbox(store)] == ["firing"]


def test_same_mining_regression_says_it_is_not_mining(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(
        synthetic.path,
        [{"name": "same", "type": "recall_regression", "compare_with": "same_mining"}],
    )
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.after_checkpoint(run.add(100, A, hits(50)))
    alerting.after_checkpoint(run.add(200, A, hits(80)))
    (record,) = store.ledger.open_alerts()
    assert record.alert.alertname == "RecallRegression"
    assert record.alert.evidence.regression_kind == "same_mining"
    assert "not caused by mining" in record.alert.summary


def test_a_new_mining_change_keeps_the_old_alert_while_still_regressed(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(synthetic.path, [{"name": "reg", "type": "recall_regression"}])
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.after_checkpoint(run.add(100, A, hits(50)))
    alerting.after_checkpoint(run.add(200, B, hits(80)))
    first = store.ledger.open_alerts()[0].alert
    # A new mining change: the baseline moves to the best of B, but nothing recovered against
    # checkpoint-100, so the old alert stays open and no RESOLVED is sent.
    alerting.after_checkpoint(run.add(300, {"range_min": 5}, hits(80)))
    assert [r.alert.id for r in store.ledger.open_alerts()] == [first.id]
    assert [e for e, _, _ in outbox(store)] == ["firing"]
    alerting.after_checkpoint(run.add(400, {"range_min": 5}, hits(50)))  # recovered
    assert store.ledger.open_alerts() == []
    assert [e for e, _, _ in outbox(store)] == ["firing", "resolved"]
    old = store.ledger.alert(first.id)
    assert old is not None and old.status == "resolved"
    assert "superseded: the baseline is now checkpoint-200" in old.alert.description
    assert "checkpoint-400 is no longer regressed against checkpoint-100" in old.alert.description


def test_fn_rate_floor_and_failing_rules(store: Store, synthetic: SyntheticSet) -> None:
    config = make_config(
        synthetic.path,
        [
            {"name": "fn", "type": "false_negative_rate", "threshold": 0.05},
            {"name": "amp", "type": "label_noise_amplification", "threshold": 3.0},
            {"name": "floor", "type": "recall_floor", "k": 10, "floor": 0.7},
            {"name": "failing", "type": "evaluation_failing", "consecutive": 2},
        ],
    )
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    high = FnEstimate("judge", 200, 20, 0.10, 0.062, 0.15, amplification=4.0)
    unsure = FnEstimate("judge", 200, 12, 0.06, 0.034, 0.10, amplification=2.0)
    alerting.after_checkpoint(run.add(100, A, hits(50), fn=unsure))
    assert store.ledger.open_alerts() == []  # lower bound 3.4% is not above 5%
    alerting.after_checkpoint(run.add(200, B, hits(100), fn=high))
    names = sorted(r.rule for r in store.ledger.open_alerts())
    assert names == ["amp", "floor", "fn"]
    fn_alert = next(r.alert for r in store.ledger.open_alerts() if r.rule == "fn")
    assert fn_alert.alertname == "FalseNegativeRateHigh"
    assert fn_alert.evidence.fn_before is not None and fn_alert.evidence.fn_before.estimate == 0.06
    alerting.after_checkpoint(run.add(300, B, None))
    assert "failing" not in {r.rule for r in store.ledger.open_alerts()}  # one failure in a row
    alerting.after_checkpoint(run.add(400, B, None))
    failing = next(r.alert for r in store.ledger.open_alerts() if r.rule == "failing")
    assert failing.alertname == "RecallwatchEvaluationFailing"
    assert failing.evidence.details["reason"] == "bad_embeddings"
    alerting.after_checkpoint(run.add(500, B, hits(10), fn=unsure))
    assert store.ledger.open_alerts() == []  # everything resolved


def test_no_recent_evaluation_and_repeats(store: Store, synthetic: SyntheticSet) -> None:
    config = make_config(
        synthetic.path,
        [{"name": "stale", "type": "no_recent_evaluation", "after_seconds": 600}],
        repeat=3600,
    )
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.tick()
    assert store.ledger.open_alerts() == []
    clock.now += 601
    alerting.tick()
    (record,) = store.ledger.open_alerts()
    assert record.alert.alertname == "RecallwatchNoRecentEvaluation"
    clock.now += 3601
    alerting.tick()  # repeat (Alertmanager channels get re-sends instead of repeats)
    events = [e for e, _, _ in outbox(store)]
    assert events[0] == "firing" and "repeat" not in events and "refresh" in events
    run.add(100, A, hits(10))
    alerting.tick()
    assert store.ledger.open_alerts() == []
    assert [e for e, _, _ in outbox(store)][-1] == "resolved"


def test_firing_alerts_repeat_on_ticks_and_two_rules_keep_their_own_verdicts(
    store: Store, synthetic: SyntheticSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_URL", "http://127.0.0.1:9/hook")
    doc = make_config(synthetic.path, [], repeat=3600).model_dump(mode="json")
    doc["notifications"]["channels"] = [
        {"name": "hook", "type": "webhook", "url_env": "HOOK_URL"},
        {"name": "am", "type": "alertmanager", "url": "http://127.0.0.1:9"},
    ]
    doc["notifications"]["rules"] = [
        {"name": "strict", "type": "recall_regression", "channels": ["hook", "am"]},
        {"name": "loose", "type": "recall_regression", "min_drop": 0.5, "channels": ["hook"]},
    ]
    for key in ("store", "http"):
        doc.pop(key)
    doc["runs"][0] = {"name": "r", "directory": "/nonexistent"}
    config = parse_config(doc)
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.after_checkpoint(run.add(100, A, hits(50)))
    bad = run.add(200, B, hits(80))
    alerting.after_checkpoint(bad)
    kinds = {v["kind"]: v["regressed"] for v in store.ledger.verdicts(bad.id)}
    assert kinds == {"previous_mining": 1, "previous_mining:loose": 0}
    assert [(e, c) for e, c, _ in outbox(store)] == [("firing", "hook"), ("firing", "am")]
    clock.now += 3599
    alerting.tick()
    assert [e for e, _, _ in outbox(store)] == ["firing", "firing", "refresh"]  # no repeat yet
    clock.now += 2
    alerting.tick()
    alerting.tick()
    events = [(e, c) for e, c, _ in outbox(store)]
    assert events.count(("repeat", "hook")) == 1 and ("repeat", "am") not in events
    assert ("refresh", "am") in events  # Alertmanager gets re-sends instead
    (record,) = store.ledger.open_alerts()
    assert record.repeats == 1


def test_pending_messages_of_removed_channels_fail_at_start(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(synthetic.path, [{"name": "reg", "type": "recall_regression"}])
    alert, clock = regression_alert(), Clock()
    store.ledger.apply_alerts(
        [AlertWrite(alert, "firing", opened_at=clock(), notified_at=clock(), repeats=0)],
        [
            NewMessage("m1", alert.id, "gone", "reg", "firing", b"{}", clock()),
            NewMessage("m2", alert.id, "am", "reg", "firing", b"[]", clock()),
        ],
    )
    notifier = Notifier(config, store, clock=clock)
    notifier.start()  # "am" is configured (nothing listens there: it stays pending)
    notifier.stop()
    states = {m.channel: (m.state, m.last_error) for m in store.outbox.deliveries(alert.id)}
    assert states["gone"] == ("failed", "the channel is no longer configured")
    assert states["am"][0] == "pending"


def test_a_late_older_checkpoint_does_not_decide_for_the_newest(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(synthetic.path, [{"name": "reg", "type": "recall_regression"}])
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.after_checkpoint(run.add(100, A, hits(50)))
    newest = run.add(300, B, hits(80))  # regressed, and finishes first
    alerting.after_checkpoint(newest)
    (record,) = store.ledger.open_alerts()
    late = run.add(200, B, hits(50))  # an older, healthy checkpoint finishes later
    alerting.after_checkpoint(late)
    assert [r.alert.id for r in store.ledger.open_alerts()] == [record.alert.id]
    assert [e for e, _, _ in outbox(store)] == ["firing"]
    (v,) = store.ledger.verdicts(late.id)  # its verdict is still recorded
    assert v["regressed"] == 0
    alerting.after_checkpoint(store.queue.checkpoint_by_id(newest.id))  # e.g. catch_up: nothing new
    assert [e for e, _, _ in outbox(store)] == ["firing"]


def test_a_late_older_regressed_checkpoint_does_not_fire(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(synthetic.path, [{"name": "reg", "type": "recall_regression"}])
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.after_checkpoint(run.add(100, A, hits(50)))
    alerting.after_checkpoint(run.add(300, B, hits(50)))
    late = run.add(200, B, hits(80))
    alerting.after_checkpoint(late)
    assert store.ledger.open_alerts() == [] and outbox(store) == []
    (v,) = store.ledger.verdicts(late.id)
    assert v["regressed"] == 1


def test_a_reopened_episode_is_a_new_alert_with_new_messages(
    store: Store, synthetic: SyntheticSet
) -> None:
    from recallwatch.alerting.engine import Decision
    from recallwatch.alerting.model import AlertKey

    config = make_config(synthetic.path, [{"name": "floor", "type": "recall_floor", "floor": 0.5}])
    clock = Clock()
    alerting = Alerting(config, store, clock=clock)
    rule = config.notifications.rules[0]
    key = AlertKey("floor", "r", "synth", 10)

    def decide(firing: bool) -> None:
        clock.now += 60
        build = alerting_build(alerting, rule, key)
        alerting._apply([Decision(rule, key, firing, "checkpoint-200", build)])

    decide(True)
    decide(True)  # a retry of the same episode (a re-queued checkpoint): nothing new
    (first,) = store.ledger.open_alerts()
    decide(False)
    decide(True)  # the same checkpoint opens the key again (a re-decision after a resolve)
    (second,) = store.ledger.open_alerts()
    assert second.alert.id != first.alert.id
    events = outbox(store)
    assert [e for e, _, _ in events] == ["firing", "resolved", "firing"]
    assert len({m for _, _, m in events}) == 3
    decide(True)  # and that episode's id is stable too
    assert [r.alert.id for r in store.ledger.open_alerts()] == [second.alert.id]
    assert len(outbox(store)) == 3


def alerting_build(alerting: Alerting, rule: Any, key: Any) -> Any:
    from recallwatch.alerting.model import Evidence

    def build(aid: str) -> Any:
        return alerting._alert(aid, rule, key, None, "below", "below", Evidence(), run="r")

    return build


def test_an_open_alert_resolves_only_when_clearly_recovered(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(synthetic.path, [{"name": "reg", "type": "recall_regression"}])
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.after_checkpoint(run.add(100, A, hits(50)))
    alerting.after_checkpoint(run.add(200, B, hits(80)))
    # 5 more queries lost than the baseline: p = 1/32 > alpha, not a new alert, but not a
    # recovery either (drop 1.7 points >= min_drop / 2, p <= resolve_alpha): it stays open.
    near = run.add(300, B, hits(55))
    alerting.after_checkpoint(near)
    assert [e for e, _, _ in outbox(store)] == ["firing"]
    (v,) = store.ledger.verdicts(near.id)
    assert v["regressed"] == 0 and 0.01 < v["p_value"] <= 0.2
    alerting.after_checkpoint(run.add(400, B, hits(80)))  # regressed again: the same episode
    alerting.after_checkpoint(run.add(500, B, hits(51)))  # drop 0.3 points: recovered
    assert [e for e, _, _ in outbox(store)] == ["firing", "resolved"]
    assert store.ledger.open_alerts() == []


def test_a_best_baseline_is_tested_at_alpha_over_the_candidates(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(synthetic.path, [{"name": "reg", "type": "recall_regression"}])
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    for step, n_miss in ((100, 60), (200, 50), (300, 55), (400, 58)):
        alerting.after_checkpoint(run.add(step, A, hits(n_miss)))
    bad = run.add(500, B, hits(58))  # 8 queries worse than the best of 4: p = 1/256
    alerting.after_checkpoint(bad)
    (v,) = store.ledger.verdicts(bad.id)
    details = json.loads(v["details"])
    assert details["baseline"] == "checkpoint-200" and details["candidates"] == 4
    assert details["alpha"] == pytest.approx(0.0025) and details["rule_alpha"] == 0.01
    assert v["p_value"] <= 0.01 and v["regressed"] == 0  # significant at 1%, not at 1% / 4
    assert outbox(store) == []


def test_an_alpha_the_test_cannot_reach_is_a_config_error(synthetic: SyntheticSet) -> None:
    from recallwatch.errors import ConfigError

    with pytest.raises(ConfigError, match=r"notifications\.rules\.0: alpha 5e-05 can never fire"):
        make_config(
            synthetic.path,
            [{"name": "reg", "type": "recall_regression", "alpha": 0.00005, "permutations": 1000}],
        )
    with pytest.raises(ConfigError, match=r"notifications\.rules\.0: resolve_alpha"):
        make_config(
            synthetic.path,
            [{"name": "reg", "type": "recall_regression", "alpha": 0.05, "resolve_alpha": 0.01}],
        )
    make_config(synthetic.path, [{"name": "reg", "type": "recall_regression", "alpha": 0.001}])


def test_catch_up_decides_a_failing_streak_left_undecided_by_a_crash(
    store: Store, synthetic: SyntheticSet
) -> None:
    config = make_config(
        synthetic.path, [{"name": "failing", "type": "evaluation_failing", "consecutive": 2}]
    )
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    for step in (100, 200):
        run.add(step, A, None)  # failed, and the daemon died before deciding
    notifier = Notifier(config, store, clock=clock)
    notifier.catch_up()
    (record,) = store.ledger.open_alerts()
    assert record.alert.alertname == "RecallwatchEvaluationFailing"
    assert record.alert.checkpoint == "checkpoint-200"


def test_runbook_url_is_absolute_when_configured(store: Store, synthetic: SyntheticSet) -> None:
    doc = make_config(synthetic.path, []).model_dump(mode="json")
    base = "https://git.example/recallwatch/blob/main/docs/runbook.md"
    doc["notifications"]["runbook_base_url"] = base
    doc["notifications"]["rules"] = [
        {"name": "reg", "type": "recall_regression", "channels": ["am"]}
    ]
    for key in ("store", "http"):
        doc.pop(key)
    doc["runs"][0] = {"name": "r", "directory": "/nonexistent"}
    config = parse_config(doc)
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    alerting.after_checkpoint(run.add(100, A, hits(50)))
    alerting.after_checkpoint(run.add(200, B, hits(80)))
    (record,) = store.ledger.open_alerts()
    assert record.alert.runbook_url == f"{base}#recallregressionafterminingchange"
    (body,) = store._query("SELECT body FROM outbox")
    annotations = json.loads(body[0])[0]["annotations"]
    assert annotations["runbook_url"] == f"{base}#recallregressionafterminingchange"


def test_texts_are_indexed_once_and_outside_the_decision_lock(
    store: Store, synthetic: SyntheticSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    import recallwatch.alerting.engine as alerting_module

    config = make_config(synthetic.path, [{"name": "reg", "type": "recall_regression"}])
    clock = Clock()
    run = Run(store, config, synthetic, clock)
    alerting = Alerting(config, store, clock=clock)
    reads: list[tuple[str, bool]] = []
    real = alerting_module.read_jsonl_objects

    def counting(path: Path) -> Any:
        reads.append((path.name, alerting._lock.locked()))
        return real(path)

    monkeypatch.setattr(alerting_module, "read_jsonl_objects", counting)
    alerting.after_checkpoint(run.add(100, A, hits(50)))
    for step, n_miss in ((200, 80), (300, 50), (400, 80)):  # fire, resolve, fire again
        alerting.after_checkpoint(run.add(step, B, hits(n_miss)))
    assert [e for e, _, _ in outbox(store)] == ["firing", "resolved", "firing"]
    assert sorted(reads) == [("corpus.jsonl", False), ("queries.jsonl", False)]
    (record,) = store.ledger.open_alerts()
    assert record.alert.evidence.lost_top[0].doc_title.startswith("Document ")
    assert record.alert.evidence.lost_top[0].query_text.startswith("question ")


def test_texts_of_a_held_out_set_too_large_to_index_are_streamed(
    synthetic: SyntheticSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    import recallwatch.alerting.engine as alerting_module

    monkeypatch.setattr(alerting_module, "TEXT_INDEX_MAX_BYTES", 1)
    index = alerting_module.TextIndex()
    index.warm([synthetic.path])
    query, doc = synthetic.query_ids[0], next(iter(synthetic.qrels[synthetic.query_ids[0]]))
    queries, titles = index.lookup(synthetic.path, [query], [doc])
    assert queries[query].startswith("question ") and titles[doc].startswith("Document ")
    assert index._files == {}  # nothing was indexed
