"""sentence-transformers training jobs → recallwatch, with no glue code (needs the ``st`` extra).

Two pieces, a few lines in a training script (docs/integrations.md has the whole story)::

    from recallwatch.integrations.sentence_transformers import RecallwatchCallback, mine

    train = mine(pairs, teacher, run_dir=out, corpus=corpus_texts, id_corpus="data/scifact",
                 range_min=10, relative_margin=0.05, num_negatives=5)
    trainer = SentenceTransformerTrainer(..., args=SentenceTransformerTrainingArguments(out, ...),
                                         callbacks=[RecallwatchCallback(heldout="data/heldout")])

``mine``
    Calls sentence-transformers' own ``mine_hard_negatives`` with the same arguments and returns
    its dataset unchanged. It also writes, under ``run_dir``:

    - the mined set as recallwatch JSONL (``recallwatch-mining/<key>/mined.jsonl``): per query its
      positives with their scores and each negative with its **exact rank** among the candidates
      and its score (what ``recallwatch fn-rate`` needs for margin recommendations);
    - ``mining.json``: every argument that changes what is mined, the teacher's name or path and
      a SHA-256 of its weights (and the cross-encoder's), a fingerprint of the dataset and of the
      corpus, the sentence-transformers version, and ``mined_set`` (the JSONL, relative to
      ``run_dir``). It holds nothing else (no time, no host), so the same call gives the same
      fingerprint and any changed argument changes it.

``RecallwatchCallback``
    A transformers ``TrainerCallback``: on each save it copies the active ``mining.json`` into the
    checkpoint, optionally encodes a held-out set into ``<checkpoint>/eval_embeddings/`` (the
    daemon's ``precomputed`` encoder), and writes the ready marker ``recallwatch.ready`` last.

How ranks are reconstructed (exactly)
    ``mine_hard_negatives`` returns texts, not ranks. ``mine`` passes a ``cache_folder`` (a
    temporary one unless you gave yours; it changes nothing that is mined) so that the function
    saves the very embeddings it searched with, then repeats the function's candidate search on
    them: the same similarity function, the same chunks and top-k window (``range_max`` plus the
    largest number of positives of a query, derived the way the function derives it), the same
    cross-encoder rescoring when one is used. A negative's ``rank`` is its position among the
    query's *non-positive* candidates ordered by that score (the cross-encoder's score when it
    rescored them), before ``range_min``, the margins, ``max_score`` and ``min_score`` are
    applied: rank 1 is the hardest candidate, and ``range_min=10`` with no other filter mines
    ranks 11, 12, ... . Each negative is located by its text (the function de-duplicates texts,
    so the text names one candidate), so ranks are exact for ``sampling_strategy="random"`` too.
    Ties (equal scores) are ordered as ``torch.topk`` returned them. Where the embeddings cannot be
    recovered from the cache (a sentence-transformers version that names the files differently),
    they are encoded again with the same calls; ``mining.json``'s ``ranks`` says which, and a
    negative that is not among the reconstructed candidates makes the ranks ``approximate`` (its
    position in the function's output is used), as ``ranks.note`` then says.

Ids
    recallwatch refers to documents by id. With ``id_corpus=<BEIR dir>`` texts are mapped to that
    directory's ids (exact match after whitespace normalisation, against ``title + " " + text``
    and ``text``, as ``recallwatch fn-rate`` matches) and anchors to its ``queries.jsonl`` (an
    anchor that is not there gets an ``anchor:<sha256-16>`` id and its text in the line). Point
    the daemon's ``false_negatives.corpus`` at the same directory. Without ``id_corpus``, ids are
    derived from the exact text (``text:`` / ``anchor:`` + the first 16 hex digits of its SHA-256)
    and the texts are written as a BEIR directory, ``<run_dir>/recallwatch-mining/corpus``, that
    ``false_negatives.corpus`` can point at (it accumulates the corpora of every mining of the
    run, so one config entry serves them all).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from transformers import TrainerCallback

__all__ = [
    "MINED_DIR",
    "MINING_FILE",
    "READY_MARKER",
    "RecallwatchCallback",
    "canonical_json",
    "fingerprint",
    "mine",
    "mining_arguments",
    "weights_sha256",
]

log = logging.getLogger(__name__)

MINING_FILE = "mining.json"
READY_MARKER = "recallwatch.ready"
MINED_DIR = "recallwatch-mining"
SCHEMA = "recallwatch-mining/1"

#: ``mine_hard_negatives`` arguments that do not change what is mined (speed, logging, caching).
NOT_MINING = frozenset(
    {"batch_size", "faiss_batch_size", "use_multi_process", "verbose", "cache_folder"}
)
#: Model arguments, recorded as their identity (name or path and weights hash).
MODEL_ARGS = frozenset({"dataset", "model", "cross_encoder", "corpus"})


# -- canonical JSON and hashes ---------------------------------------------------------------


def canonical_json(value: Any) -> str:
    """Canonical JSON (sorted keys, no whitespace), as the daemon fingerprints mining metadata."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(value: Any) -> str:
    """SHA-256 (hex) of the canonical JSON: the daemon's mining fingerprint of ``mining.json``."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def weights_sha256(model: Any) -> str:
    """SHA-256 of a torch module's state dict: every tensor's name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(name.encode("utf-8"))
        digest.update(str(t.dtype).encode("ascii"))
        digest.update(str(tuple(t.shape)).encode("ascii"))
        digest.update(t.reshape(-1).view(_uint8()).numpy().tobytes())
    return digest.hexdigest()


