"""Encoders: the ``Encoder`` protocol, the embedding sources an evaluation reads from, the kinds.

Encoder specs (as on the command line and in the config), one kind each (``encoders.kinds``):

- ``st`` (or ``sentence-transformers``): the checkpoint is a SentenceTransformer model directory
- ``precomputed``: ``<checkpoint>/eval_embeddings/{queries,corpus}.npy`` plus id files
- ``python:MODULE:CALLABLE``: ``CALLABLE(checkpoint_dir, texts, kind)`` returns the embeddings

Their options are ``EncoderOptions`` (``encoders.options``), defined once.
"""

from __future__ import annotations

from recallwatch.encoders.base import (
    CorpusShard,
    EmbeddingSource,
    Encoder,
    TextEncoderSource,
    TextKind,
    check_matrix,
)
from recallwatch.encoders.kinds import (
    ENCODER_KINDS,
    EncoderKind,
    kind_for,
    open_source,
    validate_spec,
)
from recallwatch.encoders.options import EncoderOptions
from recallwatch.encoders.precision import PRECISIONS, Precision

__all__ = [
    "ENCODER_KINDS",
    "PRECISIONS",
    "CorpusShard",
    "EmbeddingSource",
    "Encoder",
    "EncoderKind",
    "EncoderOptions",
    "Precision",
    "TextEncoderSource",
    "TextKind",
    "check_matrix",
    "kind_for",
    "open_source",
    "validate_spec",
]
