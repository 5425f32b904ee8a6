"""The ``Encoder`` protocol, embedding sources, and validation of what encoders return.

An ``Encoder`` turns texts into a float32 matrix. An ``EmbeddingSource`` gives the evaluation the
query matrix of a held-out set and its corpus in shards: either by running an encoder over the
texts (``TextEncoderSource``) or by reading precomputed embeddings from disk.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from recallwatch.encoders.precision import PrecisionReport, ProbeTexts
from recallwatch.errors import EmbeddingError, EncoderError, RecallwatchError
from recallwatch.heldout.sets import HeldoutSet

__all__ = [
    "CorpusShard",
    "EmbeddingSource",
    "Encoder",
    "TextEncoderSource",
    "TextKind",
    "check_matrix",
]

TextKind = Literal["query", "document"]
DEFAULT_TEXT_SHARD_ROWS = 16_384


@runtime_checkable
class Encoder(Protocol):
    """Turn texts into embeddings: one float32 row per text."""

    name: str

    def encode(self, texts: Sequence[str], kind: TextKind) -> npt.NDArray[np.float32]:
        """Return a (len(texts), dim) matrix for queries or documents."""
        ...


@dataclass(frozen=True)
class CorpusShard:
    """A block of corpus embeddings and the corpus positions of its rows."""

    embeddings: npt.NDArray[np.float32]
    positions: npt.NDArray[np.int64]
    #: Where the rows came from, for error messages (a file path or an encoder name).
    origin: str
    #: Row number of each embedding in its origin (e.g. the line of corpus_ids.txt, 0-based).
    source_rows: npt.NDArray[np.int64]


class EmbeddingSource(Protocol):
    """Query embeddings and corpus shards of one checkpoint on one held-out set."""

    name: str

    def queries(self, heldout: HeldoutSet) -> npt.NDArray[np.float32]:
        """Return the (num_queries, dim) matrix aligned with ``heldout.query_ids``."""
        ...

    def corpus_shards(self, heldout: HeldoutSet, shard_rows: int) -> Iterator[CorpusShard]:
        """Yield the corpus in shards of at most ``shard_rows`` rows, covering every document."""
        ...


def check_matrix(
    value: object, *, rows: int, what: str, origin: str, dim: int | None = None
) -> npt.NDArray[np.float32]:
    """Validate an encoder's output: a finite 2-D float matrix with ``rows`` rows."""
    try:
        arr = np.asarray(value)
    except Exception as exc:
        raise EmbeddingError(
            f"{what}: encoder output is not an array ({exc})", path=origin
        ) from exc
    if arr.ndim != 2:
        raise EmbeddingError(
            f"{what}: expected a 2-D matrix, got shape {arr.shape}", path=origin, field="shape"
        )
    if arr.shape[0] != rows:
        raise EmbeddingError(
            f"{what}: expected {rows} rows (one per text), got {arr.shape[0]}",
            path=origin,
            field="shape",
        )
    if arr.dtype.kind != "f":
        raise EmbeddingError(
            f"{what}: expected floating-point values, got dtype {arr.dtype}",
            path=origin,
            field="dtype",
        )
    if dim is not None and arr.shape[1] != dim:
        raise EmbeddingError(
            f"{what}: dimension {arr.shape[1]} does not match the query dimension {dim}",
            path=origin,
            field="dimension",
        )
    return np.ascontiguousarray(arr, dtype=np.float32)


class TextEncoderSource:
    """An embedding source that runs an ``Encoder`` over the held-out texts.

    An encoder with a ``prepare(samples)`` method (the ``st`` encoder: its ``auto`` precision's
    parity probe) is given the held-out queries and documents, with their judgements
    (``ProbeTexts``), before the first encoding; it picks its few probe texts from them.
    """

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.name = encoder.name
        self._dim: int | None = None

    @property
    def precision(self) -> str | None:
        """The numeric precision the encoder computes in, where it says (``st``); else None."""
        value = getattr(self.encoder, "precision", None)
        return value if isinstance(value, str) else None

    @property
    def precision_report(self) -> PrecisionReport:
        """The encoder's ``PrecisionReport`` (``st``, ``openvino``); for one that names only its
        ``precision``, that precision without a probe; for one that says nothing of it
        (``python:``), not applicable."""
        value = getattr(self.encoder, "precision_report", None)
        if isinstance(value, PrecisionReport):
            return value
        if self.precision is not None:
            return PrecisionReport(
                None, self.precision, "not-run", note=f"the {self.name} encoder ran no probe"
            )
        return PrecisionReport.not_applicable(f"the {self.name} encoder computes its embeddings")

    def _prepare(self, heldout: HeldoutSet) -> None:
        prepare = getattr(self.encoder, "prepare", None)
        if callable(prepare):
            position = heldout.doc_position
            relevant = [
                [position[d] for d in heldout.relevant(q) if d in position]
                for q in heldout.query_ids
            ]
            try:
                prepare(ProbeTexts(heldout.query_texts, heldout.corpus_texts, relevant))
            except RecallwatchError:
                raise
            except Exception as exc:
                raise EncoderError(
                    f"encoder {self.encoder.name!r} failed preparing: {type(exc).__name__}: {exc}"
                ) from exc

    def _encode(self, texts: Sequence[str], kind: TextKind, what: str) -> npt.NDArray[np.float32]:
        try:
            out = self.encoder.encode(texts, kind)
        except RecallwatchError:
            raise
        except Exception as exc:
            raise EncoderError(
                f"encoder {self.encoder.name!r} failed on {what}: {type(exc).__name__}: {exc}"
            ) from exc
        return check_matrix(
            out, rows=len(texts), what=what, origin=self.encoder.name, dim=self._dim
        )

    def queries(self, heldout: HeldoutSet) -> npt.NDArray[np.float32]:
        """Encode the evaluated queries."""
        self._prepare(heldout)
        q = self._encode(heldout.query_texts, "query", "query embeddings")
        self._dim = q.shape[1]
        return q

    def corpus_shards(self, heldout: HeldoutSet, shard_rows: int) -> Iterator[CorpusShard]:
        """Encode the corpus in shards of ``shard_rows`` documents."""
        for start in range(0, heldout.num_docs, shard_rows):
            stop = min(start + shard_rows, heldout.num_docs)
            emb = self._encode(
                heldout.corpus_texts[start:stop],
                "document",
                f"corpus documents {start}..{stop - 1}",
            )
            positions = np.arange(start, stop, dtype=np.int64)
            yield CorpusShard(emb, positions, self.encoder.name, positions)
