"""Exact ranks and scores of mined negatives, reconstructed from the embeddings
``mine_hard_negatives`` searched with (see the package docstring)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)


# -- reconstructing the candidates ---------------------------------------------------------


@dataclass
class _Candidates:
    """The function's candidate search, repeated: per unique query, in rank order."""

    queries: list[str]
    corpus: list[str]
    #: per query: corpus indices of its positives (the function's order) and their scores
    positives: list[list[int]]
    positive_scores: list[list[float]]
    #: per query: corpus index -> (rank among non-positive candidates, score)
    ranked: list[dict[int, tuple[int, float]]]
    embeddings: str
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SearchRule:
    """How one sentence-transformers version sizes ``mine_hard_negatives``' candidate search."""

    #: candidates retrieved beyond ``range_max``: ``max_positives`` (+1 where ``plus_one``)
    plus_one: bool
    #: FAISS (<5.7) retrieves ``range_max + 1`` whatever the number of positives
    faiss_range_max_plus_one: bool
    #: the derived ``range_max`` under FAISS: "2048" (<5.7: capped to 2048 always) or "gpu"
    #: (capped to ``2048 - extra`` only with a GPU)
    faiss_cap: str
    #: the query's own text, when it is in the corpus, is never a candidate (>=6.3)
    excludes_query: bool


def _version(text: str) -> tuple[int, int]:
    found = re.match(r"(\d+)(?:\.(\d+))?", text)
    if found is None:
        raise ValueError(f"cannot read the sentence-transformers version {text!r}")
    return int(found.group(1)), int(found.group(2) or 0)


def search_rule(version: str) -> SearchRule:
    """The candidate-search rule of sentence-transformers ``version`` (read from its source).

    5.0-5.6: top-k ``range_max + max_positives`` (FAISS: ``range_max + 1``), a derived
    ``range_max`` capped to 2048 under FAISS. 5.7-6.2: ``range_max + max_positives`` in both,
    capped to ``2048 - max_positives`` on a GPU. 6.3 on: ``range_max + max_positives + 1`` (one
    slot for the query's own text, which is never a candidate), capped to
    ``2048 - max_positives - 1`` on a GPU.
    """
    v = _version(version)
    if v < (5, 7):
        return SearchRule(False, True, "2048", False)
    if v < (6, 3):
        return SearchRule(False, False, "gpu", False)
    return SearchRule(True, False, "gpu", True)


def candidate_count(rule: SearchRule, range_max: int, max_positives: int, use_faiss: bool) -> int:
    """How many candidates per query the search retrieves (before padding or the corpus size)."""
    if use_faiss and rule.faiss_range_max_plus_one:
        return range_max + 1
    return range_max + max_positives + (1 if rule.plus_one else 0)


def _faiss_gpus() -> int:
    with contextlib.suppress(Exception):
        import faiss

        return int(getattr(faiss, "get_num_gpus", lambda: 0)())
    return 0


def _derived_range_max(a: dict[str, Any], max_positives: int, rule: SearchRule) -> int:
    """``range_max`` as ``mine_hard_negatives`` derives it when not given."""
    range_max = a.get("range_max")
    if range_max is not None:
        return int(range_max)
    range_min = int(a.get("range_min") or 0)
    num_negatives = int(a["num_negatives"])
    if (
        a.get("absolute_margin") is not None
        or a.get("relative_margin") is not None
        or a.get("max_score") is not None
        or (a.get("cross_encoder") is not None and a.get("min_score") is not None)
    ):
        range_max = range_min + num_negatives * 10 + max_positives
    else:
        range_max = range_min + num_negatives + max_positives
    if a.get("use_faiss"):
        extra = max_positives + (1 if rule.plus_one else 0)
        if rule.faiss_cap == "2048":
            range_max = min(range_max, 2048)
        elif range_max + extra > 2048 and _faiss_gpus() > 0:
            range_max = 2048 - extra
    return int(range_max)


def _cache_hash(model: Any, prompt: Any, prompt_name: Any, texts: list[str]) -> str:
    model_name = model.model_card_data.base_model or ""
    return hashlib.sha256(
        repr((model_name, prompt, prompt_name, texts)).encode(), usedforsecurity=False
    ).hexdigest()


