"""The collector: values from the store at scrape time, every evaluated checkpoint served to a
scrape in step order, bounded labels, promtool-clean."""

from __future__ import annotations

import importlib.metadata
import platform
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from recallwatch import errors
from recallwatch.daemon import runner
from recallwatch.metrics.app import MetricsApp
from recallwatch.metrics.collector import (
    AUDIT_FAILURE_REASONS,
    DURATION_BUCKETS,
    EVALUATION_FAILURE_REASONS,
    FAMILIES,
    RecallwatchCollector,
)
from recallwatch.metrics.health import HEALTH_FAMILIES, DaemonHealthCollector
from recallwatch.store import FnBucket, FnEstimate, Store
from tests.helpers.seed import add, fail, finished, record_evaluated


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "rw.db")
    yield s
    s.close()


@pytest.fixture
def registry(store: Store) -> CollectorRegistry:
    r = CollectorRegistry()
    r.register(RecallwatchCollector(store, version="1.2.3"))
    return r


def evaluated(store: Store, run_id: int, step: int, recall10: float, *, fp: str = "a" * 64) -> int:
    cid = add(
        store,
        run_id,
        step,
        fp=fp,
        mining_content="{}",
        directory="/r",
        completed_at=1000.0 + step,
        now=2000.0 + step,
    )
    evaluation = replace(
        finished(cid),
        started_at=3000.0 + step,
        finished_at=3001.0 + step,
        metrics={
            **{m: {1: recall10 / 2, 10: recall10} for m in ("recall", "success", "mrr", "ndcg")},
            "unjudged": {10: 1 - recall10},
        },
        timings={"encode": 0.2, "search": 7.0, "metrics": 0.01},
        counts={"queries": 10},
        outcomes={},
    )
    record_evaluated(store, run_id, evaluation, at=3002.0 + step)
    return cid


def test_empty_store_exports_only_build_info(registry: CollectorRegistry) -> None:
    samples = [s for m in registry.collect() for s in m.samples]
    assert [s.name for s in samples] == ["recallwatch_build_info"]
    (build,) = samples
    # One series naming what runs: recallwatch, Python, numpy and faiss.
    assert build.value == 1
    assert build.labels["version"] == "1.2.3"
    assert build.labels["python_version"] == platform.python_version()
    assert build.labels["numpy_version"] == importlib.metadata.version("numpy")
    assert build.labels["faiss_version"] not in ("", "none")
    assert registry.get_sample_value("recallwatch_recall_ratio", {"run": "a"}) is None


def scrape_once(registry: CollectorRegistry) -> None:
    """One unfiltered scrape: it moves the export cursor on by one checkpoint."""
    list(registry.collect())


def test_latest_checkpoint_values_and_no_stale_labels(
    store: Store, registry: CollectorRegistry
) -> None:
    run = store.queue.ensure_run("a", "/r", 1.0)
    evaluated(store, run, 100, 0.8)
    labels = {"run": "a", "dataset": "synth", "k": "10"}
    assert registry.get_sample_value("recallwatch_recall_ratio", labels) == 0.8
    assert registry.get_sample_value("recallwatch_checkpoint_step", {"run": "a"}) == 100
    # The first mining configuration of a run is no mining change.
    assert (
        registry.get_sample_value("recallwatch_mining_change_timestamp_seconds", {"run": "a"})
        is None
    )
    evaluated(store, run, 200, 0.7, fp="b" * 64)
    assert registry.get_sample_value("recallwatch_recall_ratio", labels) == 0.7
    assert registry.get_sample_value("recallwatch_ndcg_ratio", labels) == 0.7
    # The share of unjudged documents in the top k (docs/holes.md).
    assert registry.get_sample_value("recallwatch_unjudged_ratio", labels) == pytest.approx(0.3)
    info = [
        s.labels
        for m in registry.collect()
        if m.name == "recallwatch_checkpoint"
        for s in m.samples
    ]
    assert info == [{"run": "a", "checkpoint": "checkpoint-200", "mining_fingerprint": "b" * 12}]
    assert (
        registry.get_sample_value("recallwatch_mining_change_timestamp_seconds", {"run": "a"})
        == 1200.0
    )
    assert registry.get_sample_value("recallwatch_evaluations_total", {"run": "a"}) == 2
    assert (
        registry.get_sample_value(
            "recallwatch_last_successful_evaluation_timestamp_seconds", {"run": "a"}
        )
        == 3201.0
    )
    # An older checkpoint evaluated later (concurrency, a retry) is served to one scrape, then
    # the latest by step again: it never replaces the latest for good.
    evaluated(store, run, 150, 0.1)
    assert registry.get_sample_value("recallwatch_checkpoint_step", {"run": "a"}) == 150
    assert registry.get_sample_value("recallwatch_recall_ratio", labels) == 0.7
    assert registry.get_sample_value("recallwatch_checkpoint_step", {"run": "a"}) == 200


