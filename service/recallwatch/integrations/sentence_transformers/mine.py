"""``mine``: sentence-transformers' ``mine_hard_negatives`` plus the recallwatch mined set (ids,
exact ranks, scores) and ``mining.json``."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from recallwatch.integrations.sentence_transformers.files import (
    MINED_DIR,
    MINING_FILE,
    POOL_FILE,
    SCHEMA,
    atomic_write,
    is_main_process,
)
from recallwatch.integrations.sentence_transformers.identity import (
    bind,
    fingerprint,
    mining_arguments,
    model_identity,
    normalised,
    sha16,
    texts_sha256,
)
from recallwatch.integrations.sentence_transformers.ranks import output_negatives, reconstruct

log = logging.getLogger(__name__)
#: Candidates per query recorded in the pool beside the mined set (``mine(pool_depth=...)``).
DEFAULT_POOL_DEPTH = 100


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
            return f"text:{sha16(text)}"
        found = self.matcher.document(text)
        if found is None:
            self.unmatched.append(text)
            return f"text:{sha16(text)}"
        return str(found)

    def query(self, text: str) -> tuple[str, bool]:
        """The query id, and whether the line must carry the text (not in queries.jsonl)."""
        if self.matcher is not None:
            found = self.matcher.query(text)
            if found is not None:
                return str(found), False
        return f"anchor:{sha16(text)}", True


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

    atomic_write(
        directory / "corpus.jsonl",
        merged(directory / "corpus.jsonl", ((f"text:{sha16(t)}", t) for t in docs), True),
    )
    atomic_write(
        directory / "queries.jsonl",
        merged(directory / "queries.jsonl", ((f"anchor:{sha16(t)}", t) for t in queries), False),
    )


# -- mine -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """Drop tqdm progress bars written to stderr meanwhile; replay every other line afterwards.

    ``mine_hard_negatives`` encodes with ``show_progress_bar=True`` and wraps its search in
    ``trange`` whatever ``verbose`` says. tqdm starts each refresh with a carriage return, so a
    line holding one is a bar; warnings and log lines written meanwhile are kept.
    """
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stderr(buffer):
            yield
    finally:
        # split on newlines only: splitlines() would also split at the bars' carriage returns
        lines = buffer.getvalue().split("\n")
        kept = "\n".join(line for line in lines[:-1] if "\r" not in line)
        kept = kept + "\n" if kept else ""
        if lines[-1] and "\r" not in lines[-1]:
            kept += lines[-1]
        if kept:
            sys.stderr.write(kept)


def mine(
    dataset: Any,
    model: Any,
    *,
    run_dir: str | os.PathLike[str],
    id_corpus: str | os.PathLike[str] | None = None,
    metadata_name: str = MINING_FILE,
    pool_depth: int | None = DEFAULT_POOL_DEPTH,
    **kwargs: Any,
) -> Any:
    """``mine_hard_negatives(dataset, model, **kwargs)``, recorded for recallwatch.

    Returns the function's dataset unchanged. On the main process (rank 0) it also writes the
    mined set (recallwatch JSONL, exact ranks, scores) and ``<run_dir>/<metadata_name>``; see the
    module documentation for what they hold, how ranks are reconstructed and how texts get ids.
    ``id_corpus`` is a BEIR directory whose ids the mined set should use. ``pool_depth``
    (recallwatch's, not passed on): the candidate pool recorded beside the mined set, every
    query's ``pool_depth`` best non-positive candidates with ranks and scores, from which the
    FN audit prescribes a re-mining (``mining.remine``); None or 0 records none.
    """
    from sentence_transformers.util import mine_hard_negatives

    args = bind(dataset, model, kwargs)
    main = is_main_process()
    given_cache = args.get("cache_folder")
    tmp_cache = None
    call_kwargs = dict(kwargs)
    if main and not given_cache:
        tmp_cache = tempfile.mkdtemp(prefix="recallwatch-mine-")
        call_kwargs["cache_folder"] = tmp_cache
    try:
        quiet = _no_progress_bars() if not args.get("verbose", True) else contextlib.nullcontext()
        with quiet:
            output = mine_hard_negatives(dataset, model, **call_kwargs)
        if main:
            cache = Path(given_cache or tmp_cache or ".")
            _record(output, args, cache, Path(run_dir), id_corpus, metadata_name, pool_depth)
    finally:
        if tmp_cache is not None:
            shutil.rmtree(tmp_cache, ignore_errors=True)
    return output


def _pool_lines(a: dict[str, Any], cache: Path, ids: _Ids, depth: int) -> list[dict[str, Any]]:
    """Every query's ``depth`` best non-positive candidates (a recallwatch mined set)."""
    window = max(int(depth), int(a.get("range_max") or 0))
    cands = reconstruct({**a, "range_max": window}, cache)
    lines: list[dict[str, Any]] = []
    for qi, query in enumerate(cands.queries):
        qid, with_text = ids.query(query)
        pos_ids: list[str] = []
        pos_scores: list[float] = []
        for p, s in zip(cands.positives[qi], cands.positive_scores[qi], strict=True):
            pid = ids.doc(cands.corpus[p])
            if pid not in pos_ids:
                pos_ids.append(pid)
                pos_scores.append(s)
        seen = set(pos_ids)
        negatives: list[dict[str, Any]] = []
        for ci, (rank, score) in sorted(cands.ranked[qi].items(), key=lambda kv: kv[1][0]):
            did = ids.doc(cands.corpus[ci])
            if rank > depth or did in seen:
                continue
            seen.add(did)
            negatives.append({"doc_id": did, "rank": rank, "score": score})
        line: dict[str, Any] = {"query_id": qid}
        if with_text:
            line["query"] = query
        line.update(positive_ids=pos_ids, positive_scores=pos_scores, negatives=negatives)
        lines.append(line)
    return lines


def _record(
    output: Any,
    args: dict[str, Any],
    cache: Path,
    run_dir: Path,
    id_corpus: str | os.PathLike[str] | None,
    metadata_name: str,
    pool_depth: int | None = None,
) -> None:
    import sentence_transformers

    a = normalised(args)
    cands = reconstruct(a, cache)
    id_dir = None if id_corpus is None else Path(id_corpus).resolve()
    ids = _Ids(id_dir)
    chosen = output_negatives(output, a)
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
        "teacher": model_identity(a["model"]),
        "cross_encoder": (
            None if a.get("cross_encoder") is None else model_identity(a["cross_encoder"])
        ),
        "dataset": {
            "rows": len(dataset),
            "columns": list(dataset.column_names),
            "sha256": texts_sha256(
                [*dataset[a["anchor_column_name"]], "\x00", *dataset[a["positive_column_name"]]]
            ),
        },
        "corpus": (
            None
            if corpus_arg is None
            else {"documents": len(corpus_arg), "sha256": texts_sha256(corpus_arg)}
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
    atomic_write(
        run_dir / mined_rel,
        "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines),
    )
    if pool_depth:
        pool_rel = f"{MINED_DIR}/{key}/{POOL_FILE}"
        pool = _pool_lines(a, cache, ids, pool_depth)
        atomic_write(
            run_dir / pool_rel,
            "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in pool),
        )
        metadata["pool"] = {"path": pool_rel, "depth": pool_depth}
    atomic_write(run_dir / metadata_name, json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    log.info(
        "mined set recorded: %s (%d queries, %d negatives), fingerprint %s",
        run_dir / mined_rel,
        len(lines),
        sum(len(line["negatives"]) for line in lines),
        fingerprint(metadata)[:12],
    )