def _uint8() -> Any:
    import torch

    return torch.uint8


def _texts_sha256(texts: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for t in texts:
        digest.update(json.dumps(t, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def _sha16(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _atomic_write(path: Path, data: str | bytes) -> None:
    """Write a file so that readers see the old content or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _is_main_process() -> bool:
    """Rank 0 of a distributed job (or a job that is not distributed)."""
    with contextlib.suppress(Exception):
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return int(dist.get_rank()) == 0
    return os.environ.get("RANK", "0") == "0"


# -- the model identity and the arguments ----------------------------------------------------


def _name_or_path(model: Any) -> str | None:
    """The name or path a sentence-transformers model (or CrossEncoder) was loaded from."""
    candidates: list[Any] = []
    with contextlib.suppress(Exception):
        candidates.append(model[0].auto_model.config._name_or_path)
    with contextlib.suppress(Exception):
        candidates.append(model.model.config._name_or_path)
    with contextlib.suppress(Exception):
        candidates.append(model.config._name_or_path)
    with contextlib.suppress(Exception):
        candidates.append(model.model_card_data.base_model)
    for c in candidates:
        if isinstance(c, str) and c:
            return c
    return None


def _model_identity(model: Any) -> dict[str, Any]:
    ident: dict[str, Any] = {
        "name_or_path": _name_or_path(model),
        "class": type(model).__name__,
        "weights_sha256": weights_sha256(model),
    }
    # What else changes the embeddings: the module stack and its settings, the similarity.
    with contextlib.suppress(Exception):
        ident["modules"] = [repr(m) for m in model]
    for attr in ("max_seq_length", "similarity_fn_name", "prompts", "default_prompt_name"):
        with contextlib.suppress(Exception):
            value = getattr(model, attr)
            if value is None or isinstance(value, str | int | float | bool | dict):
                ident[attr] = value
    return ident


def _bind(dataset: Any, model: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    from sentence_transformers.util import mine_hard_negatives

    sig = inspect.signature(mine_hard_negatives)
    bound = sig.bind(dataset, model, **kwargs)  # TypeError for an unknown argument
    bound.apply_defaults()
    return dict(bound.arguments)


def _normalised(args: dict[str, Any]) -> dict[str, Any]:
    """The arguments as the function resolves its deprecated spellings."""
    a = dict(args)
    if a.get("as_triplets") is not None:
        a["output_format"] = "triplet" if a["as_triplets"] else "n-tuple"
    if a.get("include_positives"):
        a["output_format"] = "n-tuple"
    if a.get("output_format") == "n-tuple-scores":
        a["output_format"] = "n-tuple"
        a["output_scores"] = True
    if a.get("margin") is not None:
        a["absolute_margin"] = a["margin"]
    a.pop("as_triplets", None)
    a.pop("margin", None)
    columns = list(a["dataset"].column_names)
    if not a.get("anchor_column_name") or a["anchor_column_name"] not in columns:
        a["anchor_column_name"] = columns[0]
    if not a.get("positive_column_name") or a["positive_column_name"] not in columns:
        a["positive_column_name"] = columns[1] if len(columns) > 1 else None
    return a


def mining_arguments(args: dict[str, Any]) -> dict[str, Any]:
    """The arguments that change what is mined (plain values), from ``_bind``'s result."""
    a = _normalised(args)
    out: dict[str, Any] = {}
    for key, value in sorted(a.items()):
        if key in NOT_MINING or key in MODEL_ARGS:
            continue
        out[key] = value
    return out


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


def _derived_range_max(a: dict[str, Any], max_positives: int) -> int:
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
    if a.get("use_faiss") and range_max + max_positives > 2048:
        with contextlib.suppress(Exception):
            import faiss

            if getattr(faiss, "get_num_gpus", lambda: 0)() > 0:
                range_max = 2048 - max_positives
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


def _reconstruct(a: dict[str, Any], cache: Path) -> _Candidates:
    """Repeat ``mine_hard_negatives``' candidate search (sentence-transformers 5.x-6.x)."""
    import torch

    dataset, model = a["dataset"], a["model"]
    anchor_col, positive_col = a["anchor_column_name"], a["positive_column_name"]
    all_queries = list(dataset[anchor_col])
    positives = list(dataset[positive_col])
    counts: dict[str, int] = {}
    for q in all_queries:
        counts[q] = counts.get(q, 0) + 1
    max_positives = max(counts.values())
    range_max = _derived_range_max(a, max_positives)
    corpus_arg = a.get("corpus")
    corpus = list(
        dict.fromkeys(list(corpus_arg if corpus_arg is not None else positives) + positives)
    )
    corpus_idx = {t: i for i, t in enumerate(corpus)}
    queries = list(dict.fromkeys(all_queries))
    queries_idx = {q: i for i, q in enumerate(queries)}
    q_emb, c_emb, source = _embeddings(a, cache, queries, corpus)

    width = range_max + max_positives
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


def _output_negatives(output: Any, a: dict[str, Any]) -> dict[str, list[tuple[str, int]]]:
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


# -- ids ------------------------------------------------------------------------------------


class _Ids:
    """Texts to recallwatch ids: a BEIR directory's ids, or ids derived from the text."""

    def __init__(self, id_corpus: Path | None) -> None:
        self.id_corpus = id_corpus
        self.matcher: Any = None
        if id_corpus is not None:
            from recallwatch.mining.corpus import TextMatcher, load_corpus

            self.matcher = TextMatcher(load_corpus(id_corpus))
        self.unmatched: list[str] = []

    def doc(self, text: str) -> str:
        if self.matcher is None:
            return f"text:{_sha16(text)}"
        found = self.matcher.document(text)
        if found is None:
            self.unmatched.append(text)
            return f"text:{_sha16(text)}"
        return str(found)

    def query(self, text: str) -> tuple[str, bool]:
        """The query id, and whether the line must carry the text (not in queries.jsonl)."""
        if self.matcher is not None:
            found = self.matcher.query(text)
            if found is not None:
                return str(found), False
        return f"anchor:{_sha16(text)}", True


def _write_text_corpus(directory: Path, docs: Iterable[str], queries: Iterable[str]) -> None:
    """Add texts (with text-derived ids) to the run's BEIR directory, atomically per file."""

    def merged(path: Path, items: Iterable[tuple[str, str]], with_title: bool) -> str:
        lines: dict[str, str] = {}
        if path.is_file():
            for raw in path.read_text(encoding="utf-8").splitlines():
                if raw.strip():
                    lines[json.loads(raw)["_id"]] = raw
        for ident, text in items:
            if ident not in lines:
                obj = (
                    {"_id": ident, "title": "", "text": text}
                    if with_title
                    else {
                        "_id": ident,
                        "text": text,
                    }
                )
                lines[ident] = json.dumps(obj, ensure_ascii=False)
        return "".join(line + "\n" for line in lines.values())

    _atomic_write(
        directory / "corpus.jsonl",
        merged(directory / "corpus.jsonl", ((f"text:{_sha16(t)}", t) for t in docs), True),
    )
    _atomic_write(
        directory / "queries.jsonl",
        merged(directory / "queries.jsonl", ((f"anchor:{_sha16(t)}", t) for t in queries), False),
    )


# -- mine -----------------------------------------------------------------------------------


def mine(
    dataset: Any,
    model: Any,
    *,
    run_dir: str | os.PathLike[str],
    id_corpus: str | os.PathLike[str] | None = None,
    metadata_name: str = MINING_FILE,
    **kwargs: Any,
) -> Any:
    """``mine_hard_negatives(dataset, model, **kwargs)``, recorded for recallwatch.

    Returns the function's dataset unchanged. On the main process (rank 0) it also writes the
    mined set (recallwatch JSONL, exact ranks, scores) and ``<run_dir>/<metadata_name>``; see the
    module documentation for what they hold, how ranks are reconstructed and how texts get ids.
    ``id_corpus`` is a BEIR directory whose ids the mined set should use.
    """
    from sentence_transformers.util import mine_hard_negatives

    args = _bind(dataset, model, kwargs)
    main = _is_main_process()
    given_cache = args.get("cache_folder")
    tmp_cache = None
    call_kwargs = dict(kwargs)
    if main and not given_cache:
        tmp_cache = tempfile.mkdtemp(prefix="recallwatch-mine-")
        call_kwargs["cache_folder"] = tmp_cache
    try:
        output = mine_hard_negatives(dataset, model, **call_kwargs)
        if main:
            cache = Path(given_cache or tmp_cache or ".")
            _record(output, args, cache, Path(run_dir), id_corpus, metadata_name)
    finally:
        if tmp_cache is not None:
            shutil.rmtree(tmp_cache, ignore_errors=True)
    return output


def _record(
    output: Any,
    args: dict[str, Any],
    cache: Path,
    run_dir: Path,
    id_corpus: str | os.PathLike[str] | None,
    metadata_name: str,
) -> None:
    import sentence_transformers

    a = _normalised(args)
    cands = _reconstruct(a, cache)
    id_dir = None if id_corpus is None else Path(id_corpus).resolve()
    ids = _Ids(id_dir)
    chosen = _output_negatives(output, a)
    q_index = {q: i for i, q in enumerate(cands.queries)}
    c_index = {t: i for i, t in enumerate(cands.corpus)}
    exact = True
    notes = list(cands.notes)
    lines: list[dict[str, Any]] = []
    used_queries: set[str] = set()
    for anchor, negs in chosen.items():
        qi = q_index[anchor]
        used_queries.add(anchor)
        qid, with_text = ids.query(anchor)
        pos_ids: list[str] = []
        pos_scores: list[float] = []
        for p, s in zip(cands.positives[qi], cands.positive_scores[qi], strict=True):
            pid = ids.doc(cands.corpus[p])
            if pid not in pos_ids:
                pos_ids.append(pid)
                pos_scores.append(s)
        negatives: list[dict[str, Any]] = []
        seen = set(pos_ids)
        for text, position in negs:
            ci = c_index[text]
            if ci in cands.positives[qi]:
                continue  # include_positives: a positive is not a negative
            did = ids.doc(text)
            if did in seen:  # two texts with one id (id_corpus matching): keep the first role
                continue
            seen.add(did)
            found = cands.ranked[qi].get(ci)
            if found is None:
                exact = False
                negatives.append({"doc_id": did, "rank": position + int(a["range_min"] or 0)})
                continue
            rank, score = found
            negatives.append({"doc_id": did, "rank": rank, "score": score})
        negatives.sort(key=lambda n: int(n["rank"]))
        line: dict[str, Any] = {"query_id": qid}
        if with_text:
            line["query"] = anchor
        line.update(positive_ids=pos_ids, positive_scores=pos_scores, negatives=negatives)
        lines.append(line)
    if ids.unmatched:
        raise ValueError(
            f"{len(ids.unmatched)} mined text(s) match no document of {id_dir} after whitespace "
            f"normalisation, first: {ids.unmatched[0][:80]!r}; is id_corpus the corpus you mine "
            "from?"
        )
    if not exact:
        notes.append(
            "some negatives were not among the reconstructed candidates: their rank is their "
            "position in the output plus range_min (approximate)"
        )

    corpus_arg = args.get("corpus")
    dataset = a["dataset"]
    metadata: dict[str, Any] = {
        "schema": SCHEMA,
        "generator": "recallwatch.integrations.sentence_transformers.mine",
        "sentence_transformers_version": sentence_transformers.__version__,
        "function": "sentence_transformers.util.mine_hard_negatives",
        "arguments": mining_arguments(args),
        "teacher": _model_identity(a["model"]),
        "cross_encoder": (
            None if a.get("cross_encoder") is None else _model_identity(a["cross_encoder"])
        ),
        "dataset": {
            "rows": len(dataset),
            "columns": list(dataset.column_names),
            "sha256": _texts_sha256(
                [*dataset[a["anchor_column_name"]], "\x00", *dataset[a["positive_column_name"]]]
            ),
        },
        "corpus": (
            None
            if corpus_arg is None
            else {"documents": len(corpus_arg), "sha256": _texts_sha256(corpus_arg)}
        ),
        "ids": (
            {"documents": "id_corpus", "corpus_dir": str(id_dir)}
            if id_dir is not None
            else {
                "documents": "text-sha256",
                "corpus_dir": f"{MINED_DIR}/corpus",
            }
        ),
        "ranks": {
            "exact": exact,
            "embeddings": cands.embeddings,
            "definition": "position among the query's non-positive candidates by the miner's "
            "score, before range_min, margins, max_score and min_score (1 = hardest)",
            "note": "; ".join(notes) or None,
        },
        "mined_set_format": "recallwatch",
    }
    key = fingerprint(metadata)[:16]
    mined_rel = f"{MINED_DIR}/{key}/mined.jsonl"
    metadata["mined_set"] = mined_rel
    if id_dir is None:
        _write_text_corpus(
            run_dir / MINED_DIR / "corpus",
            cands.corpus,
            [q for q in cands.queries if q in used_queries],
        )
    _atomic_write(
        run_dir / mined_rel,
        "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines),
    )
    _atomic_write(run_dir / metadata_name, json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    log.info(
        "mined set recorded: %s (%d queries, %d negatives), fingerprint %s",
        run_dir / mined_rel,
        len(lines),
        sum(len(line["negatives"]) for line in lines),
        fingerprint(metadata)[:12],
    )


# -- the callback ---------------------------------------------------------------------------

EncodeFn = Callable[[Any, Sequence[str], str], Any]


class RecallwatchCallback(TrainerCallback):
    """A transformers ``TrainerCallback`` that makes each checkpoint complete for recallwatch.

    On each save (``on_save``, which transformers calls after the checkpoint's model, optimizer
    and ``trainer_state.json`` are written and old checkpoints rotated away), on the main process
    only (``state.is_world_process_zero``), it

    1. copies the active ``<run_dir>/mining.json`` (the one ``mine`` wrote last) into the
       checkpoint, so a re-mining mid-run is attributed to exactly the checkpoints saved after it;
    2. with ``heldout``, encodes that BEIR directory's corpus and the queries of ``split`` with the
       model being trained, on the device it trains on, into ``<checkpoint>/eval_embeddings/``
       (``queries.npy``, ``corpus.npy``, ``query_ids.txt``, ``corpus_ids.txt``: the daemon's
       ``precomputed`` encoder), written in a hidden directory and renamed into place;
    3. writes ``ready_marker`` (default ``recallwatch.ready``) last.

    Configure the run with ``ready_marker: recallwatch.ready`` so the daemon waits for all of it.
    ``trainer_state.json`` (the daemon's default marker) exists *before* ``on_save`` runs; with it
    the daemon relies on ``settle_seconds`` alone, which must then exceed the time this callback
    takes (encoding the held-out set). ``ready_marker=None`` writes no marker.

    The embeddings match the daemon's ``st`` encoder on the saved checkpoint: the same texts
    (``title + " " + text``), ``model.encode`` with the model's ``query``/``document`` prompts
    (or ``query_prompt``/``document_prompt``), ``normalize`` as configured there (default off).
    For a model without ``encode`` (a plain ``Trainer``), pass ``encode_fn(model, texts, kind)``
    returning a float matrix; ``kind`` is ``"query"`` or ``"document"``.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str] | None = None,
        *,
        mining_metadata: str = MINING_FILE,
        heldout: str | os.PathLike[str] | None = None,
        split: str = "test",
        batch_size: int = 32,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        normalize: bool = False,
        encode_fn: EncodeFn | None = None,
        ready_marker: str | None = READY_MARKER,
    ) -> None:
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.mining_metadata = mining_metadata
        self.heldout = None if heldout is None else Path(heldout)
        self.split = split
        self.batch_size = batch_size
        self.query_prompt = query_prompt
        self.document_prompt = document_prompt
        self.normalize = normalize
        self.encode_fn = encode_fn
        self.ready_marker = ready_marker
        self._texts: tuple[list[str], list[str], list[str], list[str]] | None = None

    def _heldout_texts(self) -> tuple[list[str], list[str], list[str], list[str]]:
        if self._texts is None:
            from recallwatch.evaluation.heldout import load_heldout

            assert self.heldout is not None
            h = load_heldout(self.heldout, self.split)
            self._texts = (
                list(h.query_ids),
                list(h.query_texts),
                list(h.corpus_ids),
                list(h.corpus_texts),
            )
        return self._texts

    def _encode(self, model: Any, texts: Sequence[str], kind: str) -> npt.NDArray[np.float32]:
        if self.encode_fn is not None:
            return np.asarray(self.encode_fn(model, texts, kind), dtype=np.float32)
        if not hasattr(model, "encode"):
            raise TypeError(
                f"{type(model).__name__} has no encode(): pass encode_fn=... to RecallwatchCallback"
            )
        prompts: dict[str, str] = dict(getattr(model, "prompts", {}) or {})
        given = self.query_prompt if kind == "query" else self.document_prompt
        prompt = given if given is not None else prompts.get(kind)
        out = model.encode(
            list(texts),
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
            prompt=prompt or None,
        )
        return np.asarray(out, dtype=np.float32)

    def write_embeddings(self, model: Any, checkpoint: Path) -> Path:
        """Encode the held-out set with ``model`` into ``<checkpoint>/eval_embeddings``."""
        qids, qtexts, dids, dtexts = self._heldout_texts()
        was_training = bool(getattr(model, "training", False))
        try:
            import torch

            with torch.no_grad():
                queries = self._encode(model, qtexts, "query")
                corpus = self._encode(model, dtexts, "document")
        finally:
            if was_training and hasattr(model, "train"):
                model.train()
        final = checkpoint / "eval_embeddings"
        tmp = Path(tempfile.mkdtemp(prefix=".eval_embeddings.", dir=checkpoint))
        try:
            np.save(tmp / "queries.npy", np.ascontiguousarray(queries, dtype=np.float32))
            np.save(tmp / "corpus.npy", np.ascontiguousarray(corpus, dtype=np.float32))
            (tmp / "query_ids.txt").write_text("\n".join(qids) + "\n", encoding="utf-8")
            (tmp / "corpus_ids.txt").write_text("\n".join(dids) + "\n", encoding="utf-8")
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def finish_checkpoint(self, checkpoint: Path, run_dir: Path, model: Any = None) -> None:
        """Do for one checkpoint directory what ``on_save`` does (also usable by hand)."""
        marker = None if self.ready_marker is None else checkpoint / self.ready_marker
        if marker is not None:
            with contextlib.suppress(FileNotFoundError):
                marker.unlink()  # a checkpoint written again: not ready until finished again
        source = run_dir / self.mining_metadata
        mining_fp = None
        if source.is_file():
            content = source.read_bytes()
            _atomic_write(checkpoint / self.mining_metadata, content)
            with contextlib.suppress(ValueError):
                mining_fp = fingerprint(json.loads(content))
        else:
            log.warning(
                "no %s in %s: checkpoint %s carries no mining metadata",
                self.mining_metadata,
                run_dir,
                checkpoint.name,
            )
        embeddings = None
        if self.heldout is not None:
            if model is None:
                raise ValueError("encoding the held-out set needs the model")
            embeddings = self.write_embeddings(model, checkpoint)
        if marker is not None:
            _atomic_write(
                marker,
                json.dumps(
                    {
                        "mining_fingerprint": mining_fp,
                        "eval_embeddings": None if embeddings is None else embeddings.name,
                    },
                    sort_keys=True,
                )
                + "\n",
            )

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """Finish the checkpoint just saved (main process only)."""
        if not state.is_world_process_zero:
            return control
        output_dir = Path(args.output_dir)
        checkpoint = output_dir / f"checkpoint-{state.global_step}"
        if not checkpoint.is_dir():
            log.warning("checkpoint %s not found after save; nothing written", checkpoint)
            return control
        self.finish_checkpoint(checkpoint, self.run_dir or output_dir, kwargs.get("model"))
        return control