def test_pending_failures_and_durations(store: Store, registry: CollectorRegistry) -> None:
    run = store.queue.ensure_run("a", "/r", 1.0)
    evaluated(store, run, 1, 0.5)
    for step in (2, 3):
        add(store, run, step, name=f"c{step}", path="/x", completed_at=1, now=1)
    bad = add(store, run, 4, name="c4", path="/x", completed_at=1, now=1)
    fail(store, bad, "timeout", "slow")
    assert registry.get_sample_value("recallwatch_checkpoints_pending", {"run": "a"}) == 2
    assert (
        registry.get_sample_value(
            "recallwatch_evaluation_failures_total", {"run": "a", "reason": "timeout"}
        )
        == 1
    )
    search = {"stage": "search"}
    assert registry.get_sample_value("recallwatch_evaluation_duration_seconds_count", search) == 1
    assert registry.get_sample_value("recallwatch_evaluation_duration_seconds_sum", search) == 7.0
    bucket = "recallwatch_evaluation_duration_seconds_bucket"
    assert registry.get_sample_value(bucket, {**search, "le": "5.0"}) == 0
    assert registry.get_sample_value(bucket, {**search, "le": "15.0"}) == 1
    assert registry.get_sample_value(bucket, {**search, "le": "+Inf"}) == 1
    assert DURATION_BUCKETS[-1] >= 4 * 3600


def test_false_negatives_and_verdicts(store: Store, registry: CollectorRegistry) -> None:
    run = store.queue.ensure_run("a", "/r", 1.0)
    base = evaluated(store, run, 1, 0.8)
    scrape_once(registry)  # served checkpoint 1: the next scrapes show checkpoint 2
    cid = evaluated(store, run, 2, 0.7, fp="b" * 64)
    store.results.record_fn_estimate(
        cid,
        "b" * 64,
        "h",
        FnEstimate(
            "qrels",
            200,
            20,
            0.1,
            0.066,
            0.15,
            random_estimate=0.02,
            amplification=5.0,
            buckets=(
                FnBucket("1-5", 40, 10, 0.25, 0.14, 0.4),
                FnBucket("6-20", 80, 6, 0.075, 0.03, 0.15),
            ),
        ),
        5.0,
    )
    store.ledger.record_verdict(
        cid,
        dataset="synth",
        metric="recall",
        k=10,
        kind="previous_mining",
        value=0.7,
        baseline_value=0.8,
        baseline_checkpoint_id=base,
        p_value=0.001,
        regressed=True,
        now=5.0,
    )
    store.ledger.record_verdict(
        cid,
        dataset="synth",
        metric="recall",
        k=10,
        kind="same_mining",
        value=0.7,
        baseline_value=0.75,
        p_value=0.2,
        regressed=False,
        now=5.0,
    )
    get = registry.get_sample_value
    assert get("recallwatch_false_negative_ratio", {"run": "a", "bound": "lower"}) == 0.066
    assert get("recallwatch_false_negative_ratio", {"run": "a", "bound": "estimate"}) == 0.1
    assert (
        get("recallwatch_false_negative_bucket_ratio", {"run": "a", "rank_bucket": "1-5"}) == 0.25
    )
    assert get("recallwatch_label_noise_amplification", {"run": "a"}) == 5.0
    labels = {"run": "a", "dataset": "synth", "k": "10"}
    assert get("recallwatch_recall_baseline_ratio", labels) == 0.8
    assert get("recallwatch_recall_regression", {**labels, "compare_with": "previous_mining"}) == 1
    assert get("recallwatch_recall_regression", {**labels, "compare_with": "same_mining"}) == 0
    assert get("recallwatch_recall_regression", {**labels, "compare_with": "pinned"}) is None


