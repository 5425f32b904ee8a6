"""A sentence-transformers checkpoint directory as an ``Encoder``.

The checkpoint directory is a SentenceTransformer model directory (``modules.json``,
``config.json``, ``model.safetensors``, ...). It is loaded offline: nothing is downloaded.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from recallwatch.encoders.base import TextKind
from recallwatch.errors import CheckpointError

__all__ = ["SentenceTransformerEncoder", "load_offline"]

log = logging.getLogger(__name__)


def load_offline(
    cls: Literal["SentenceTransformer", "CrossEncoder"], model_dir: Path, device: str
) -> Any:
    """Load a sentence-transformers model class from a local directory, never from a hub."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import sentence_transformers
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise CheckpointError(
            f"loading a {cls} needs the 'st' extra: pip install 'recallwatch[st]' "
            "(install the CPU build of torch first)",
            path=model_dir,
        ) from exc
    try:
        return getattr(sentence_transformers, cls)(
            str(model_dir), device=device, local_files_only=True
        )
    except Exception as exc:
        raise CheckpointError(
            f"cannot load the {cls} ({type(exc).__name__}: {exc}); is the checkpoint complete?",
            path=model_dir,
        ) from exc


class SentenceTransformerEncoder:
    """Encode texts with a SentenceTransformer loaded from a local checkpoint directory."""

    name = "sentence-transformers"

    def __init__(
        self,
        model_dir: Path | str,
        *,
        device: str = "cpu",
        batch_size: int = 32,
        max_seq_length: int | None = None,
        normalize: bool = False,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        show_progress: bool | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.batch_size = batch_size
        self.normalize = normalize
        self.show_progress = sys.stderr.isatty() if show_progress is None else show_progress
        if not self.model_dir.is_dir():
            raise CheckpointError("checkpoint directory not found", path=self.model_dir)
        if not any((self.model_dir / f).is_file() for f in ("modules.json", "config.json")):
            raise CheckpointError(
                "not a sentence-transformers model directory (no modules.json or config.json)",
                path=self.model_dir,
            )
        self.model: Any = load_offline("SentenceTransformer", self.model_dir, device)
        if max_seq_length is not None:
            self.model.max_seq_length = max_seq_length
        prompts: dict[str, str] = dict(getattr(self.model, "prompts", {}) or {})
        self.prompts: dict[TextKind, str | None] = {
            "query": query_prompt if query_prompt is not None else prompts.get("query"),
            "document": (
                document_prompt if document_prompt is not None else prompts.get("document")
            ),
        }
        log.info(
            "loaded sentence-transformers model %s (dim %s, max_seq_length %s, device %s)",
            self.model_dir,
            self.dimension,
            self.model.max_seq_length,
            device,
        )

    @property
    def dimension(self) -> int | None:
        """The model's embedding dimension."""
        getter = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        dim = getter()
        return None if dim is None else int(dim)

    def encode(self, texts: Sequence[str], kind: TextKind) -> npt.NDArray[np.float32]:
        """Encode queries or documents with the configured prompt for that kind."""
        out = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            show_progress_bar=self.show_progress,
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
            prompt=self.prompts[kind] or None,
        )
        return np.asarray(out, dtype=np.float32)
