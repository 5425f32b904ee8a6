"""Prometheus metrics, produced at scrape time from the store by a custom collector.

Nothing is kept in process memory: each scrape reads the current state from the store, so values
survive restarts (they are re-exported from the store at start-up), a label set disappears as soon
as its state does, and only the latest evaluated checkpoint of each run appears in
``recallwatch_checkpoint_info``. Labels stay bounded: run, dataset, k, bound, rank_bucket, stage,
reason, channel, rule — never a checkpoint or query id (the checkpoint name is only in the
``_info`` metric).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from recallwatch.store import Store

__all__ = ["DURATION_BUCKETS", "HEADLINE_METRICS", "RecallwatchCollector"]

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
}

#: Characters of the mining fingerprint shown in ``recallwatch_checkpoint_info`` (like a short
#: git hash; the API has the full SHA-256).
FINGERPRINT_CHARS = 12


class RecallwatchCollector(Collector):
    """Export the state in the store as the ``recallwatch_*`` metrics (docs/daemon.md#metrics)."""

    def __init__(
        self,
        store: Store,
        *,
        version: str,
        runs: Collection[str] | None = None,
        channels: Collection[str] = (),
    ) -> None:
        self.store = store
        #: Configured notification channels: each has an outbox gauge, 0 when nothing waits.
        self.channels = sorted(set(channels))
        self.version = version
        #: Export only these runs (the configured ones); a run dropped from the config disappears.
        self.runs = None if runs is None else frozenset(runs)

    def _shown(self, run: str) -> bool:
        return self.runs is None or run in self.runs

    def describe(self) -> Iterable[Metric]:
        """Describe no metric up front, so registering does not query the store."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Build every metric family from the store."""
        build = InfoMetricFamily("recallwatch_build", "Version of recallwatch.", labels=["version"])
        build.add_metric([self.version], {})
        yield build
        yield from self._latest()
        yield from self._counters()
        yield from self._notifications()
        yield from self._histogram()

    def _latest(self) -> Iterator[Metric]:
        run_ds_k = ["run", "dataset", "k"]
        gauges = {
            m: GaugeMetricFamily(
                name, f"{m}@k of the latest evaluated checkpoint.", labels=run_ds_k
            )
            for m, name in HEADLINE_METRICS.items()
        }
        baseline = GaugeMetricFamily(
            "recallwatch_recall_baseline_ratio",
            "recall@k of the baseline the latest checkpoint is compared with.",
            labels=run_ds_k,
        )
        regression = GaugeMetricFamily(
            "recallwatch_recall_regression",
            "1 when the latest checkpoint's recall@k regressed significantly, else 0.",
            labels=run_ds_k,
        )
        step = GaugeMetricFamily(
            "recallwatch_checkpoint_step",
            "Step of the latest evaluated checkpoint.",
            labels=["run"],
        )
        info = InfoMetricFamily(
            "recallwatch_checkpoint",
            "The latest evaluated checkpoint of each run.",
            labels=["run", "checkpoint", "mining_fingerprint"],
        )
        mining_change = GaugeMetricFamily(
            "recallwatch_mining_change_timestamp_seconds",
            "When the latest checkpoint's mining configuration first appeared in the run.",
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
        for summary in self.store.views.runs():
            latest, run = summary.latest, summary.name
            if latest is None or not self._shown(run):
                continue
            if latest.step is not None:
                step.add_metric([run], float(latest.step))
            fp = (latest.mining_fingerprint or "none")[:FINGERPRINT_CHARS]
            info.add_metric([run, latest.name, fp], {})
            changed = self.store.views.mining_change_at(latest)
            if changed is not None:
                mining_change.add_metric([run], changed)
            for ev in self.store.results.current_evaluations(latest.id):
                for metric, family in gauges.items():
                    for k, value in ev.metrics.get(metric, {}).items():
                        family.add_metric([run, ev.dataset, str(k)], value)
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
        yield from (baseline, regression, step, info, mining_change, fn, fn_bucket, amplification)

    def _verdicts(
        self,
        checkpoint_id: int,
        run: str,
        baseline: GaugeMetricFamily,
        regression: GaugeMetricFamily,
    ) -> None:
        # Several kinds of comparison may exist; the mining-change one names the baseline, and
        # the checkpoint counts as regressed when any kind says so.
        chosen: dict[tuple[str, str], tuple[float | None, int]] = {}
        for v in self.store.ledger.verdicts(checkpoint_id):
            if v.metric != "recall":
                continue
            key = (v.dataset, str(v.k))
            prev_base, prev_reg = chosen.get(key, (None, 0))
            base = (
                v.baseline_value if v.kind == "previous_mining" or prev_base is None else prev_base
            )
            chosen[key] = (base, max(prev_reg, int(v.regressed)))
        for (dataset, k), (base, reg) in chosen.items():
            if base is not None:
                baseline.add_metric([run, dataset, k], base)
            regression.add_metric([run, dataset, k], float(reg))

    def _counters(self) -> Iterator[Metric]:
        total = CounterMetricFamily(
            "recallwatch_evaluations",
            "Finished evaluations (one per checkpoint and held-out set).",
            labels=["run"],
        )
        for run, n in sorted(self.store.views.counts_by_run().items()):
            if self._shown(run):
                total.add_metric([run], n)
        failures = CounterMetricFamily(
            "recallwatch_evaluation_failures",
            "Failed evaluations by reason.",
            labels=["run", "reason"],
        )
        for (run, reason), n in sorted(self.store.views.failures_by_run().items()):
            if self._shown(run):
                failures.add_metric([run, reason], n)
        audit_failures = CounterMetricFamily(
            "recallwatch_false_negative_audit_failures",
            "Failed false-negative audits of mined sets, by reason.",
            labels=["run", "reason"],
        )
        for (run, reason), n in sorted(self.store.views.fn_audit_failures_by_run().items()):
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
        yield from (total, failures, audit_failures, last, pending)

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


def _le(bound: float) -> str:
    return repr(float(bound))