def test_exposition_passes_promtool_and_openmetrics(
    store: Store, registry: CollectorRegistry
) -> None:
    test_false_negatives_and_verdicts(store, registry)
    om = generate_openmetrics(registry).decode()
    names = {f.name for f in text_string_to_metric_families(om)}
    assert {"recallwatch_checkpoint", "recallwatch_build", "recallwatch_recall_ratio"} <= names
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed: apt-get install -y prometheus")
    # promtool lints the Prometheus text format (it does not parse OpenMetrics).
    text = generate_latest(registry).decode()
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_runs_dropped_from_the_config_are_not_exported(store: Store) -> None:
    a = store.queue.ensure_run("a", "/a", 1.0)
    b = store.queue.ensure_run("b", "/b", 1.0)
    evaluated(store, a, 1, 0.5)
    evaluated(store, b, 1, 0.5)
    registry = CollectorRegistry()
    registry.register(RecallwatchCollector(store, version="1", runs=["a"]))
    text = generate_latest(registry).decode()
    assert 'run="a"' in text and 'run="b"' not in text


def regression_series(registry: CollectorRegistry) -> dict[str, float]:
    return {
        s.labels["compare_with"]: s.value
        for m in registry.collect()
        if m.name == "recallwatch_recall_regression"
        for s in m.samples
    }


def test_regression_has_one_series_per_comparison_the_max_over_its_rules(
    store: Store, registry: CollectorRegistry
) -> None:
    run = store.queue.ensure_run("a", "/r", 1.0)
    base = evaluated(store, run, 1, 0.8)
    scrape_once(registry)
    cid = evaluated(store, run, 2, 0.7)

    def verdict(kind: str, regressed: bool, baseline: float) -> None:
        store.ledger.record_verdict(
            cid,
            dataset="synth",
            metric="recall",
            k=10,
            kind=kind,
            value=0.7,
            baseline_value=baseline,
            baseline_checkpoint_id=base,
            p_value=0.01 if regressed else 0.5,
            regressed=regressed,
            now=5.0,
        )

    # Two rules compare with the pinned baseline (the second stores ``pinned:<rule>``).
    verdict("pinned", False, 0.71)
    verdict("pinned:strict", True, 0.78)
    verdict("same_mining", False, 0.72)
    assert regression_series(registry) == {"pinned": 1.0, "same_mining": 0.0}
    # Without a mining-change verdict the baseline gauge names the first comparison's baseline.
    labels = {"run": "a", "dataset": "synth", "k": "10"}
    assert registry.get_sample_value("recallwatch_recall_baseline_ratio", labels) == 0.71
    verdict("previous_mining:other", False, 0.75)
    verdict("previous_mining", False, 0.8)
    assert regression_series(registry) == {
        "pinned": 1.0,
        "same_mining": 0.0,
        "previous_mining": 0.0,
    }
    assert registry.get_sample_value("recallwatch_recall_baseline_ratio", labels) == 0.8


def test_every_run_counts_failures_from_zero_for_the_known_reasons(
    store: Store, registry: CollectorRegistry
) -> None:
    run = store.queue.ensure_run("a", "/r", 1.0)
    store.queue.ensure_run("idle", "/i", 1.0)
    name = "recallwatch_evaluation_failures_total"
    for r in ("a", "idle"):
        for reason in EVALUATION_FAILURE_REASONS:
            assert registry.get_sample_value(name, {"run": r, "reason": reason}) == 0
        assert registry.get_sample_value("recallwatch_evaluations_total", {"run": r}) == 0
        assert registry.get_sample_value("recallwatch_checkpoints_pending", {"run": r}) == 0
        # No success yet: no last-success series (an absent series, not a 0 timestamp).
        last = "recallwatch_last_successful_evaluation_timestamp_seconds"
        assert registry.get_sample_value(last, {"run": r}) is None
    cid = add(store, run, 1, name="c1", path="/x", completed_at=1, now=1)
    for reason in ("timeout", "a_new_reason"):
        fail(store, cid, reason, "m")
    assert registry.get_sample_value(name, {"run": "a", "reason": "timeout"}) == 1
    assert registry.get_sample_value(name, {"run": "a", "reason": "a_new_reason"}) == 1
    assert registry.get_sample_value(name, {"run": "a", "reason": "crashed"}) == 0
    assert registry.get_sample_value(name, {"run": "idle", "reason": "timeout"}) == 0


