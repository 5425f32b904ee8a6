"""``local``: the evaluation in this process (``evaluation.pipeline.evaluate``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from recallwatch.encoders import open_source
from recallwatch.evaluation.backends.base import (
    EvaluatedHeldout,
    EvaluationBackend,
    EvaluationRequest,
    register,
)
from recallwatch.evaluation.pipeline import Evaluation, evaluate
from recallwatch.heldout.sets import load_heldout

__all__ = ["Local"]


@register
class Local(EvaluationBackend):
    """The whole held-out set in memory, the corpus searched shard by shard here."""

    name = "local"

    def evaluate(
        self, request: EvaluationRequest, options: Mapping[str, Any]
    ) -> tuple[Evaluation, EvaluatedHeldout]:
        """Load the held-out set, open the encoder, evaluate (the local backend has no options)."""
        r = request
        if r.log is not None:
            r.log.info("loading held-out set %s (split %s)", r.heldout, r.split)
        heldout = load_heldout(r.heldout, r.split, r.relevance_level)
        if r.log is not None:
            r.log.info(
                "%d queries (%d excluded without a relevant document), %d documents",
                heldout.num_queries,
                len(heldout.excluded_query_ids),
                heldout.num_docs,
            )
        source = open_source(r.spec, r.checkpoint, r.encoder_options)
        ev = evaluate(
            heldout,
            source,
            ks=r.ks,
            similarity=r.similarity,
            shard_rows=r.shard_rows,
            progress=r.progress,
        )
        return ev, heldout