def _embeddings(
    a: dict[str, Any], cache: Path, queries: list[str], corpus: list[str]
) -> tuple[npt.NDArray[Any], npt.NDArray[Any], str]:
    """The embeddings the function searched with: its cache files, else encoded again alike."""
    model = a["model"]
    q_file = cache / (
        "query_embeddings_"
        f"{_cache_hash(model, a['query_prompt'], a['query_prompt_name'], queries)}.npy"
    )
    c_file = cache / (
        "corpus_embeddings_"
        f"{_cache_hash(model, a['corpus_prompt'], a['corpus_prompt_name'], corpus)}.npy"
    )
    if q_file.is_file() and c_file.is_file():
        return np.load(q_file), np.load(c_file), "cache"
    c_emb = model.encode_document(
        corpus,
        batch_size=a["batch_size"],
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
        prompt_name=a["corpus_prompt_name"],
        prompt=a["corpus_prompt"],
    )
    q_emb = model.encode_query(
        queries,
        batch_size=a["batch_size"],
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
        prompt_name=a["query_prompt_name"],
        prompt=a["query_prompt"],
    )
    return np.asarray(q_emb), np.asarray(c_emb), "re-encoded"


def reconstruct(a: dict[str, Any], cache: Path, version: str | None = None) -> _Candidates:
    """Repeat ``mine_hard_negatives``' candidate search (sentence-transformers 5.x-6.x)."""
    import torch

    if version is None:
        import sentence_transformers

        version = str(sentence_transformers.__version__)
    rule = search_rule(version)

    dataset, model = a["dataset"], a["model"]
    anchor_col, positive_col = a["anchor_column_name"], a["positive_column_name"]
    all_queries = list(dataset[anchor_col])
    positives = list(dataset[positive_col])
    counts: dict[str, int] = {}
    for q in all_queries:
        counts[q] = counts.get(q, 0) + 1
    max_positives = max(counts.values())
    range_max = _derived_range_max(a, max_positives, rule)
    corpus_arg = a.get("corpus")
    corpus = list(
        dict.fromkeys(list(corpus_arg if corpus_arg is not None else positives) + positives)
    )
    corpus_idx = {t: i for i, t in enumerate(corpus)}
    queries = list(dict.fromkeys(all_queries))
    queries_idx = {q: i for i, q in enumerate(queries)}
    q_emb, c_emb, source = _embeddings(a, cache, queries, corpus)

    width = candidate_count(rule, range_max, max_positives, bool(a.get("use_faiss")))
    if a.get("use_faiss"):
        import faiss

        index: Any = faiss.IndexFlatIP(model.get_embedding_dimension())
        with contextlib.suppress(Exception):
            co = faiss.GpuMultipleClonerOptions()
            co.shard = True
            co.useFloat16 = True
            index = faiss.index_cpu_to_all_gpus(index, co=co)
        index.add(c_emb)
        s_list: list[Any] = []
        i_list: list[Any] = []
        for i in range(0, len(q_emb), a["faiss_batch_size"]):
            s, ix = index.search(q_emb[i : i + a["faiss_batch_size"]], k=width)
            s_list.append(s)
            i_list.append(ix)
        scores = torch.from_numpy(np.concatenate(s_list, axis=0))
        indices = torch.from_numpy(np.concatenate(i_list, axis=0))
    else:
        corpus_t = torch.as_tensor(c_emb)
        k = min(width, len(corpus))
        s_list, i_list = [], []
        for i in range(0, len(q_emb), a["faiss_batch_size"]):
            chunk = model.similarity(q_emb[i : i + a["faiss_batch_size"]], corpus_t).cpu()
            s, ix = torch.topk(chunk, k=k, dim=1)
            s_list.append(s)
            i_list.append(ix)
        scores = torch.cat(s_list, dim=0)
        indices = torch.cat(i_list, dim=0)

    pos_idx: list[list[int]] = [[] for _ in queries]
    for q, p in zip(all_queries, positives, strict=True):
        qi = queries_idx[q]
        if corpus_idx[p] not in pos_idx[qi]:
            pos_idx[qi].append(corpus_idx[p])
    rep = [qi for qi in range(len(queries)) for _ in pos_idx[qi]]
    flat_pos = [p for ps in pos_idx for p in ps]
    pos_scores = model.similarity_pairwise(q_emb[rep], c_emb[flat_pos]).cpu()

    ce: Any = a.get("cross_encoder")
    rescored = ce is not None and any(
        a.get(k) is not None
        for k in ("absolute_margin", "relative_margin", "max_score", "min_score")
    )
    if rescored:
        for qi in range(len(queries)):
            passages = [corpus[int(j)] for j in indices[qi]]
            scores[qi] = (
                ce.predict(
                    list(zip([queries[qi]] * len(passages), passages, strict=True)),
                    batch_size=a["batch_size"],
                    convert_to_tensor=True,
                )
                .cpu()
                .to(scores.dtype)
            )
        pair_queries = [queries[qi] for qi in rep]
        pair_docs = [corpus[p] for p in flat_pos]
        pos_scores = ce.predict(
            list(zip(pair_queries, pair_docs, strict=True)),
            batch_size=a["batch_size"],
            convert_to_tensor=True,
        ).cpu()

    ranked: list[dict[int, tuple[int, float]]] = []
    pos_score_lists: list[list[float]] = []
    offset = 0
    for qi in range(len(queries)):
        n = len(pos_idx[qi])
        pos_score_lists.append([float(x) for x in pos_scores[offset : offset + n].tolist()])
        offset += n
        row_idx = indices[qi].tolist()
        row_scores = scores[qi].tolist()
        positive_set = set(pos_idx[qi])
        if rule.excludes_query and queries[qi] in corpus_idx:
            # The query's own text is never a candidate (unless it is a positive kept as one).
            own = corpus_idx[queries[qi]]
            if not (a.get("include_positives") and own in positive_set):
                positive_set.add(own)
        cands = [
            (float(s), pos, int(j))
            for pos, (j, s) in enumerate(zip(row_idx, row_scores, strict=True))
            if j != -1 and int(j) not in positive_set
        ]
        # Descending score; equal scores keep the order the top-k search returned them in.
        cands.sort(key=lambda c: (-c[0], c[1]))
        ranked.append({j: (r, s) for r, (s, _, j) in enumerate(cands, start=1)})
    notes = []
    if rescored:
        notes.append(
            "ranks and scores are the cross-encoder's, among the bi-encoder's top "
            f"{width} candidates (the window the function rescored)"
        )
    return _Candidates(queries, corpus, pos_idx, pos_score_lists, ranked, source, notes)


