"""Prometheus metrics, produced at scrape time from the store by a custom collector.

Values are read from the store at each scrape, so they survive restarts (re-exported from the store
at start-up) and a label set disappears as soon as its state does. Labels stay bounded: run,
dataset, k, bound, rank_bucket, stage, reason, channel, rule — never a checkpoint or query id (the
checkpoint name is only in the ``_info`` metric).

The per-checkpoint families (``CHECKPOINT_FAMILIES``) show one evaluated checkpoint per run, chosen
by an ``ExportCursor``: each scrape that asks for them is served the next checkpoint evaluated since
the start that no scrape was served yet, lowest step first, and the latest one once none waits; so
every checkpoint of a backfill reaches Prometheus, one per scrape (docs/daemon.md#metrics).
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import get_args

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from recallwatch.errors import AuditFailureReason, EvaluationFailureReason
from recallwatch.metrics.cursor import BACKLOG_LIMIT, ScraperCursors, current_scrape
from recallwatch.store import CheckpointRow, EvaluationRow, Store

__all__ = [
    "AUDIT_FAILURE_REASONS",
    "CHECKPOINT_FAMILIES",
    "COMPARISONS",
    "DURATION_BUCKETS",
    "EVALUATION_FAILURE_REASONS",
    "FAMILIES",
    "HEADLINE_METRICS",
    "RecallwatchCollector",
    "build_labels",
]


#: Evaluation stages take from milliseconds (precomputed) to hours (encoding a large corpus).
DURATION_BUCKETS: tuple[float, ...] = (
    0.1,
    0.5,
    1.0,
    5.0,
    15.0,
    60.0,
    300.0,
    900.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
    28800.0,
)

#: Stored metric name -> exported gauge.
HEADLINE_METRICS = {
    "recall": "recallwatch_recall_ratio",
    "success": "recallwatch_success_ratio",
    "mrr": "recallwatch_mrr_ratio",
    "ndcg": "recallwatch_ndcg_ratio",
    # The share of unjudged documents in the top k (docs/holes.md), not a quality metric.
    "unjudged": "recallwatch_unjudged_ratio",
}
_HELP = {
    "unjudged": "Share of the exported checkpoint's top-k documents that the held-out set's "
    "qrels do not judge (holes; 1 - Judged@k).",
}

#: What a regression verdict compares with: the ``compare_with`` label of
#: ``recallwatch_recall_regression``. Stored verdict kinds are these, or ``<kind>:<rule>`` when
#: several rules make the same comparison (``alerting.rules.recall_regression.rule.verdict_kind``).
COMPARISONS = ("previous_mining", "same_mining", "pinned")

#: The ``reason`` values of ``recallwatch_evaluation_failures_total`` exported at 0 for every run
#: before its first failure of that reason, so that a first failure is an increase (rules use
#: ``increase()``); another reason appears when it first happens. Defined with the errors.
EVALUATION_FAILURE_REASONS: tuple[str, ...] = get_args(EvaluationFailureReason)

#: The ``reason`` values of ``recallwatch_false_negative_audit_failures_total`` exported at 0 for
#: every run when a false-negative audit is configured (``audited``); defined with the errors.
AUDIT_FAILURE_REASONS: tuple[str, ...] = get_args(AuditFailureReason)

#: Distributions named in ``recallwatch_build_info`` (besides recallwatch and Python).
BUILD_DISTRIBUTIONS = {"numpy": ("numpy",), "faiss": ("faiss-cpu", "faiss-gpu", "faiss")}

#: Characters of the mining fingerprint shown in ``recallwatch_checkpoint_info`` (like a short
#: git hash; the API has the full SHA-256).
FINGERPRINT_CHARS = 12


#: The families ``RecallwatchCollector`` exports: name -> type (``describe``).
FAMILIES: dict[str, str] = {
    "recallwatch_build": "info",
    **dict.fromkeys(HEADLINE_METRICS.values(), "gauge"),
    "recallwatch_recall_baseline_ratio": "gauge",
    "recallwatch_recall_regression": "gauge",
    "recallwatch_checkpoint_step": "gauge",
    "recallwatch_checkpoint": "info",
    "recallwatch_encode_precision": "info",
    "recallwatch_precision_probe_shift_ratio": "gauge",
    "recallwatch_mining_change_timestamp_seconds": "gauge",
    "recallwatch_mining_change_step": "gauge",
    "recallwatch_false_negative_ratio": "gauge",
    "recallwatch_false_negative_bucket_ratio": "gauge",
    "recallwatch_label_noise_amplification": "gauge",
    "recallwatch_evaluations": "counter",
    "recallwatch_evaluation_failures": "counter",
    "recallwatch_false_negative_audit_failures": "counter",
    "recallwatch_last_successful_evaluation_timestamp_seconds": "gauge",
    "recallwatch_checkpoints_pending": "gauge",
    "recallwatch_checkpoints_not_exported": "counter",
    "recallwatch_notifications": "counter",
    "recallwatch_notification_failures": "counter",
    "recallwatch_notifications_failed": "counter",
    "recallwatch_outbox_pending": "gauge",
    "recallwatch_evaluation_duration_seconds": "histogram",
    "recallwatch_early_recall_upper_bound": "gauge",
    "recallwatch_early_warning": "gauge",
}

#: The families that show one checkpoint per run: the one the scraper's ``ExportCursor`` chose.
CHECKPOINT_FAMILIES = (
    *HEADLINE_METRICS.values(),
    "recallwatch_recall_baseline_ratio",
    "recallwatch_recall_regression",
    "recallwatch_checkpoint_step",
    "recallwatch_checkpoint",
    "recallwatch_encode_precision",
    "recallwatch_precision_probe_shift_ratio",
    "recallwatch_mining_change_timestamp_seconds",
    "recallwatch_mining_change_step",
    "recallwatch_false_negative_ratio",
    "recallwatch_false_negative_bucket_ratio",
    "recallwatch_label_noise_amplification",
)
#: Their sample names: a ``name[]``-filtered scrape advances the cursor only if it asks for one.
_CHECKPOINT_SAMPLES = frozenset(
    f"{n}_info" if FAMILIES[n] == "info" else n for n in CHECKPOINT_FAMILIES
)


def _described(families: Mapping[str, str]) -> list[Metric]:
    return [Metric(name, "", kind) for name, kind in families.items()]


class RecallwatchCollector(Collector):
    """Export the state in the store as the ``recallwatch_*`` metrics (docs/daemon.md#metrics)."""

    def __init__(
        self,
        store: Store,
        *,
        version: str,
        runs: Collection[str] | None = None,
        channels: Collection[str] = (),
        busy: Callable[[], Collection[int]] | None = None,
        backlog_limit: int = BACKLOG_LIMIT,
        audited: bool = False,
    ) -> None:
        self.store = store
        #: Whether a false-negative audit is configured: its failure counters then start at 0.
        self.audited = audited
        #: Checkpoints the daemon is still evaluating or deciding (``Daemon.in_flight``): an
        #: evaluated one waits for its regression decision before it is exported.
        self.busy = busy
        #: Configured notification channels: each has an outbox gauge, 0 when nothing waits.
        self.channels = sorted(set(channels))
        self.version = version
        self._build = build_labels(version)
        #: Export only these runs (the configured ones); a run dropped from the config disappears.
        self.runs = None if runs is None else frozenset(runs)
        #: Evaluated checkpoints that may wait to be scraped, per run and scraper (then skipped).
        self.backlog_limit = backlog_limit
        # Which checkpoint each scraper is shown: after what was evaluated by now, one per scrape.
        self._cursors = ScraperCursors(self.store.views.evaluated_index, backlog_limit)
        # The aggregates a scrape reads are loaded here, at start-up, not by the first scrape (at
        # a million evaluations that read would near Prometheus' scrape timeout).
        self.store.views.counts_by_run()
        self.store.views.stage_histograms(DURATION_BUCKETS)

    def follow(self, runs: Collection[str], channels: Collection[str]) -> None:
        """Export these runs and channels from the next scrape (a configuration reload)."""
        self.channels = sorted(set(channels))
        self.runs = frozenset(runs)

    def _busy(self) -> Collection[int]:
        return frozenset(self.busy()) if self.busy is not None else frozenset()

    def _shown(self, run: str) -> bool:
        return self.runs is None or run in self.runs

    def describe(self) -> Iterable[Metric]:
        """Every family's name and type, without querying the store (``name[]`` filtering and
        the registry's duplicate check rely on it)."""
        return _described(FAMILIES)

    def collect(self) -> Iterator[Metric]:
        """Build every metric family from the store."""
        build = InfoMetricFamily(
            "recallwatch_build",
            "Versions of recallwatch, Python, numpy and faiss (one series).",
            labels=list(self._build),
        )
        build.add_metric(list(self._build.values()), {})
        yield build
        current = current_scrape()
        advance = current.advances(_CHECKPOINT_SAMPLES)
        # ``busy`` is read after the evaluated checkpoints (ScraperCursors.choose).
        chosen, skipped = self._cursors.choose(
            current.scraper, self._shown, self._busy, advance=advance
        )
        yield from self._checkpoints(self.store.queue.checkpoint_by_id(c) for c in chosen)
        yield from self._counters(skipped)
        yield from self._notifications()
        yield from self._histogram()
        yield from self._early()

    def _early(self) -> Iterator[Metric]:
        """The latest early verdict of each run and held-out set (``daemon.early``)."""
        bound = GaugeMetricFamily(
            "recallwatch_early_recall_upper_bound",
            "Pooled recall@k of the latest early pass: an upper bound on its exact recall@k.",
            labels=["run", "dataset", "k"],
        )
        warning = GaugeMetricFamily(
            "recallwatch_early_warning",
            "1 while the latest early pass warns of a significant drop that the exact pass has "
            "not cleared (warning or confirmed), else 0.",
            labels=["run", "dataset"],
        )
        for v in self.store.early.latest_per_run():
            if not self._shown(v.run):
                continue
            bound.add_metric([v.run, v.dataset, str(v.k)], v.upper_bound)
            raised = v.state in ("warning", "confirmed")
            warning.add_metric([v.run, v.dataset], float(raised))
        yield from (bound, warning)

    def _checkpoints(self, exported: Iterable[CheckpointRow]) -> Iterator[Metric]:
        run_ds_k = ["run", "dataset", "k"]
        gauges = {
            m: GaugeMetricFamily(
                name, _HELP.get(m, f"{m}@k of the exported checkpoint."), labels=run_ds_k
            )
            for m, name in HEADLINE_METRICS.items()
        }
        baseline = GaugeMetricFamily(
            "recallwatch_recall_baseline_ratio",
            "recall@k of the baseline the exported checkpoint is compared with.",
            labels=run_ds_k,
        )
        regression = GaugeMetricFamily(
            "recallwatch_recall_regression",
            "1 when the exported checkpoint's recall@k regressed significantly against the "
            "baseline it is compared with (previous_mining, same_mining, pinned), else 0.",
            labels=[*run_ds_k, "compare_with"],
        )
        step = GaugeMetricFamily(
            "recallwatch_checkpoint_step",
            "Step of the exported checkpoint: every evaluated checkpoint in turn, one per scrape, "
            "then the latest.",
            labels=["run"],
        )
        info = InfoMetricFamily(
            "recallwatch_checkpoint",
            "The exported checkpoint of each run.",
            labels=["run", "checkpoint", "mining_fingerprint"],
        )
        precision = InfoMetricFamily(
            "recallwatch_encode_precision",
            "The precision the exported checkpoint was encoded in per held-out set, and the "
            "parity probe's verdict (passed, failed, not-run, not-applicable; unknown: stored "
            "before reports).",
            labels=["run", "dataset", "precision", "probe"],
        )
        probe_shift = GaugeMetricFamily(
            "recallwatch_precision_probe_shift_ratio",
            "Probe shift of the exported checkpoint's evaluation: metric@k on the parity probe's "
            "small sub-corpus in the candidate precision minus in fp32 (not the full-set shift).",
            labels=["run", "dataset", "metric", "k"],
        )
        mining_change = GaugeMetricFamily(
            "recallwatch_mining_change_timestamp_seconds",
            "When the exported checkpoint's mining configuration replaced another one in the run "
            "(absent while the mining never changed).",
            labels=["run"],
        )
        change_step = GaugeMetricFamily(
            "recallwatch_mining_change_step",
            "Step of the first checkpoint of the exported checkpoint's mining configuration, "
            "when it replaced another one in the run (absent while the mining never changed).",
            labels=["run"],
        )
        fn = GaugeMetricFamily(
            "recallwatch_false_negative_ratio",
            "False-negative rate of sampled mined negatives (estimate, Wilson 95% lower, upper).",
            labels=["run", "bound"],
        )
        fn_bucket = GaugeMetricFamily(
            "recallwatch_false_negative_bucket_ratio",
            "False-negative rate per mining-rank bucket.",
            labels=["run", "rank_bucket"],
        )
        amplification = GaugeMetricFamily(
            "recallwatch_label_noise_amplification",
            "False-negative rate among mined negatives divided by that among random negatives.",
            labels=["run"],
        )
        for latest in exported:
            run = latest.run
            if latest.step is not None:
                step.add_metric([run], float(latest.step))
            fp = (latest.mining_fingerprint or "none")[:FINGERPRINT_CHARS]
            info.add_metric([run, latest.name, fp], {})
            changed = self.store.views.mining_change_at(latest)
            if changed is not None:
                mining_change.add_metric([run], changed)
            changed_step = self.store.views.mining_change_step(latest)
            if changed_step is not None:
                change_step.add_metric([run], float(changed_step))
            for ev in self.store.results.current_evaluations(latest.id):
                for metric, family in gauges.items():
                    for k, value in ev.metrics.get(metric, {}).items():
                        family.add_metric([run, ev.dataset, str(k)], value)
                _precision(run, ev, precision, probe_shift)
            self._verdicts(latest.id, run, baseline, regression)
            # Which estimate a checkpoint exports is the store's rule (``exported_fn_estimate``).
            est = self.store.views.exported_fn_estimate(latest)
            if est is not None:
                for bound, value in (
                    ("estimate", est.estimate),
                    ("lower", est.lower),
                    ("upper", est.upper),
                ):
                    fn.add_metric([run, bound], value)
                for b in est.buckets:
                    fn_bucket.add_metric([run, b.rank_bucket], b.estimate)
                if est.amplification is not None:
                    amplification.add_metric([run], est.amplification)
        yield from gauges.values()
        yield from (baseline, regression, step, info, precision, probe_shift)
        yield from (mining_change, change_step)
        yield from (fn, fn_bucket, amplification)

    def _verdicts(
        self,
        checkpoint_id: int,
        run: str,
        baseline: GaugeMetricFamily,
        regression: GaugeMetricFamily,
    ) -> None:
        # One regression series per comparison (``compare_with``): the kinds ``<kind>:<rule>``
        # of further rules making the same comparison count as their base kind, regressed when
        # any of them says so. The baseline gauge names the mining-change baseline when there is
        # one, else the first comparison's.
        regressed: dict[tuple[str, str, str], int] = {}
        bases: dict[tuple[str, str], tuple[bool, float]] = {}
        for v in self.store.ledger.verdicts(checkpoint_id):
            if v.metric != "recall":
                continue
            compare_with = v.kind.split(":", 1)[0]
            if compare_with not in COMPARISONS:
                continue
            key = (v.dataset, str(v.k))
            series = (*key, compare_with)
            regressed[series] = max(regressed.get(series, 0), int(v.regressed))
            if v.baseline_value is not None:
                chosen = bases.get(key)
                mining = v.kind == "previous_mining"
                if chosen is None or (mining and not chosen[0]):
                    bases[key] = (mining, v.baseline_value)
        for (dataset, k), (_, value) in bases.items():
            baseline.add_metric([run, dataset, k], value)
        for (dataset, k, compare_with), reg in sorted(regressed.items()):
            regression.add_metric([run, dataset, k, compare_with], float(reg))

    def _counters(self, skipped_by_run: Mapping[str, int]) -> Iterator[Metric]:
        total = CounterMetricFamily(
            "recallwatch_evaluations",
            "Finished evaluations (one per checkpoint and held-out set).",
            labels=["run"],
        )
        counts = self.store.views.counts_by_run()
        for run, n in sorted(counts.items()):
            if self._shown(run):
                total.add_metric([run], n)
        failures = CounterMetricFamily(
            "recallwatch_evaluation_failures",
            "Failed evaluations by reason (0 for each known reason before its first failure).",
            labels=["run", "reason"],
        )
        # Every run starts at 0 for the known reasons, so that its first failure is an increase.
        failed: dict[tuple[str, str], int] = {
            (run, reason): 0 for run in counts for reason in EVALUATION_FAILURE_REASONS
        }
        failed.update(self.store.views.failures_by_run())
        for (run, reason), n in sorted(failed.items()):
            if self._shown(run):
                failures.add_metric([run, reason], n)
        audit_failures = CounterMetricFamily(
            "recallwatch_false_negative_audit_failures",
            "Failed false-negative audits of mined sets, by reason.",
            labels=["run", "reason"],
        )
        # With an audit configured, every run starts at 0 for the known reasons (as above).
        audit_failed: dict[tuple[str, str], int] = {
            (run, reason): 0
            for run in (counts if self.audited else ())
            for reason in AUDIT_FAILURE_REASONS
        }
        audit_failed.update(self.store.views.fn_audit_failures_by_run())
        for (run, reason), n in sorted(audit_failed.items()):
            if self._shown(run):
                audit_failures.add_metric([run, reason], n)
        last = GaugeMetricFamily(
            "recallwatch_last_successful_evaluation_timestamp_seconds",
            "When the run's last evaluation finished successfully.",
            labels=["run"],
        )
        for run, ts in sorted(self.store.views.last_success_by_run().items()):
            if self._shown(run):
                last.add_metric([run], ts)
        pending = GaugeMetricFamily(
            "recallwatch_checkpoints_pending",
            "Complete checkpoints discovered and not yet evaluated (queued or evaluating).",
            labels=["run"],
        )
        for run, n in sorted(self.store.views.pending_by_run().items()):
            if self._shown(run):
                pending.add_metric([run], n)
        skipped = CounterMetricFamily(
            "recallwatch_checkpoints_not_exported",
            "Evaluated checkpoints this scraper was never shown: skipped because more than "
            f"{self.backlog_limit} waited to be scraped.",
            labels=["run"],
        )
        for run in sorted(counts):
            if self._shown(run):
                skipped.add_metric([run], skipped_by_run.get(run, 0))
        yield from (total, failures, audit_failures, last, pending, skipped)

    def _notifications(self) -> Iterator[Metric]:
        delivered = CounterMetricFamily(
            "recallwatch_notifications",
            "Notifications delivered (firing, repeat, resolved), by channel and rule.",
            labels=["channel", "rule"],
        )
        for (channel, rule), n in sorted(self.store.outbox.notifications_delivered().items()):
            delivered.add_metric([channel, rule], n)
        failures = CounterMetricFamily(
            "recallwatch_notification_failures",
            "Failed delivery attempts (retried or terminal), by channel.",
            labels=["channel"],
        )
        # Both counters start at 0 for every configured channel, so a first failure is an increase.
        attempts = {**dict.fromkeys(self.channels, 0), **self.store.outbox.notification_failures()}
        for channel, n in sorted(attempts.items()):
            failures.add_metric([channel], n)
        failed = CounterMetricFamily(
            "recallwatch_notifications_failed",
            "Notifications that failed for good (terminal error, expired, channel removed), "
            "by channel.",
            labels=["channel"],
        )
        given_up = {**dict.fromkeys(self.channels, 0), **self.store.outbox.notifications_failed()}
        for channel, n in sorted(given_up.items()):
            failed.add_metric([channel], n)
        pending = GaugeMetricFamily(
            "recallwatch_outbox_pending",
            "Notifications waiting in the outbox for delivery, by channel.",
            labels=["channel"],
        )
        waiting = {**dict.fromkeys(self.channels, 0), **self.store.outbox.outbox_pending()}
        for channel, n in sorted(waiting.items()):
            pending.add_metric([channel], float(n))
        yield from (delivered, failures, failed, pending)

    def _histogram(self) -> Iterator[Metric]:
        hist = HistogramMetricFamily(
            "recallwatch_evaluation_duration_seconds",
            "Duration of evaluation stages (encode, search, metrics, false_negatives).",
            labels=["stage"],
        )
        for stage, (cumulative, count, total) in sorted(
            self.store.views.stage_histograms(DURATION_BUCKETS).items()
        ):
            buckets = [
                (_le(b), float(c)) for b, c in zip(DURATION_BUCKETS, cumulative, strict=True)
            ]
            buckets.append(("+Inf", float(count)))
            hist.add_metric([stage], buckets, total)
        yield hist


def _precision(
    run: str, ev: EvaluationRow, info: InfoMetricFamily, shift: GaugeMetricFamily
) -> None:
    """An evaluation's precision and probe verdict, and its probe shift where measured."""
    report = ev.report
    used = (report.used if report is not None else ev.precision) or "none"
    verdict = report.verdict if report is not None else "unknown"
    info.add_metric([run, ev.dataset, used, verdict], {})
    if report is not None and report.shift is not None:
        k = str(report.shift.k)
        shift.add_metric([run, ev.dataset, "recall", k], report.shift.recall_shift)
        shift.add_metric([run, ev.dataset, "ndcg", k], report.shift.ndcg_shift)


def _le(bound: float) -> str:
    return repr(float(bound))


def _distribution_version(names: Iterable[str]) -> str:
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "none"


def build_labels(version: str) -> dict[str, str]:
    """The labels of ``recallwatch_build_info``, from package metadata (nothing is imported)."""
    labels = {"version": version, "python_version": platform.python_version()}
    for label, names in BUILD_DISTRIBUTIONS.items():
        labels[f"{label}_version"] = _distribution_version(names)
    return labels
