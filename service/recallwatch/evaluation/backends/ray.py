"""``ray``: the corpus in shards on a Ray cluster (``evaluation.distributed``; docs/scale.md).

Ray stays an optional dependency: ``evaluation.distributed`` imports it only when an evaluation
runs on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from recallwatch.errors import ConfigError
from recallwatch.evaluation.backends.base import (
    EvaluatedHeldout,
    EvaluationBackend,
    EvaluationRequest,
    register,
)
from recallwatch.evaluation.distributed import INSTALL_HINT, RayOptions, evaluate_on_ray
from recallwatch.evaluation.distributed.cluster import check_address
from recallwatch.evaluation.pipeline import Evaluation

__all__ = ["Ray"]


@register
class Ray(EvaluationBackend):
    """One Ray task per corpus shard, merged on the driver; options: ``RayOptions``."""

    name = "ray"
    requires = ("ray", INSTALL_HINT)

    def evaluate(
        self, request: EvaluationRequest, options: Mapping[str, Any]
    ) -> tuple[Evaluation, EvaluatedHeldout]:
        """Evaluate on the cluster ``options`` name (``RayOptions.from_json``)."""
        ray_options = RayOptions.from_json(options)
        if ray_options.address is not None:  # a wrong address fails before the held-out set is read
            try:
                check_address(ray_options.address)
            except ValueError as exc:
                raise ConfigError([("evaluation.ray.address", str(exc))]) from exc
        r = request
        return evaluate_on_ray(
            r.heldout,
            r.split,
            r.relevance_level,
            r.spec,
            r.checkpoint,
            r.encoder_options,
            ray_options,
            ks=r.ks,
            similarity=r.similarity,
            shard_rows=r.shard_rows,
            progress=r.progress,
        )
