"""Encoders: the ``Encoder`` protocol and the embedding sources an evaluation reads from.

Encoder specs (as on the command line and in the config):

- ``st`` (or ``sentence-transformers``): the checkpoint is a SentenceTransformer model directory
- ``precomputed``: ``<checkpoint>/eval_embeddings/{queries,corpus}.npy`` plus id files
- ``python:MODULE:CALLABLE``: ``CALLABLE(checkpoint_dir, texts, kind)`` returns the embeddings
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recallwatch.encoders.base import (
    CorpusShard,
    EmbeddingSource,
    Encoder,
    TextEncoderSource,
    TextKind,
    check_matrix,
)
from recallwatch.encoders.precision import PRECISIONS, Precision
from recallwatch.encoders.precomputed import PrecomputedSource
from recallwatch.errors import ConfigError

__all__ = [
    "PRECISIONS",
    "CorpusShard",
    "EmbeddingSource",
    "Encoder",
    "EncoderOptions",
    "Precision",
    "TextEncoderSource",
    "TextKind",
    "check_matrix",
    "open_source",
    "validate_spec",
]


@dataclass(frozen=True)
class EncoderOptions:
    """Options of the sentence-transformers encoder (ignored by the others)."""

    device: str = "cpu"
    batch_size: int = 32
    max_seq_length: int | None = None
    normalize: bool = False
    query_prompt: str | None = None
    document_prompt: str | None = None
    show_progress: bool | None = None
    #: ``auto``, ``fp32``, ``bf16`` or ``fp16`` (``encoders.precision``).
    precision: Precision = "fp32"


def validate_spec(spec: str) -> str:
    """Return the canonical form of an encoder spec or raise ``ConfigError``."""
    if spec in ("st", "sentence-transformers"):
        return "st"
    if spec == "precomputed":
        return spec
    if spec.startswith("python:") and spec.count(":") >= 2:
        return spec
    raise ConfigError(
        [
            (
                "encoder",
                f"unknown encoder {spec!r}; use 'st', 'precomputed' or 'python:MODULE:CALLABLE'",
            )
        ]
    )


def open_source(
    spec: str, checkpoint: Path | str, options: EncoderOptions | None = None
) -> EmbeddingSource:
    """Open the embedding source for one checkpoint (loading its model where there is one)."""
    spec = validate_spec(spec)
    opts = options or EncoderOptions()
    if spec == "precomputed":
        return PrecomputedSource(checkpoint)
    if spec == "st":
        from recallwatch.encoders.sentence_transformers import SentenceTransformerEncoder

        return TextEncoderSource(
            SentenceTransformerEncoder(
                checkpoint,
                device=opts.device,
                batch_size=opts.batch_size,
                max_seq_length=opts.max_seq_length,
                normalize=opts.normalize,
                query_prompt=opts.query_prompt,
                document_prompt=opts.document_prompt,
                show_progress=opts.show_progress,
                precision=opts.precision,
            )
        )
    from recallwatch.encoders.python_entry import PythonEncoder

    return TextEncoderSource(PythonEncoder(spec.removeprefix("python:"), checkpoint))
