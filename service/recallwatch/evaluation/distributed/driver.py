"""Evaluate one checkpoint on one held-out set on a Ray cluster: the driver.

Top-down: ``plan`` the held-out set (queries, qrels, judged positions, shard offsets: never the
corpus) -> one task encodes the queries, its matrix stays in Ray's object store -> one task per
shard encodes or reads its documents and returns its exact top-K -> the driver merges the top-Ks
as they arrive (``merge``, at most ``MERGE_EVERY`` at a time, so it holds O(queries x K x
MERGE_EVERY)) -> the same metrics code as the local path.

Tasks, not actors: Ray re-runs a task whose worker died (``max_retries``) with the same inputs, and
the result is the same; an ``st`` model loaded per task costs seconds against a shard's minutes of
encoding. A shard that keeps killing its worker fails the evaluation as ``crashed``; a cluster lost
or never reached, as ``cluster_unavailable``.

Timings: ``encode`` and ``search`` are the tasks' own seconds, summed over shards (on N workers
the wall time is about 1/N of them); ``metrics`` is the driver's merge and metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from recallwatch.encoders import EncoderOptions, kind_for, validate_spec
from recallwatch.errors import EvaluationError, RecallwatchError
from recallwatch.evaluation.distributed.cluster import (
    ClusterUnavailableError,
    RayOptions,
    connected,
)
from recallwatch.evaluation.distributed.merge import merge, to_topk
from recallwatch.evaluation.distributed.plan import DistributedHeldout, plan
from recallwatch.evaluation.distributed.tasks import (
    QueryMeta,
    ShardTopK,
    encode_queries,
    search_shard,
)
from recallwatch.evaluation.metrics import DEFAULT_KS, JudgementIndex, compute_metrics
from recallwatch.evaluation.pipeline import Evaluation, shard_rows_for
from recallwatch.evaluation.search import Similarity

__all__ = ["MERGE_EVERY", "evaluate_on_ray"]

#: Shard results merged at a time (with the running top-K).
MERGE_EVERY = 8

Progress = Callable[[int, int], None]


def _resolved(ray: ModuleType, refs: Any) -> Any:
    """``ray.get``, with Ray's failures turned into recallwatch's."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, RecallwatchError):
            raise cause from None
        raise EvaluationError(
            "internal", f"a Ray task failed: {type(cause).__name__}: {cause}"
        ) from exc
    except (
        ray.exceptions.WorkerCrashedError,
        ray.exceptions.NodeDiedError,
        ray.exceptions.OutOfMemoryError,
    ) as exc:
        raise EvaluationError(
            "crashed", f"a Ray task's worker died more often than its retries allow: {exc}"
        ) from exc
    except (ray.exceptions.RaySystemError, ConnectionError) as exc:
        raise ClusterUnavailableError(f"lost the Ray cluster during the evaluation: {exc}") from exc


def _gather(
    ray: ModuleType, refs: list[Any], k: int, total: int, progress: Progress | None
) -> ShardTopK:
    """Merge shard results as they finish, ``MERGE_EVERY`` at a time."""
    running: list[ShardTopK] = []
    pending, done_docs = list(refs), 0
    while pending:
        ready, pending = ray.wait(pending, num_returns=min(len(pending), MERGE_EVERY))
        parts: Sequence[ShardTopK] = _resolved(ray, ready)
        done_docs += sum(p.docs for p in parts)
        running = [merge([*running, *parts], k)]
        if progress is not None:
            progress(done_docs, total)
    return running[0]


def evaluate_on_ray(
    heldout_path: Path | str,
    split: str,
    relevance_level: int,
    spec: str,
    checkpoint: Path | str,
    encoder_options: EncoderOptions,
    ray_options: RayOptions,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    similarity: Similarity = "cosine",
    shard_rows: int | None = None,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[Evaluation, DistributedHeldout]:
    """Evaluate on Ray; the ``Evaluation`` equals the local path's (``pipeline.evaluate``).

    ``shard_rows``: rows a task encodes and searches at a time (its memory bound); the number of
    tasks is ``ray_options.shards``. Returns the held-out set as the driver holds it too (the
    judged documents' positions, for per-query outcomes).
    """
    ks_t = tuple(sorted(set(int(k) for k in ks)))
    if not ks_t or ks_t[0] < 1:
        raise ValueError("k values must be positive integers")
    kmax = ks_t[-1]
    spec = validate_spec(spec)
    kind = kind_for(spec)
    opts = encoder_options.model_dump(mode="json")
    heldout = plan(
        heldout_path,
        split,
        relevance_level,
        shards=ray_options.shards,
        checkpoint=checkpoint if kind.reads_embeddings else None,
        probe=kind.uses_precision and encoder_options.precision == "auto",
    )
    with connected(ray_options) as ray:
        resources = {"num_cpus": ray_options.num_cpus, "num_gpus": ray_options.num_gpus}
        remote = {"max_retries": ray_options.max_retries, "retry_exceptions": False, **resources}
        query_task = ray.remote(encode_queries).options(num_returns=2, **remote)
        queries_ref, meta_ref = query_task.remote(spec, str(checkpoint), opts, heldout.query_side)
        meta: QueryMeta = _resolved(ray, meta_ref)
        rows = shard_rows if shard_rows is not None else shard_rows_for(meta.dim)
        shard_task = ray.remote(search_shard).options(**remote)
        refs = [
            shard_task.remote(
                spec,
                str(checkpoint),
                opts,
                meta.precision,
                str(heldout_path),
                shard,
                queries_ref,
                kmax,
                similarity,
                rows,
            )
            for shard in heldout.shards
        ]
        merged = _gather(ray, refs, kmax, heldout.num_docs, progress)
    t0 = clock()
    top = to_topk(merged, kmax)
    query_side = heldout.query_side
    judgements = JudgementIndex.build(
        query_side.query_ids, query_side.qrels, heldout.doc_position, relevance_level
    )
    metrics = compute_metrics(top.positions, judgements, ks_t)
    timings = {
        "encode": meta.seconds + merged.encode_seconds,
        "search": merged.search_seconds,
        "metrics": clock() - t0,
    }
    evaluation = Evaluation(
        dataset=query_side.name,
        split=split,
        encoder=meta.encoder,
        similarity=similarity,
        ks=ks_t,
        num_queries=query_side.num_queries,
        num_excluded_queries=len(query_side.excluded_query_ids),
        num_docs=heldout.num_docs,
        dim=meta.dim,
        metrics=metrics,
        topk=top,
        timings=timings,
        precision=meta.precision,
        precision_report=meta.precision_report,
    )
    return evaluation, heldout
