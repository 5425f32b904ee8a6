"""Exact evaluation on a Ray cluster (``evaluation.backend: ray``): the corpus in shards, one Ray
task each, merged on the driver in the local path's order. See docs/scale.md.

``cluster`` (options, connecting, ``cluster_unavailable``), ``plan`` (what the driver reads of a
held-out set, the shards), ``tasks`` (what workers run), ``merge`` (top-K across shards),
``driver`` (``evaluate_on_ray``). Ray is imported only when an evaluation runs on it.
"""

from __future__ import annotations

from recallwatch.evaluation.distributed.cluster import (
    CLUSTER_UNAVAILABLE,
    INSTALL_HINT,
    ClusterUnavailableError,
    RayOptions,
)
from recallwatch.evaluation.distributed.driver import evaluate_on_ray
from recallwatch.evaluation.distributed.plan import DistributedHeldout

__all__ = [
    "CLUSTER_UNAVAILABLE",
    "INSTALL_HINT",
    "ClusterUnavailableError",
    "DistributedHeldout",
    "RayOptions",
    "evaluate_on_ray",
]
