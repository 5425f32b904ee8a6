"""The hole audit of a checkpoint against its baseline, from the store (docs/holes.md).

Reads both checkpoints' stored rankings of one held-out set, the set's qrels (with an overlay
version applied), pools the unjudged documents the checkpoint ranked above the positives it lost
(``evaluation.holes``), has the oracles judge them (``mining.oracles``) and returns the raw and the
hole-adjusted drop. ``recallwatch holes audit`` runs it offline; the daemon attaches it to a
regression alert's evidence. Re-scoring a run's history under a qrels version is here too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from recallwatch.errors import InputError
from recallwatch.evaluation.holes import (
    HoleAudit,
    HolePlan,
    finish_hole_audit,
    plan_hole_audit,
    rescore,
)
from recallwatch.heldout.sets import HeldoutSet, load_heldout
from recallwatch.mining.mined import MinedQuery, MinedSet, Negative, write_recallwatch_jsonl
from recallwatch.mining.oracles import Oracle, Pair
from recallwatch.store import CheckpointRow, EvaluationRow, OverlayLabel, QrelsVersions, Store

__all__ = [
    "QUEUE_PREFIX",
    "HoleTarget",
    "RescoredPoint",
    "accept_relevant",
    "audit_holes",
    "queue_dir",
    "rescore_history",
    "versioned_qrels",
    "write_review_queue",
]


#: Review-set keys of held-out queues start with it (``holes-<dataset>--<run>--<checkpoint>``).
QUEUE_PREFIX = "holes-"


def queue_dir(store_path: Path | str) -> Path:
    """Where the held-out review queues of a store live: ``<store dir>/holes/``."""
    return Path(store_path).parent / "holes"


def write_review_queue(
    folder: Path,
    target: HoleTarget,
    plan: HolePlan,
    qrels: Mapping[str, Mapping[str, int]],
) -> Path | None:
    """Write a hole audit's pool as a review queue: recallwatch JSONL (the query's relevant
    documents as positives, the displacing documents as negatives ranked where the checkpoint
    ranked them), read by the review pages' held-out queue (None when the pool is empty)."""
    by_query: dict[str, list[Negative]] = {}
    for q, d, rank in plan.pairs:
        by_query.setdefault(q, []).append(Negative(d, rank))
    if not by_query:
        return None
    stem = "--".join(
        re.sub(r"[^A-Za-z0-9_.-]|-(?=-|$)|^-", "_", part)
        for part in (target.dataset, target.checkpoint.run, target.checkpoint.name)
    )
    path = folder / f"{stem}.jsonl"
    queries = [
        MinedQuery(
            q,
            tuple(d for d, g in qrels.get(q, {}).items() if g >= target.relevance_level),
            tuple(negatives),
        )
        for q, negatives in by_query.items()
    ]
    write_recallwatch_jsonl(MinedSet(queries, path, "recallwatch"), path)
    return path


@dataclass(frozen=True)
class HoleTarget:
    """What to audit: a checkpoint against its baseline on one held-out set."""

    checkpoint: CheckpointRow
    baseline: CheckpointRow
    dataset: str
    heldout: Path
    split: str = "test"
    relevance_level: int = 1


def versioned_qrels(
    store: Store, dataset: str, heldout: HeldoutSet, version: int | None
) -> tuple[int, dict[str, dict[str, int]]]:
    """The held-out set's qrels under an overlay version (None: the latest); and that version."""
    v = store.qrels.latest(dataset) if version is None else version
    return v, QrelsVersions.apply(heldout.qrels, store.qrels.overlay(dataset, v))


def _evaluation(store: Store, row: CheckpointRow, dataset: str) -> EvaluationRow:
    for e in store.results.current_evaluations(row.id):
        if e.dataset == dataset:
            return e
    raise InputError(f"checkpoint {row.name!r} has no finished evaluation on {dataset!r}")


def _rankings(store: Store, row: CheckpointRow, dataset: str, k: int) -> dict[str, list[str]]:
    ev = _evaluation(store, row, dataset)
    depth = store.results.rankings_depth(ev.id)
    if depth < k:
        raise InputError(
            f"checkpoint {row.name!r} has {depth} stored documents per query on {dataset!r}, "
            f"the audit at k={k} needs {k} (evaluation.stored_rankings; evaluations stored "
            "before it keep none)"
        )
    return store.results.rankings(ev.id)


