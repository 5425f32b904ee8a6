"""Precomputed embeddings written by the trainer: ``<checkpoint>/eval_embeddings/``.

Layout: ``queries.npy`` and ``corpus.npy`` (float32 or float16, C order), row i <-> line i of
``query_ids.txt`` / ``corpus_ids.txt``. The query ids must cover every evaluated query (extra ids
are ignored); the corpus ids must cover the whole corpus (rows of ids not in the corpus are
skipped). The corpus file is streamed in shards (float32: mapped read-only; float16: read into two
reusable buffers and converted), one searched while the next is read, so memory stays bounded by
two shards whatever the corpus size.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from recallwatch.encoders.base import CorpusShard
from recallwatch.encoders.precision import PrecisionReport
from recallwatch.errors import CheckpointError, EmbeddingError
from recallwatch.heldout.sets import HeldoutSet

__all__ = ["EMBEDDINGS_DIR", "PrecomputedSource", "read_ids", "read_npy_header"]

EMBEDDINGS_DIR = "eval_embeddings"
_ALLOWED = (np.dtype("<f4"), np.dtype("<f2"))


def read_ids(path: Path) -> list[str]:
    """Read one id per line; blank lines and duplicates are errors naming the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise EmbeddingError("id file not found", path=path) from exc
    except UnicodeDecodeError as exc:
        raise EmbeddingError(f"not valid UTF-8 (byte {exc.start})", path=path) from exc
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    # Fast path (millions of ids): strip, then check blanks and duplicates in bulk; the slow
    # loop below runs only to name the line of a problem.
    fast = [line.strip() for line in lines]
    if fast and all(fast) and len(set(fast)) == len(fast):
        return fast
    ids: list[str] = []
    seen: dict[str, int] = {}
    for lineno, raw in enumerate(lines, start=1):
        ident = raw.rstrip("\r").strip()
        if not ident:
            raise EmbeddingError("blank id", path=path, line=lineno)
        if ident in seen:
            raise EmbeddingError(
                f"duplicate id {ident!r} (first on line {seen[ident]})", path=path, line=lineno
            )
        seen[ident] = lineno
        ids.append(ident)
    if not ids:
        raise EmbeddingError("the id file is empty", path=path)
    return ids


def read_npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype[np.generic], int]:
    """Return (shape, dtype, data offset) of a ``.npy`` file, validating what we can stream."""
    try:
        fh = path.open("rb")
    except FileNotFoundError as exc:
        raise EmbeddingError("embedding file not found", path=path) from exc
    with fh:
        try:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        except ValueError as exc:
            raise EmbeddingError(f"not a valid .npy file ({exc})", path=path) from exc
        offset = fh.tell()
    if len(shape) != 2:
        raise EmbeddingError(f"expected a 2-D matrix, got shape {shape}", path=path, field="shape")
    if dtype not in _ALLOWED:
        raise EmbeddingError(
            f"dtype {dtype} is not supported; write float32 or float16", path=path, field="dtype"
        )
    if fortran:
        raise EmbeddingError("Fortran-ordered arrays are not supported; save C order", path=path)
    size = path.stat().st_size
    expected = offset + int(np.prod(shape)) * dtype.itemsize
    if size < expected:
        raise EmbeddingError(
            f"file is truncated: {size} bytes, the header promises {expected}", path=path
        )
    return shape, dtype, offset


def _map_rows(fd: int, path: Path, start: int, rows: int, dim: int) -> npt.NDArray[np.float32]:
    """``rows`` float32 rows of ``dim`` at byte ``start`` of the open file, mapped read-only."""
    end, size = start + rows * dim * 4, os.fstat(fd).st_size
    if size < end:  # mapped pages past the end would fault, not read short
        raise EmbeddingError(f"the file shrank to {size} bytes while reading", path=path)
    base = start - start % mmap.ALLOCATIONGRANULARITY
    flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)  # page tables filled here
    mapping = mmap.mmap(fd, end - base, flags=flags, prot=mmap.PROT_READ, offset=base)
    block = np.frombuffer(mapping, dtype=np.float32, count=rows * dim, offset=start - base)
    return block.reshape(rows, dim)


def _missing(wanted: list[str], have: dict[str, int]) -> list[str]:
    return [w for w in wanted if w not in have]


