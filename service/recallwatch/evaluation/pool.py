"""A pooled sub-corpus whose recall bounds the whole corpus' recall from above, query by query.

The early pass of the daemon (``daemon.early``) evaluates a new checkpoint on a *pool*: every
judged document of the evaluated queries, the top candidates of an earlier exact evaluation (from
its stored rankings), and a seeded random fill, up to a bounded size. Because the pool holds every
judged document, for the same embeddings each relevant document's rank in the pool is at most its
rank in the whole corpus (removing documents that are not relevant can only move relevant ones
up; ties are broken by document id on both, ``evaluation.search.tiebreak_ranks``). So per query
and at every k, recall@k on the pool >= recall@k on the corpus (and likewise success@k, MRR@k and
binary nDCG@k). A significant drop of the pooled recall below an earlier checkpoint's *exact*
recall is therefore a real drop, whatever the documents outside the pool do (docs/alerting.md,
"Early warning").

- ``build_pool`` chooses the pool's corpus positions;
- ``restrict`` is the held-out set with its corpus cut to those positions (queries and judgements
  unchanged), which any embedding source then evaluates like a whole held-out set;
- ``top_candidates`` picks an exact evaluation's top documents per query from its stored
  rankings, for the next pool.

Pure: plain data in, plain data out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from recallwatch.heldout.sets import HeldoutSet

__all__ = ["build_pool", "judged_pool_positions", "restrict", "top_candidates"]

IntArray = npt.NDArray[np.int64]


def judged_pool_positions(heldout: HeldoutSet) -> IntArray:
    """Corpus positions of every document judged for an evaluated query (any grade)."""
    position = heldout.doc_position
    judged = {position[d] for qid in heldout.query_ids for d in heldout.qrels[qid] if d in position}
    return np.fromiter(sorted(judged), dtype=np.int64, count=len(judged))


def build_pool(
    num_docs: int,
    judged: Iterable[int],
    candidates: Iterable[int],
    size: int,
    *,
    seed: int = 0,
) -> IntArray:
    """The pool's corpus positions, sorted: all of ``judged``, then ``candidates`` in their order,
    then a seeded random fill, until ``size`` positions (never fewer than the judged documents).

    ``judged`` always enters whole: the bound needs every judged document. ``candidates`` (an
    earlier evaluation's top documents, best first) make the pool's competition hard, so the bound
    is tight; the random fill stands for the rest of the corpus. Positions outside
    ``[0, num_docs)`` are an error.
    """
    if size < 0:
        raise ValueError("the pool size must be non-negative")
    chosen = np.zeros(num_docs, dtype=bool)
    judged_arr = np.fromiter(judged, dtype=np.int64)
    cand_arr = np.fromiter(candidates, dtype=np.int64)
    for name, arr in (("judged", judged_arr), ("candidate", cand_arr)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_docs):
            raise ValueError(f"a {name} position is outside the corpus of {num_docs} documents")
    chosen[judged_arr] = True
    left = size - int(chosen.sum())
    if left > 0 and cand_arr.size:
        fresh = cand_arr[~chosen[cand_arr]]
        # First occurrences in candidate order (an earlier evaluation's best first).
        _, first = np.unique(fresh, return_index=True)
        fresh = fresh[np.sort(first)][:left]
        chosen[fresh] = True
        left -= int(fresh.size)
    if left > 0:
        rest = np.flatnonzero(~chosen)
        rng = np.random.default_rng(seed)
        chosen[rng.choice(rest, size=min(left, rest.size), replace=False)] = True
    return np.flatnonzero(chosen).astype(np.int64)


def restrict(heldout: HeldoutSet, positions: IntArray) -> HeldoutSet:
    """``heldout`` with its corpus cut to ``positions`` (sorted), queries and judgements kept.

    Every judged document of an evaluated query must be among ``positions`` (``build_pool``
    guarantees it): otherwise the bound would not hold, and that is an error.
    """
    pos = np.asarray(positions, dtype=np.int64)
    if pos.size and (np.any(np.diff(pos) <= 0) or pos[0] < 0 or pos[-1] >= heldout.num_docs):
        raise ValueError("pool positions must be sorted, unique and inside the corpus")
    keep = set(pos.tolist())
    missing = [p for p in judged_pool_positions(heldout).tolist() if p not in keep]
    if missing:
        raise ValueError(
            f"the pool lacks {len(missing)} judged document(s), first "
            f"{heldout.corpus_ids[missing[0]]!r}: recall on it would not bound the corpus'"
        )
    idx = pos.tolist()
    return dataclasses.replace(
        heldout,
        corpus_ids=[heldout.corpus_ids[i] for i in idx],
        corpus_titles=[heldout.corpus_titles[i] for i in idx],
        corpus_texts=[heldout.corpus_texts[i] for i in idx],
    )


def top_candidates(
    rankings: Mapping[str, Sequence[str]],
    per_query: int,
    limit: int,
    judged: Collection[str] = (),
) -> list[str]:
    """The next pool's candidates from an exact evaluation's stored rankings (query -> document
    ids, best first; ``evaluation.stored_rankings``): round-robin over the queries in their stored
    order (rank 1 of every query, then rank 2 ...) down to rank ``per_query``, distinct, at most
    ``limit``.

    ``judged`` (doc ids) are left out: judged documents enter every pool anyway. Rankings stored
    shallower than ``per_query`` give what they hold; none give no candidates.
    """
    out: list[str] = []
    seen: set[str] = set(judged)
    lists = list(rankings.values())
    depth = min(per_query, max((len(ids) for ids in lists), default=0))
    for r in range(depth):
        for ids in lists:
            if r >= len(ids):
                continue
            d = ids[r]
            if d not in seen:
                seen.add(d)
                out.append(d)
                if len(out) >= limit:
                    return out
    return out
