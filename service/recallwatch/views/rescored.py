"""Stored metrics re-scored under the newest qrels overlay version (docs/holes.md).

When a held-out set has an overlay version (labels accepted into its qrels), the checkpoint page,
the run page and the API show, beside each stored metric, the same metric re-scored from the
evaluation's stored rankings under the latest version (``evaluation.holes.rescore``). A stored
number never changes; a metric at a k above the stored depth is not re-scored (None, with why).
Results are cached per (evaluation, version), so a page re-scores an evaluation once.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from recallwatch.errors import InputError
from recallwatch.evaluation.holes import rescore
from recallwatch.evaluation.metrics import METRIC_NAMES
from recallwatch.heldout.beir import read_qrels
from recallwatch.store import CheckpointRow, EvaluationRow, QrelsVersions, Store

__all__ = ["QrelsSource", "RescoredChange", "RescoredEvaluation", "Rescorer"]

#: How many re-scored evaluations the cache keeps (oldest dropped first).
CACHE_SIZE = 4096


@dataclass(frozen=True)
class QrelsSource:
    """Where a held-out set's qrels are: its directory, split and relevance level."""

    path: Path
    split: str = "test"
    relevance_level: int = 1


@dataclass(frozen=True)
class RescoredEvaluation:
    """An evaluation's metrics re-scored from its stored rankings under a qrels version."""

    version: int
    #: Documents per query the stored rankings hold (0: none stored).
    depth: int
    #: metric -> k -> value (None: not re-scored, see ``why``).
    metrics: dict[str, dict[int, float | None]] = field(default_factory=dict)
    #: Why nothing was re-scored (rankings unreadable, qrels missing); None when it was.
    error: str | None = None

    @property
    def label(self) -> str:
        """The column label: ``qrels v2``."""
        return f"qrels v{self.version}"

    def value(self, metric: str, k: int) -> float | None:
        """The re-scored metric@k (None: not re-scored)."""
        return self.metrics.get(metric, {}).get(k)

    def why(self, metric: str, k: int) -> str:
        """Why metric@k has no re-scored value ('' when it has one)."""
        if self.value(metric, k) is not None:
            return ""
        if self.error is not None:
            return self.error
        if self.depth == 0:
            return "no stored rankings (evaluation.stored_rankings was 0, or it predates them)"
        if k > self.depth:
            return f"the stored rankings hold {self.depth} documents per query, k={k} needs {k}"
        return f"{metric} is not re-scored from stored rankings"


@dataclass(frozen=True)
class RescoredChange:
    """An alert's metric change re-scored under a newer qrels version than it was sent with."""

    version: int
    before: float | None
    after: float | None

    @property
    def difference(self) -> float | None:
        """After minus before (None when either is missing)."""
        if self.before is None or self.after is None:
            return None
        return self.after - self.before


class Rescorer:
    """Re-scores stored evaluations under the latest qrels version of their held-out set."""

    def __init__(self, store: Store, sources: Mapping[str, QrelsSource]) -> None:
        self.store = store
        self.sources = dict(sources)
        self._lock = threading.Lock()
        self._qrels: dict[tuple[str, int], dict[str, dict[str, int]]] = {}
        self._cache: dict[tuple[int, int], RescoredEvaluation] = {}

    def latest(self, dataset: str) -> int:
        """The newest overlay version of a held-out set (0: none, nothing to re-score)."""
        if dataset not in self.sources:
            return 0
        return self.store.qrels.latest(dataset)

    def _versioned(self, dataset: str, version: int) -> dict[str, dict[str, int]]:
        key = (dataset, version)
        if key not in self._qrels:
            src = self.sources[dataset]
            raw = read_qrels(Path(src.path) / "qrels" / f"{src.split}.tsv")
            base = {q: {d: g for d, (g, _) in docs.items()} for q, docs in raw.items()}
            overlay = self.store.qrels.overlay(dataset, version)
            self._qrels = {k: v for k, v in self._qrels.items() if k[0] != dataset}
            self._qrels[key] = QrelsVersions.apply(base, overlay)
        return self._qrels[key]

    def evaluation(self, e: EvaluationRow) -> RescoredEvaluation | None:
        """A finished evaluation re-scored under its set's latest version (None: no version)."""
        if e.status != "done":
            return None
        version = self.latest(e.dataset)
        if version == 0:
            return None
        with self._lock:
            hit = self._cache.get((e.id, version))
            if hit is None:
                hit = self._compute(e, version)
                if len(self._cache) >= CACHE_SIZE:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[(e.id, version)] = hit
            return hit

    def _compute(self, e: EvaluationRow, version: int) -> RescoredEvaluation:
        depth = self.store.results.rankings_depth(e.id)
        empty: dict[str, dict[int, float | None]] = {
            m: dict.fromkeys(by_k) for m, by_k in e.metrics.items()
        }
        ks = sorted({k for by_k in e.metrics.values() for k in by_k if k <= depth})
        if not ks:
            return RescoredEvaluation(version, depth, empty)
        src = self.sources[e.dataset]
        try:
            qrels = self._versioned(e.dataset, version)
            r = rescore(
                self.store.results.rankings(e.id),
                qrels,
                ks,
                relevance_level=src.relevance_level,
                depth=depth,
            )
        except (InputError, ValueError) as exc:
            return RescoredEvaluation(version, depth, empty, f"not re-scored: {exc}")
        out = empty
        for m, by_k in out.items():
            if m not in METRIC_NAMES:
                continue
            for k in by_k:
                if k in ks:
                    by_k[k] = r.metrics.mean(m, k)
        return RescoredEvaluation(version, depth, out)

    def change(
        self,
        run: str,
        checkpoint: str | None,
        baseline: str | None,
        dataset: str,
        metric: str,
        k: int,
        *,
        sent_version: int,
    ) -> RescoredChange | None:
        """An alert's before/after re-scored under a version newer than ``sent_version``."""
        version = self.latest(dataset)
        if version <= sent_version or checkpoint is None or baseline is None:
            return None
        values = []
        for name in (baseline, checkpoint):
            row = self.store.queue.checkpoint(run, name)
            values.append(None if row is None else self._value(row, dataset, metric, k))
        return RescoredChange(version, values[0], values[1])

    def _value(self, row: CheckpointRow, dataset: str, metric: str, k: int) -> float | None:
        for e in self.store.results.current_evaluations(row.id):
            if e.dataset == dataset:
                r = self.evaluation(e)
                return None if r is None else r.value(metric, k)
        return None