def _pairs(heldout: HeldoutSet, todo: Sequence[tuple[str, str, int]]) -> list[Pair]:
    qtext = dict(zip(heldout.query_ids, heldout.query_texts, strict=True))
    position = heldout.doc_position
    out = []
    for q, d, _ in todo:
        i = position.get(d)
        text = None if i is None else f"{heldout.corpus_titles[i]} {heldout.corpus_texts[i]}"
        positives = tuple(heldout.relevant(q)) if q in heldout.qrels else ()
        ptexts = tuple(
            f"{heldout.corpus_titles[position[p]]} {heldout.corpus_texts[position[p]]}".strip()
            for p in positives
        )
        out.append(
            Pair(
                q,
                d,
                query_text=qtext.get(q),
                doc_text=None if text is None else text.strip(),
                positive_ids=positives,
                positive_texts=ptexts,
            )
        )
    return out


def audit_holes(
    store: Store,
    target: HoleTarget,
    oracle: Oracle,
    *,
    metric: str = "recall",
    k: int = 10,
    max_pairs: int = 200,
    seed: int = 0,
    version: int | None = None,
    heldout: HeldoutSet | None = None,
    queue: Path | None = None,
) -> tuple[HoleAudit, int]:
    """Audit the holes behind ``target``'s drop of metric@k; return the audit and the qrels
    version it used. Pairs the oracle cannot judge count as not relevant. ``queue``: a folder to
    write the pool to as a held-out review queue (``write_review_queue``)."""
    hs = heldout or load_heldout(target.heldout, target.split, target.relevance_level)
    used, qrels = versioned_qrels(store, target.dataset, hs, version)
    before = _rankings(store, target.baseline, target.dataset, k)
    after = _rankings(store, target.checkpoint, target.dataset, k)
    plan = plan_hole_audit(
        before,
        after,
        qrels,
        metric=metric,
        k=k,
        relevance_level=target.relevance_level,
        max_pairs=max_pairs,
        seed=seed,
    )
    if queue is not None:
        write_review_queue(queue, target, plan, qrels)
    labels: dict[tuple[str, str], str | None] = {}
    if plan.pairs:
        mask = oracle.eligible([q for q, _, _ in plan.pairs], [d for _, d, _ in plan.pairs])
        todo = [p for i, p in enumerate(plan.pairs) if mask is None or bool(mask[i])]
        if todo:
            judgements = oracle.judge(_pairs(hs, todo))
            labels = {(q, d): j.label for (q, d, _), j in zip(todo, judgements, strict=True)}
    return finish_hole_audit(plan, labels), used


def accept_relevant(
    store: Store, dataset: str, audit: HoleAudit, *, source: str, grade: int, now: float
) -> int | None:
    """Accept an audit's relevant displacing documents as a new qrels version; its number (None
    when there is nothing to accept)."""
    labels = [OverlayLabel(q, d, grade, source) for q, d in audit.relevant_pairs]
    if not labels:
        return None
    note = f"hole audit of {audit.metric}@{audit.k}: {len(labels)} relevant ({source})"
    return store.qrels.add(dataset, labels, note=note, now=now).version


@dataclass(frozen=True)
class RescoredPoint:
    """One checkpoint's stored metric and the same metric re-scored under a qrels version."""

    checkpoint: str
    step: int | None
    stored: float | None
    rescored: float | None


def rescore_history(
    store: Store,
    run: str,
    dataset: str,
    heldout: HeldoutSet,
    *,
    metric: str = "recall",
    k: int = 10,
    version: int | None = None,
) -> tuple[int, list[RescoredPoint]]:
    """Every evaluated checkpoint of a run: its stored metric@k and the metric re-scored from its
    stored rankings under a qrels version (None where it has too few stored documents)."""
    used, qrels = versioned_qrels(store, dataset, heldout, version)
    points = []
    for row in store.queue.checkpoints(run, states=["evaluated"]):
        try:
            ev = _evaluation(store, row, dataset)
        except InputError:
            continue
        depth = store.results.rankings_depth(ev.id)
        value = None
        if depth >= k:
            r = rescore(
                store.results.rankings(ev.id),
                qrels,
                [k],
                relevance_level=heldout.relevance_level,
                depth=depth,
            )
            value = r.metrics.mean(metric, k)
        points.append(RescoredPoint(row.name, row.step, ev.metrics.get(metric, {}).get(k), value))
    return used, points
