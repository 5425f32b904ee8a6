"""An evaluation for people and machines: a terminal table, a JSON document with its environment."""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from recallwatch import __version__
from recallwatch.evaluation.metrics import METRIC_NAMES
from recallwatch.evaluation.pipeline import Evaluation

__all__ = ["environment", "evaluation_json", "format_table"]

_PACKAGES = ("numpy", "faiss-cpu", "torch", "sentence-transformers", "transformers")


def _pkg_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """Describe the software and threads an evaluation ran with."""
    import faiss

    env: dict[str, Any] = {
        "recallwatch": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "faiss_omp_threads": int(faiss.omp_get_max_threads()),
        "packages": {p: v for p in _PACKAGES if (v := _pkg_version(p)) is not None},
    }
    for var in ("OMP_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS"):
        if var in os.environ:
            env.setdefault("env", {})[var] = os.environ[var]
    if "torch" in sys.modules:
        env["torch_threads"] = int(sys.modules["torch"].get_num_threads())
    return env


def evaluation_json(ev: Evaluation, *, checkpoint: str | None = None) -> dict[str, Any]:
    """The ``--json`` document: metrics, counts, timings and environment."""
    return {
        "checkpoint": checkpoint,
        "dataset": ev.dataset,
        "split": ev.split,
        "encoder": ev.encoder,
        "precision": ev.precision,
        "precision_report": None if ev.precision_report is None else ev.precision_report.as_json(),
        "similarity": ev.similarity,
        "ks": list(ev.ks),
        "metrics": {
            m: {str(k): v for k, v in by_k.items()} for m, by_k in ev.metrics.means().items()
        },
        "counts": {
            "queries_evaluated": ev.num_queries,
            "queries_excluded_no_relevant": ev.num_excluded_queries,
            "documents": ev.num_docs,
            "dimension": ev.dim,
        },
        "timings_seconds": dict(ev.timings),
        "environment": environment(),
    }


def format_table(ev: Evaluation) -> str:
    """A fixed-width table: one row per metric, one column per k."""
    header = f"{'metric':<10}" + "".join(f"{'@' + str(k):>10}" for k in ev.ks)
    rows = [header, "-" * len(header)]
    means = ev.metrics.means()
    for name in METRIC_NAMES:
        rows.append(f"{name:<10}" + "".join(f"{means[name][k]:>10.4f}" for k in ev.ks))
    rows.append("")
    rows.append(
        f"{ev.dataset} ({ev.split}): {ev.num_queries} queries evaluated, "
        f"{ev.num_excluded_queries} excluded (no relevant document), {ev.num_docs} documents, "
        f"dim {ev.dim}, {ev.similarity}, encoder {ev.encoder}"
        + (f" ({ev.precision})" if ev.precision else "")
    )
    if ev.precision_report is not None:
        rows.append(ev.precision_report.describe())
    rows.append("time: " + ", ".join(f"{stage} {secs:.2f}s" for stage, secs in ev.timings.items()))
    return "\n".join(rows)
