"""The hot reads use indexes: none scans a whole history table (``EXPLAIN QUERY PLAN``).

Every statement the hot paths run is recorded as it goes through ``Database.query`` over a seeded
store, then explained; a ``SCAN`` of a history table (without an index bounded by the output)
fails the test with the statement and its plan.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from recallwatch.metrics.collector import RecallwatchCollector
from recallwatch.store import Database, FnEstimate, Store
from recallwatch.views.checkpoints import checkpoints
from recallwatch.views.runs import run_history, run_names, runs
from tests.helpers.seed import add, fail, finished, record_evaluated

#: Tables that grow with every checkpoint: a read of them must not scan them whole.
HISTORY = {
    "checkpoints",
    "evaluations",
    "stage_timings",
    "fn_estimates",
    "fn_audit_failures",
    "verdicts",
    "alerts",
    "outbox",
    "checkpoint_changes",
    "early_verdicts",
}
#: Partial or failure-only indexes: scanning them reads failures only (what a counter counts).
BOUNDED = {"evaluations_failed", "fn_audit_failures_by_run"}

ESTIMATE = FnEstimate(
    oracle="o",
    sample_size=10,
    false_negatives=1,
    estimate=0.1,
    lower=0.05,
    upper=0.2,
    random_estimate=None,
    amplification=None,
    buckets=(),
    details={},
)


def _seed(store: Store, runs: int, per_run: int, *, first_step: int = 1) -> None:
    for r in range(runs):
        run_id = store.queue.ensure_run(f"run{r}", f"/runs/{r}", 1.0)
        for step in range(first_step, first_step + per_run):
            fp = f"{step // 5:064d}"
            cid = add(store, run_id, step, fp=fp, directory=f"/runs/{r}")
            if step % 7 == 0:
                fail(store, cid, "timeout")
                continue
            record_evaluated(store, run_id, finished(cid, 0.5), at=2000.0 + step)
            store.ledger.record_verdict(
                cid,
                dataset="synth",
                metric="recall",
                k=10,
                kind="same_mining",
                value=0.5,
                regressed=False,
                now=2000.0 + step,
            )
            if step % 5 == 0:
                store.results.record_fn_estimate(cid, fp, "k1", ESTIMATE, 2000.0 + step)
            elif step % 5 == 1:
                store.results.record_fn_audit_failure(
                    cid,
                    run_id,
                    fingerprint=fp,
                    config_hash="k1",
                    reason="timeout",
                    message="m",
                    now=2000.0 + step,
                )


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Store]:
    """A store of 3 runs × 40 checkpoints with failures, verdicts, estimates, failed audits."""
    store = Store.open(tmp_path / "rw.db")
    _seed(store, 3, 40)
    store.db.query("ANALYZE")
    yield store
    store.close()


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Every read statement run through ``Database.query`` while the test runs."""
    statements: list[tuple[str, Any]] = []
    real = Database.query

    def query(self: Database, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Any:
        statements.append((sql, params))
        return real(self, sql, params)

    monkeypatch.setattr(Database, "query", query)
    return statements


def _scanned_history(store: Store, sql: str, params: Any) -> list[str]:
    """The plan lines of ``sql`` that scan a history table whole."""
    plan = store.db.query("EXPLAIN QUERY PLAN " + sql, params)
    # An index walked in the order asked for, stopped by a LIMIT, reads what it returns.
    ordered = " LIMIT " in sql.upper() and not any(
        "TEMP B-TREE" in str(row["detail"]) for row in plan
    )
    bad = []
    for row in plan:
        detail = str(row["detail"])
        m = re.match(r"SCAN (\w+)(?: USING (?:COVERING )?INDEX (\w+))?", detail)
        if m is None:
            continue
        name, index = m.group(1), m.group(2)
        aliased = re.search(rf"\b({'|'.join(HISTORY)})\s+(?:AS\s+)?{name}\b", sql)
        table = name if name in HISTORY else (aliased.group(1) if aliased else None)
        if table is not None and index not in BOUNDED and not (ordered and index):
            bad.append(detail)
    return bad


def _explain_all(store: Store, statements: list[tuple[str, Any]]) -> None:
    reads = [(sql, p) for sql, p in statements if not sql.lstrip().upper().startswith("EXPLAIN")]
    assert reads, "nothing was read"
    failures = []
    for sql, params in reads:
        if sql.lstrip().upper().startswith(("PRAGMA", "ANALYZE")):
            continue
        bad = _scanned_history(store, sql, params)
        if bad:
            failures.append(f"{' '.join(sql.split())}\n    plan: {bad}")
    assert not failures, "full scans of history tables:\n" + "\n".join(failures)


def _hot_reads(store: Store) -> Callable[[], None]:
    def reads() -> None:
        run_id = store.queue.ensure_run("run1", "/runs/1", 1.0)
        assert store.queue.checkpoint_names_after(run_id, 30)  # the poll
        assert "run1" in run_names(store)  # every run-scoped request
        assert store.views.has_run("run1")
        c = store.queue.checkpoint("run1", "checkpoint-20")
        assert c is not None
        store.results.evaluations(c.id)  # one checkpoint's history
        store.results.current_evaluations(c.id)
        store.results.fn_estimate(c.id)
        store.results.fn_audit_failure(c.id)
        store.ledger.verdicts(c.id)
        store.early.for_checkpoint(c.id)  # the checkpoint page's early verdicts
        store.views.exported_fn_estimate(c)
        store.views.mining_change_at(c)
        assert store.views.exported_fn_estimates("run1")  # the run page's estimates
        run_history(store, "run1")
        checkpoints(store, "run1", state=None, limit=50, offset=0)  # the evaluations page
        runs(store)
        store.ledger.alerts(limit=50)

    return reads


def test_the_hot_reads_scan_no_history_table(
    seeded: Store, recorded: list[tuple[str, Any]]
) -> None:
    _hot_reads(seeded)()
    _explain_all(seeded, recorded)


def test_the_run_pages_estimates_are_those_each_checkpoint_exports(seeded: Store) -> None:
    estimates = seeded.views.exported_fn_estimates("run1")
    rows = seeded.queue.checkpoints("run1")
    expected = {c.id: seeded.views.exported_fn_estimate(c) for c in rows}
    assert {cid: e for cid, e in expected.items() if e is not None} == estimates
    assert len(estimates) > len([c for c in rows if c.step is not None and c.step % 5 == 0])


def test_a_scrape_after_the_first_reads_only_what_changed(
    seeded: Store, recorded: list[tuple[str, Any]]
) -> None:
    registry = CollectorRegistry()
    registry.register(RecallwatchCollector(seeded, version="1", audited=True))
    generate_latest(registry)  # the first scrape after start-up loads the aggregates once
    _seed(seeded, 3, 5, first_step=100)
    recorded.clear()
    text = generate_latest(registry).decode()
    _explain_all(seeded, recorded)
    # The aggregates followed the new rows: 3 runs × (40 + 5) checkpoints, every 7th failed.
    assert 'recallwatch_evaluations_total{run="run0"} 40.0' in text
    assert 'recallwatch_evaluation_failures_total{reason="timeout",run="run0"} 5.0' in text
