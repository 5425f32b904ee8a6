"""``openvino``: a sentence-transformers checkpoint compiled by OpenVINO for the CPU."""

from __future__ import annotations

from pathlib import Path

from recallwatch.encoders.base import EmbeddingSource, TextEncoderSource
from recallwatch.encoders.kinds.base import EncoderKind, register
from recallwatch.encoders.options import EncoderOptions

__all__ = ["OpenVINO"]


@register
class OpenVINO(EncoderKind):
    """A sentence-transformers model directory run by OpenVINO (bf16 where the probe allows)."""

    name = "openvino"
    usage = "openvino"
    listed = 15
    uses_precision = True
    requires = (
        "openvino",
        "install torch (CPU build) first, then pip install 'recallwatch[st,openvino]'",
    )

    def open(
        self,
        spec: str,
        checkpoint: Path | str,
        options: EncoderOptions,
        *,
        show_progress: bool | None = None,
    ) -> EmbeddingSource:
        """Load and convert the model (importing torch and openvino only now)."""
        from recallwatch.encoders.openvino import OpenVINOEncoder

        return TextEncoderSource(
            OpenVINOEncoder(checkpoint, **options.model_dump(), show_progress=show_progress)
        )
