"""``precomputed``: the checkpoint's own embeddings, ``<checkpoint>/eval_embeddings/``."""

from __future__ import annotations

from pathlib import Path

from recallwatch.encoders.base import EmbeddingSource
from recallwatch.encoders.kinds.base import EncoderKind, register
from recallwatch.encoders.options import EncoderOptions
from recallwatch.encoders.precomputed import PrecomputedSource

__all__ = ["Precomputed"]


@register
class Precomputed(EncoderKind):
    """``{queries,corpus}.npy`` plus id files written by the trainer; nothing is encoded."""

    name = "precomputed"
    usage = "precomputed"
    listed = 20
    reads_embeddings = True

    def open(
        self,
        spec: str,
        checkpoint: Path | str,
        options: EncoderOptions,
        *,
        show_progress: bool | None = None,
    ) -> EmbeddingSource:
        """Read the checkpoint's embeddings (the options do not apply)."""
        return PrecomputedSource(checkpoint)
