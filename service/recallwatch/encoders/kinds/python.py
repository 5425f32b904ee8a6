"""``python:MODULE:CALLABLE``: a user's entry point, ``CALLABLE(checkpoint_dir, texts, kind)``."""

from __future__ import annotations

from pathlib import Path

from recallwatch.encoders.base import EmbeddingSource, TextEncoderSource
from recallwatch.encoders.kinds.base import EncoderKind, register
from recallwatch.encoders.options import EncoderOptions
from recallwatch.encoders.python_entry import PythonEncoder

__all__ = ["PythonEntryPoint"]


@register
class PythonEntryPoint(EncoderKind):
    """A Python entry point that returns the embeddings of texts (the options do not apply)."""

    name = "python"
    takes_argument = True
    usage = "python:MODULE:CALLABLE"
    listed = 30

    @classmethod
    def canonical(cls, spec: str) -> str | None:
        """``spec`` when it is ``python:MODULE:CALLABLE`` (both parts there), else None."""
        return spec if spec.startswith("python:") and spec.count(":") >= 2 else None

    def open(
        self,
        spec: str,
        checkpoint: Path | str,
        options: EncoderOptions,
        *,
        show_progress: bool | None = None,
    ) -> EmbeddingSource:
        """Import the entry point named after ``python:``."""
        return TextEncoderSource(PythonEncoder(spec.removeprefix("python:"), checkpoint))