def test_audit_failures_count_from_zero_when_an_audit_is_configured(store: Store) -> None:
    run = store.queue.ensure_run("a", "/r", 1.0)
    name = "recallwatch_false_negative_audit_failures_total"
    plain, audited = CollectorRegistry(), CollectorRegistry()
    plain.register(RecallwatchCollector(store, version="1"))
    audited.register(RecallwatchCollector(store, version="1", audited=True))
    for reason in AUDIT_FAILURE_REASONS:
        assert audited.get_sample_value(name, {"run": "a", "reason": reason}) == 0
        # Without an audit configured there is no series to start.
        assert plain.get_sample_value(name, {"run": "a", "reason": reason}) is None
    cid = add(store, run, 1, name="c1", path="/x", completed_at=1, now=1)
    store.results.record_fn_audit_failure(
        cid, run, fingerprint="f", config_hash="k1", reason="judge_failed", message="m", now=2
    )
    assert audited.get_sample_value(name, {"run": "a", "reason": "judge_failed"}) == 1
    assert audited.get_sample_value(name, {"run": "a", "reason": "timeout"}) == 0
    assert plain.get_sample_value(name, {"run": "a", "reason": "judge_failed"}) == 1


def test_the_known_failure_reasons_are_those_evaluations_can_fail_with() -> None:
    def subclasses(cls: type) -> set[type]:
        return {c for sub in cls.__subclasses__() for c in {sub, *subclasses(sub)}}

    reasons = {c.reason for c in subclasses(errors.RecallwatchError) if "reason" in c.__dict__}
    reasons |= {errors.RecallwatchError.reason, runner.TIMEOUT, runner.CRASHED, runner.INTERNAL}
    # Not raised by an evaluation: the store's own errors (in the daemon or `recallwatch store`,
    # not the child) and a false-negative judge's (counted by
    # recallwatch_false_negative_audit_failures_total).
    reasons -= {"store", "store_damaged", "judge_failed"}
    assert reasons <= set(EVALUATION_FAILURE_REASONS)
    # An audit fails with the judge's reason or any of an evaluation's but the held-out set's,
    # checkpoint's, embeddings' and encoder's (an audit reads none of them) and the Ray
    # cluster's (an audit never runs on Ray).
    audit = reasons - {
        "bad_heldout",
        "bad_checkpoint",
        "bad_embeddings",
        "encoder_failed",
        "cluster_unavailable",
    }
    assert audit | {"judge_failed", runner.NOT_JUDGED} <= set(AUDIT_FAILURE_REASONS)


def test_describe_names_every_family_without_reading_the_store(
    store: Store, registry: CollectorRegistry
) -> None:
    test_false_negatives_and_verdicts(store, registry)
    collector = RecallwatchCollector(store, version="1", channels=["ops"])
    collected = {m.name: m.type for m in collector.collect()}
    assert collected == FAMILIES
    assert {m.name: m.type for m in collector.describe()} == FAMILIES
    health = DaemonHealthCollector(lambda: {"ready": True, "last_poll_at": 1.0})
    assert {m.name: m.type for m in health.collect()} == HEALTH_FAMILIES
    assert {m.name: m.type for m in health.describe()} == HEALTH_FAMILIES


# -- every evaluated checkpoint, one per scrape -----------------------------------------------


def exported(registry: CollectorRegistry) -> tuple[float | None, float | None, float | None]:
    """One scrape: (step, recall@10, regression against previous_mining) of run ``a``."""
    samples = {
        (s.name, s.labels.get("k"), s.labels.get("compare_with")): s.value
        for m in registry.collect()
        for s in m.samples
        if s.labels.get("run") == "a"
    }
    return (
        samples.get(("recallwatch_checkpoint_step", None, None)),
        samples.get(("recallwatch_recall_ratio", "10", None)),
        samples.get(("recallwatch_recall_regression", "10", "previous_mining")),
    )


def regressed(store: Store, cid: int, base: int, flag: bool) -> None:
    store.ledger.record_verdict(
        cid,
        dataset="synth",
        metric="recall",
        k=10,
        kind="previous_mining",
        value=0.5,
        baseline_value=0.8,
        baseline_checkpoint_id=base,
        p_value=0.001 if flag else 0.5,
        regressed=flag,
        now=5.0,
    )


