"""``store compact``: old per-query outcomes dropped, what alerts, verdicts and the next decision
need kept, the file rebuilt smaller; refused while a daemon holds the store (real SQLite)."""

from __future__ import annotations

import random
import re
from dataclasses import replace
from pathlib import Path

import pytest

from recallwatch.cli import main
from recallwatch.store import AlertWrite, NewEvaluation, Store
from recallwatch.store.compaction import plan
from tests.helpers.alerts import regression_alert

NOW = 1_800_000_000.0
OLD = NOW - 200 * 86400
#: Step -> mining fingerprint: four segments, the last two (700-1000) the current and previous.
SEGMENTS = {100: "a", 200: "a", 300: "a", 400: "b", 500: "b", 600: "b"}
SEGMENTS |= {700: "c", 800: "c", 900: "d", 1000: "d"}


def seed(path: Path) -> dict[int, int]:
    """Run ``run-a`` with one evaluation per step (600's recent, the others 200 days old), a
    verdict of 500 against 400, an alert naming 200 and its key's baseline 100; step -> id."""
    rng = random.Random(7)
    store = Store.open(path)
    try:
        run_id = store.queue.ensure_run("run-a", "/runs/a", OLD)
        ids: dict[int, int] = {}
        for step, fp in SEGMENTS.items():
            cid = store.queue.add_checkpoint(
                run_id, name=f"checkpoint-{step}", path=f"/runs/a/checkpoint-{step}", step=step,
                eval_key='{"synth":"h"}', completed_at=OLD, now=OLD, mining_fingerprint=fp * 64,
                mining_content="{}",
            )  # fmt: skip
            assert cid is not None
            ids[step] = cid
            finished = NOW - 3600 if step == 600 else OLD
            outcomes = {f"q{q}": {f"d{q}": rng.randint(0, 100)} for q in range(3000)}
            store.results.record_evaluation(
                NewEvaluation(
                    checkpoint_id=cid, dataset="synth", encoder="precomputed", config_hash="h",
                    started_at=finished - 1, finished_at=finished,
                    metrics={"recall": {10: 0.5}}, timings={"encode": 1.0},
                    counts={"queries": 3000},
                    outcomes=outcomes,
                ),
                run_id,
            )  # fmt: skip
            store.queue.set_state(cid, "evaluated", finished)
        store.ledger.record_verdict(
            ids[500], dataset="synth", metric="recall", k=10, kind="previous_mining", value=0.5,
            regressed=False, now=OLD, baseline_checkpoint_id=ids[400],
        )  # fmt: skip
        alert = regression_alert()
        alert = replace(
            alert, checkpoint="checkpoint-200", key=replace(alert.key, baseline="checkpoint-100")
        )
        store.ledger.apply_alerts(
            [AlertWrite(alert, "firing", opened_at=OLD, notified_at=OLD, repeats=0)], []
        )
    finally:
        store.close()
    return ids


def outcomes_kept(path: Path, ids: dict[int, int]) -> dict[int, bool]:
    """Step -> whether its evaluation still has per-query outcomes (the store's own read)."""
    store = Store.open(path)
    try:
        return {
            step: bool(store.results.outcomes(store.results.current_evaluations(cid)[0].id))
            for step, cid in ids.items()
        }
    finally:
        store.close()


def test_compact_drops_only_old_unreferenced_outcomes_and_shrinks_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rw.db"
    ids = seed(path)
    found = plan(path, keep_days=90, keep_checkpoints=1, now=NOW)
    # Kept: 100 and 200 (the alert), 400 (a verdict's baseline), 600 (recent), 700-1000 (the
    # current and previous mining segments; 1000 is also the newest).
    assert sorted(found.drop_ids) == sorted([ids[300], ids[500]])
    assert found.protected == 7 and found.drop_bytes > 0

    # A dry run by default: nothing changes.
    assert main(["store", "compact", "--store", str(path), "--keep-checkpoints", "1"]) == 0
    assert "dry run: nothing changed" in capsys.readouterr().out
    assert all(outcomes_kept(path, ids).values())

    # A keep of more recent checkpoints keeps more (here every one of the run).
    assert plan(path, keep_days=90, keep_checkpoints=10, now=NOW).drop_ids == ()

    args = ["--keep-checkpoints", "1", "--keep-days", "90", "--yes"]
    code = main(["store", "compact", "--store", str(path), *args])
    out = capsys.readouterr().out
    assert code == 0
    m = re.search(r"([\d,]+) bytes before, ([\d,]+) after", out)
    assert m is not None, out
    before, after = (int(g.replace(",", "")) for g in m.groups())
    assert after < before
    assert outcomes_kept(path, ids) == {s: s not in (300, 500) for s in SEGMENTS}
    # Means, counts and the aggregates are kept: the exporter's counts do not move.
    store = Store.open(path)
    try:
        assert store.views.counts_by_run() == {"run-a": len(SEGMENTS)}
        assert store.results.current_evaluations(ids[300])[0].metrics == {"recall": {10: 0.5}}
        assert [v.kind for v in store.ledger.verdicts(ids[500])] == ["previous_mining"]
    finally:
        store.close()
    assert main(["store", "check", "--store", str(path)]) == 0


def test_compact_is_refused_while_a_daemon_holds_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rw.db"
    ids = seed(path)
    serving = Store.open(path)  # holds the lock as ``serve`` does
    try:
        # The dry run only reads: it works while serving.
        assert main(["store", "compact", "--store", str(path), "--keep-checkpoints", "1"]) == 0
        assert "per-query outcomes to drop: 2 evaluations" in capsys.readouterr().out
        code = main(["store", "compact", "--store", str(path), "--keep-checkpoints", "1", "--yes"])
        assert code == 2
        assert "stop the daemon first" in capsys.readouterr().err
    finally:
        serving.close()
    assert all(outcomes_kept(path, ids).values())
