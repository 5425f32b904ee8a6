"""Embedding sources for tests that already hold the embeddings in memory."""

from __future__ import annotations

import numpy as np

from recallwatch.heldout.sets import HeldoutSet


class CachedEmbeddingSource:
    """An embedding source over in-memory matrices aligned with a held-out set."""

    name = "cached-minilm"

    def __init__(self, heldout: HeldoutSet, cache: object) -> None:
        self.q = cache.queries[[cache.query_ids.index(q) for q in heldout.query_ids]]  # type: ignore[attr-defined]
        order = {d: i for i, d in enumerate(cache.corpus_ids)}  # type: ignore[attr-defined]
        self.x = cache.corpus[[order[d] for d in heldout.corpus_ids]]  # type: ignore[attr-defined]

    def queries(self, heldout: HeldoutSet) -> np.ndarray:
        return self.q

    def corpus_shards(self, heldout: HeldoutSet, shard_rows: int):  # type: ignore[no-untyped-def]
        from recallwatch.encoders.base import CorpusShard

        for a in range(0, len(self.x), shard_rows):
            rows = np.arange(a, min(a + shard_rows, len(self.x)), dtype=np.int64)
            yield CorpusShard(self.x[a : a + shard_rows].copy(), rows, self.name, rows)