def test_a_backfill_is_served_one_checkpoint_per_scrape_in_step_order(
    store: Store, registry: CollectorRegistry
) -> None:
    run = store.queue.ensure_run("a", "/r", 1.0)
    recall = {100: 0.8, 200: 0.81, 300: 0.5, 400: 0.79, 500: 0.8, 600: 0.82}
    ids = {}
    # Evaluated between two scrapes, out of step order (a retried failure comes last).
    for step in (100, 200, 400, 500, 600, 300):
        ids[step] = evaluated(
            store, run, step, recall[step], fp="a" * 64 if step < 300 else "b" * 64
        )
    for step in (300, 400, 500, 600):
        regressed(store, ids[step], ids[200], step == 300)
    seen = [exported(registry) for _ in range(8)]
    # Each checkpoint once, lowest step first, its own recall and verdict; then the latest stays.
    assert seen == [
        (100.0, 0.8, None),
        (200.0, 0.81, None),
        (300.0, 0.5, 1.0),
        (400.0, 0.79, 0.0),
        (500.0, 0.8, 0.0),
        (600.0, 0.82, 0.0),
        (600.0, 0.82, 0.0),
        (600.0, 0.82, 0.0),
    ]
    # The first checkpoint of the new mining is the change's step, whichever checkpoint is shown.
    get = registry.get_sample_value
    assert get("recallwatch_mining_change_step", {"run": "a"}) == 300
    assert get("recallwatch_mining_change_timestamp_seconds", {"run": "a"}) == 1300.0
    assert get("recallwatch_checkpoints_not_exported_total", {"run": "a"}) == 0


def test_a_checkpoint_waits_while_the_daemon_still_decides_on_it(store: Store) -> None:
    run = store.queue.ensure_run("a", "/r", 1.0)
    first = evaluated(store, run, 1, 0.8)
    busy: set[int] = set()
    registry = CollectorRegistry()
    registry.register(RecallwatchCollector(store, version="1", busy=lambda: busy))
    assert exported(registry)[0] == 1  # evaluated before the start: the latest, no replay
    second = evaluated(store, run, 2, 0.4)
    busy.add(second)  # evaluated, its regression decision not recorded yet
    assert [exported(registry) for _ in range(2)] == [(1.0, 0.8, None)] * 2
    regressed(store, second, first, True)
    busy.clear()
    assert exported(registry) == (2.0, 0.4, 1.0)


def test_a_restart_starts_at_the_latest_without_replaying(store: Store) -> None:
    run = store.queue.ensure_run("a", "/r", 1.0)
    for step in (1, 2, 3):
        evaluated(store, run, step, step / 10)
    registry = CollectorRegistry()
    registry.register(RecallwatchCollector(store, version="1"))
    assert [exported(registry)[0] for _ in range(2)] == [3.0, 3.0]
    evaluated(store, run, 4, 0.4)
    assert [exported(registry)[0] for _ in range(2)] == [4.0, 4.0]


def test_a_backlog_over_the_limit_skips_the_oldest_and_counts_them(store: Store) -> None:
    fresh = CollectorRegistry()
    fresh.register(RecallwatchCollector(store, version="1", backlog_limit=2))
    run = store.queue.ensure_run("a", "/r", 1.0)
    for step in range(1, 6):
        evaluated(store, run, step, 0.5)
    assert [exported(fresh)[0] for _ in range(3)] == [4.0, 5.0, 5.0]
    assert fresh.get_sample_value("recallwatch_checkpoints_not_exported_total", {"run": "a"}) == 3


def metrics_client(store: Store) -> TestClient:
    """``/metrics`` as the daemon serves it (``metrics.app.MetricsApp``), over the collector."""
    registry = CollectorRegistry()
    registry.register(RecallwatchCollector(store, version="1"))
    app = Starlette(routes=[Route("/metrics", MetricsApp(registry), methods=["GET"])])
    return TestClient(app)


def step_of(text: str) -> float | None:
    for line in text.splitlines():
        if line.startswith('recallwatch_checkpoint_step{run="a"}'):
            return float(line.split()[-1])
    return None


def test_only_scrapes_asking_for_checkpoint_metrics_advance_and_scrapers_have_own_cursors(
    store: Store,
) -> None:
    run = store.queue.ensure_run("a", "/r", 1.0)
    client = metrics_client(store)
    for step in (1, 2, 3):
        evaluated(store, run, step, 0.5)
    step_only = {"name[]": "recallwatch_checkpoint_step"}
    # A filtered scrape of other families (an outbox check, a health probe) moves nothing on.
    for _ in range(3):
        other = client.get("/metrics", params={"name[]": "recallwatch_evaluations_total"})
        assert other.status_code == 200 and "recallwatch_evaluations_total" in other.text
    assert step_of(client.get("/metrics", params=step_only).text) == 1
    assert step_of(client.get("/metrics").text) == 2
    # A second Prometheus with a name of its own sees every checkpoint too ...
    second = [client.get("/metrics", params={"scraper": "b"}).text for _ in range(4)]
    assert [step_of(t) for t in second] == [1, 2, 3, 3]
    # ... and the default scraper goes on where it was.
    assert step_of(client.get("/metrics").text) == 3