def output_negatives(output: Any, a: dict[str, Any]) -> dict[str, list[tuple[str, int]]]:
    """Per anchor text: the negative texts of the function's output, with their output order."""
    anchor_col, positive_col = a["anchor_column_name"], a["positive_column_name"]
    fmt = a["output_format"]
    columns = list(output.column_names)
    out: dict[str, list[tuple[str, int]]] = {}
    seen: dict[str, set[str]] = {}

    def add(anchor: str, text: str) -> None:
        have = seen.setdefault(anchor, set())
        if text not in have:
            have.add(text)
            lst = out.setdefault(anchor, [])
            lst.append((text, len(lst) + 1))

    if fmt == "triplet":
        for anchor, neg in zip(output[anchor_col], output["negative"], strict=True):
            add(anchor, neg)
    elif fmt == "n-tuple":
        n_cols = sorted(
            (c for c in columns if c.startswith("negative_") and c[9:].isdigit()),
            key=lambda c: int(c[9:]),
        )
        for r, anchor in enumerate(output[anchor_col]):
            out.setdefault(anchor, [])
            for col in n_cols:
                add(anchor, output[col][r])
    elif fmt == "labeled-pair":
        labels = output["label"] if "label" in columns else None
        positives_of: dict[str, set[str]] = {}
        for q, p in zip(a["dataset"][anchor_col], a["dataset"][positive_col], strict=True):
            positives_of.setdefault(q, set()).add(p)
        for r, (anchor, doc) in enumerate(
            zip(output[anchor_col], output[positive_col], strict=True)
        ):
            out.setdefault(anchor, [])
            is_negative = labels[r] == 0 if labels is not None else doc not in positives_of[anchor]
            if is_negative:
                add(anchor, doc)
    else:  # labeled-list: [positive, negatives...]
        for anchor, docs in zip(output[anchor_col], output[positive_col], strict=True):
            out.setdefault(anchor, [])
            for doc in list(docs)[1:]:
                add(anchor, doc)
    return out