class PrecomputedSource:
    """Embeddings read from ``<checkpoint>/eval_embeddings``."""

    name = "precomputed"

    def __init__(self, checkpoint: Path | str) -> None:
        self.checkpoint = Path(checkpoint)
        self.dir = self.checkpoint / EMBEDDINGS_DIR
        if not self.dir.is_dir():
            raise CheckpointError(
                f"no {EMBEDDINGS_DIR}/ directory; the precomputed encoder needs "
                "queries.npy, corpus.npy, query_ids.txt and corpus_ids.txt there",
                path=self.checkpoint,
            )
        self._dim: int | None = None

    @property
    def precision_report(self) -> PrecisionReport:
        """Not applicable: the trainer computed these embeddings, recallwatch only reads them."""
        return PrecisionReport.not_applicable("precomputed embeddings")

    def _ids_and_header(
        self, kind: str
    ) -> tuple[Path, list[str], tuple[int, ...], np.dtype[np.generic], int]:
        ids_path = self.dir / f"{kind}_ids.txt"
        npy_path = self.dir / f"{'queries' if kind == 'query' else 'corpus'}.npy"
        ids = read_ids(ids_path)
        shape, dtype, offset = read_npy_header(npy_path)
        if shape[0] != len(ids):
            raise EmbeddingError(
                f"{shape[0]} rows but {ids_path.name} has {len(ids)} ids; they must match line "
                "for row",
                path=npy_path,
                field="shape",
            )
        if self._dim is not None and shape[1] != self._dim:
            raise EmbeddingError(
                f"dimension {shape[1]} does not match the query dimension {self._dim}",
                path=npy_path,
                field="dimension",
            )
        return npy_path, ids, shape, dtype, offset

    def queries(self, heldout: HeldoutSet) -> npt.NDArray[np.float32]:
        """Read the query rows of the evaluated queries, in held-out order."""
        path, ids, shape, _, _ = self._ids_and_header("query")
        row_of = {ident: i for i, ident in enumerate(ids)}
        missing = _missing(heldout.query_ids, row_of)
        if missing:
            raise EmbeddingError(
                f"{len(missing)} evaluated query id(s) have no embedding, first: "
                f"{', '.join(map(repr, missing[:5]))}",
                path=self.dir / "query_ids.txt",
            )
        matrix = np.load(path, mmap_mode="r")
        rows = np.fromiter((row_of[q] for q in heldout.query_ids), dtype=np.int64)
        out = np.ascontiguousarray(matrix[rows], dtype=np.float32)
        self._dim = int(shape[1])
        return out

    def corpus_shards(self, heldout: HeldoutSet, shard_rows: int) -> Iterator[CorpusShard]:
        """Stream ``corpus.npy`` in shards, skipping rows of ids outside the corpus."""
        path, ids, shape, dtype, offset = self._ids_and_header("corpus")
        if ids == heldout.corpus_ids:  # the common case: written in corpus order
            row_positions = np.arange(len(ids), dtype=np.int64)
        else:
            position = heldout.doc_position
            row_positions = np.fromiter((position.get(d, -1) for d in ids), dtype=np.int64)
        # Ids are unique, so the corpus is covered when every position appears once.
        covered = np.count_nonzero(row_positions >= 0) == heldout.num_docs
        present = set() if covered else set(ids)
        missing = [] if covered else [d for d in heldout.corpus_ids if d not in present]
        if missing:
            raise EmbeddingError(
                f"{len(missing)} corpus document(s) have no embedding, first: "
                f"{', '.join(map(repr, missing[:5]))}",
                path=self.dir / "corpus_ids.txt",
            )
        nrows, dim = int(shape[0]), int(shape[1])
        row_bytes = dim * dtype.itemsize
        rows_max = min(shard_rows, nrows)
        # float32: each shard is the file's pages mapped read-only, not copied (touching a fresh
        # buffer costs more than the read itself: page zeroing, huge-page compaction); unmapped
        # once the evaluation drops it. float16: converted into two float32 buffers, alternating
        # (the evaluation searches one shard while the next is read, one shard ahead).
        mapped = dtype == np.float32
        buffers = [] if mapped else [np.empty((rows_max, dim), dtype=np.float32) for _ in range(2)]
        raw = np.empty((0 if mapped else rows_max, dim), dtype=dtype)
        fd = os.open(path, os.O_RDONLY)
        try:
            for i, start in enumerate(range(0, nrows, shard_rows)):
                n = min(shard_rows, nrows - start)
                if mapped:
                    block = _map_rows(fd, path, offset + start * row_bytes, n, dim)
                else:
                    view = memoryview(raw[:n].reshape(-1).view(np.uint8))  # type: ignore[arg-type]
                    got = os.preadv(fd, [view], offset + start * row_bytes)
                    if got != n * row_bytes:
                        raise EmbeddingError(
                            f"short read at row {start}: the file changed while reading", path=path
                        )
                    block = buffers[i % 2][:n]
                    np.copyto(block, raw[:n], casting="unsafe")
                pos = row_positions[start : start + n]
                rows = np.arange(start, start + n, dtype=np.int64)
                keep = pos >= 0
                if not keep.all():
                    block, pos, rows = block[keep], pos[keep], rows[keep]
                yield CorpusShard(block, pos, str(path), rows)
        finally:
            os.close(fd)
