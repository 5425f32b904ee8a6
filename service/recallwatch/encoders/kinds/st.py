"""``st`` (or ``sentence-transformers``): the checkpoint is a SentenceTransformer directory."""

from __future__ import annotations

from pathlib import Path

from recallwatch.encoders.base import EmbeddingSource, TextEncoderSource
from recallwatch.encoders.kinds.base import EncoderKind, register
from recallwatch.encoders.options import EncoderOptions

__all__ = ["SentenceTransformers"]


@register
class SentenceTransformers(EncoderKind):
    """A sentence-transformers model directory, loaded offline; takes every encoder option."""

    name = "st"
    aliases = ("sentence-transformers",)
    usage = "st"
    listed = 10
    uses_precision = True
    requires = (
        "sentence_transformers",
        "install torch (CPU build) first, then pip install 'recallwatch[st]'",
    )

    def open(
        self,
        spec: str,
        checkpoint: Path | str,
        options: EncoderOptions,
        *,
        show_progress: bool | None = None,
    ) -> EmbeddingSource:
        """Load the model with the options (importing torch only now)."""
        from recallwatch.encoders.sentence_transformers import SentenceTransformerEncoder

        return TextEncoderSource(
            SentenceTransformerEncoder(
                checkpoint, **options.model_dump(), show_progress=show_progress
            )
        )
