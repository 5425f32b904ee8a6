"""Importers and writers for sentence-transformers ``mine_hard_negatives`` outputs.

The function's ``output_format`` (and ``output_scores``) give these column layouts, the anchor and
positive columns keeping the names of the input dataset (its first two columns by default):

==================  ==========================================================================
triplet             anchor, positive, ``negative`` [, ``scores`` = [pos, neg]]
n-tuple             anchor, positive, ``negative_1`` .. ``negative_n`` [, ``scores`` = [pos, n1..]]
n-tuple-scores      n-tuple written with ``output_scores=True`` (the ``scores`` column)
labeled-pair        anchor, document, ``label`` (1 positive, 0 negative) or ``score`` (similarity)
labeled-list        anchor, [documents], ``labels`` ([1, 0, ...]) or ``scores`` ([pos, n1, ...])
==================  ==========================================================================

A query with several positives is repeated once per positive with the same negatives; they are
merged back into one query. Files are JSON lines (``Dataset.to_json``), CSV (``Dataset.to_csv``;
list cells as JSON or Python literals) or parquet (``Dataset.to_parquet``; needs pyarrow), read and
written by ``tables``.

Texts are mapped to corpus ids (see ``corpus.TextMatcher``); texts that match nothing are counted
and reported, and are an error unless explicitly allowed. The mining rank of a negative is its
position among the query's negatives (1-based) plus ``rank_offset`` (the ``range_min`` used when
mining; with ``sampling_strategy="random"`` positions are only an approximation of ranks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recallwatch.errors import InputError
from recallwatch.mining.corpus import Corpus, TextMatcher, normalize_text, text_id
from recallwatch.mining.mined import ImportReport, MinedQuery, MinedSet, Negative
from recallwatch.mining.tables import (
    Table,
    cell_label,
    cell_list,
    cell_number,
    cell_text,
    read_table,
    table_kind,
    write_rows,
)

__all__ = [
    "ST_FORMATS",
    "ImportOptions",
    "STSource",
    "WriteSummary",
    "detect_format",
    "read_st_mined",
    "write_st_mined",
]

ST_FORMATS = ("triplet", "n-tuple", "n-tuple-scores", "labeled-pair", "labeled-list")
_RESERVED = {"negative", "scores", "score", "label", "labels", "weight", "weights"}
_MAX_EXAMPLES = 5

#: (row index, slot): slot is None for a whole row, the negative's number for n-tuple columns,
#: the list index for labeled-list.
Location = tuple[int, int | None]


def detect_format(columns: list[str]) -> str:
    """Guess the sentence-transformers output format from the column names."""
    cols = set(columns)
    if "negative" in cols:
        return "triplet"
    if "negative_1" in cols:
        return "n-tuple-scores" if "scores" in cols else "n-tuple"
    if "labels" in cols or ("scores" in cols and len(columns) == 3):
        return "labeled-list"
    if "label" in cols or "score" in cols:
        return "labeled-pair"
    raise InputError(
        f"cannot tell the mined-set format from the columns {columns}; expected "
        "sentence-transformers output (a 'negative', 'negative_1', 'label(s)' or 'score(s)' "
        "column) or recallwatch JSONL (query_id, positive_ids, negatives)"
    )


@dataclass
class _Group:
    anchor: str
    line: int
    positives: dict[str, tuple[str, float | None, int]] = field(default_factory=dict)
    #: normalised text -> (text, position, score, line, locations)
    negatives: dict[str, tuple[str, int, float | None, int, list[Location]]] = field(
        default_factory=dict
    )

    def add_positive(self, text: str, score: float | None, line: int) -> None:
        key = normalize_text(text)
        if key not in self.positives or (score is not None and self.positives[key][1] is None):
            self.positives[key] = (text, score, line)

    def add_negative(
        self, text: str, position: int, score: float | None, line: int, loc: Location
    ) -> None:
        key = normalize_text(text)
        if key in self.negatives:
            self.negatives[key][4].append(loc)
            return
        self.negatives[key] = (text, position, score, line, [loc])


@dataclass
class STSource:
    """What a writer needs to write an imported set back in its own format."""

    table: Table
    format: str
    anchor_column: str
    positive_column: str
    #: (query index, negative index) -> every place in the table the negative appears.
    locations: dict[tuple[int, int], list[Location]]


def _columns(table: Table, anchor: str | None, positive: str | None) -> tuple[str, str]:
    data = [c for c in table.columns if c not in _RESERVED and not c.startswith("negative_")]
    a = anchor or (data[0] if data else None)
    p = positive or (data[1] if len(data) > 1 else None)
    for name, col in (("anchor", a), ("positive", p)):
        if col is None or col not in table.columns:
            raise InputError(
                f"no {name} column {col!r}; columns are {table.columns}", path=table.path
            )
    assert a is not None and p is not None
    return a, p


def _group_rows(
    table: Table,
    fmt: str,
    anchor: str,
    positive: str,
    positives_per_query: int,
    report: ImportReport,
) -> list[_Group]:
    groups: dict[str, _Group] = {}
    # Per (anchor, positive) pair, how many triplet rows were seen: the negative's position.
    triplet_seen: dict[tuple[str, str], int] = {}
    pair_rows: dict[str, int] = {}

    def group(a: str, line: int) -> _Group:
        key = normalize_text(a)
        if key not in groups:
            groups[key] = _Group(a, line)
        return groups[key]

    n_cols = sorted(
        (c for c in table.columns if c.startswith("negative_") and c[9:].isdigit()),
        key=lambda c: int(c[9:]),
    )
    if fmt.startswith("n-tuple") and not n_cols:
        raise InputError("n-tuple format needs negative_1 .. negative_n columns", path=table.path)
    if fmt == "labeled-pair" and "label" not in table.columns:
        report.assumptions.append(
            f"labeled-pair with scores carries no labels: the first {positives_per_query} row(s) "
            "of each query are taken as its positives (sentence-transformers writes positives "
            "first)"
        )
    for r, row in enumerate(table.rows):
        line = table.lines[r]
        a = cell_text(row.get(anchor), table, line, anchor)
        g = group(a, line)
        if fmt == "triplet":
            p = cell_text(row.get(positive), table, line, positive)
            n = cell_text(row.get("negative"), table, line, "negative")
            pos_s = neg_s = None
            if row.get("scores") is not None:
                s = cell_list(row["scores"], table, line, "scores")
                if len(s) != 2:
                    raise InputError(
                        "expected scores [positive, negative]",
                        path=table.path,
                        line=line,
                        field="scores",
                    )
                pos_s = cell_number(s[0], table, line, "scores")
                neg_s = cell_number(s[1], table, line, "scores")
            k = (normalize_text(a), normalize_text(p))
            triplet_seen[k] = triplet_seen.get(k, 0) + 1
            g.add_positive(p, pos_s, line)
            g.add_negative(n, triplet_seen[k], neg_s, line, (r, None))
        elif fmt.startswith("n-tuple"):
            p = cell_text(row.get(positive), table, line, positive)
            scores: list[Any] | None = None
            if row.get("scores") is not None:
                scores = cell_list(row["scores"], table, line, "scores")
                if len(scores) != len(n_cols) + 1:
                    raise InputError(
                        f"expected {len(n_cols) + 1} scores (positive, then each negative)",
                        path=table.path,
                        line=line,
                        field="scores",
                    )
            elif fmt == "n-tuple-scores":
                raise InputError(
                    "missing the scores column", path=table.path, line=line, field="scores"
                )
            g.add_positive(
                p, None if scores is None else cell_number(scores[0], table, line, "scores"), line
            )
            for i, col in enumerate(n_cols, start=1):
                n = cell_text(row.get(col), table, line, col)
                ns = None if scores is None else cell_number(scores[i], table, line, "scores")
                g.add_negative(n, i, ns, line, (r, i))
        elif fmt == "labeled-pair":
            d = cell_text(row.get(positive), table, line, positive)
            key = normalize_text(a)
            pair_rows[key] = pair_rows.get(key, 0) + 1
            pair_score: float | None = None
            if "label" in table.columns:
                is_pos = cell_label(row.get("label"), table, line, "label") == 1
            else:
                is_pos = pair_rows[key] <= positives_per_query
                pair_score = cell_number(row.get("score"), table, line, "score")
            if is_pos:
                g.add_positive(d, pair_score, line)
            else:
                g.add_negative(d, len(g.negatives) + 1, pair_score, line, (r, None))
        elif fmt == "labeled-list":
            docs = cell_list(row.get(positive), table, line, positive)
            if "labels" in table.columns:
                labels = [
                    cell_label(v, table, line, "labels")
                    for v in cell_list(row.get("labels"), table, line, "labels")
                ]
                lscores: list[float | None] = [None] * len(docs)
            else:
                raw = cell_list(row.get("scores"), table, line, "scores")
                lscores = [cell_number(v, table, line, "scores") for v in raw]
                labels = [1] + [0] * (len(docs) - 1)
            if len(labels) != len(docs) or len(lscores) != len(docs):
                raise InputError(
                    "documents and labels/scores differ in length",
                    path=table.path,
                    line=line,
                    field=positive,
                )
            position = 0
            for j, (doc, lab, sc) in enumerate(zip(docs, labels, lscores, strict=True)):
                text = cell_text(doc, table, line, positive)
                if lab == 1:
                    g.add_positive(text, sc, line)
                else:
                    position += 1
                    g.add_negative(text, position, sc, line, (r, j))
        else:
            raise InputError(f"unknown format {fmt!r}; use one of {', '.join(ST_FORMATS)}")
    return list(groups.values())


@dataclass(frozen=True)
class ImportOptions:
    """How to read a mined set (most options concern sentence-transformers layouts)."""

    #: ``auto``, ``recallwatch`` or one of ``ST_FORMATS``.
    format: str = "auto"
    anchor_column: str | None = None
    positive_column: str | None = None
    #: The ``range_min`` used when mining: added to each negative's position.
    rank_offset: int = 0
    #: labeled-pair with scores: leading rows of each query that are its positives.
    positives_per_query: int = 1
    #: Exclude (and count) texts that match no corpus document instead of failing.
    allow_unmatched: bool = False


def read_st_mined(
    path: Path | str, corpus: Corpus | None, options: ImportOptions | None = None
) -> MinedSet:
    """Import a sentence-transformers mined set, mapping texts back to corpus ids.

    Without a corpus every text gets a stable ``text:`` id (enough for rank and margin filters).
    Texts that match no corpus entry raise ``InputError`` (naming the first lines) unless
    ``allow_unmatched``; then they are excluded, counted in the report, and left untouched by
    writers.
    """
    opts = options or ImportOptions()
    rank_offset = opts.rank_offset
    table = read_table(path)
    fmt = detect_format(table.columns) if opts.format == "auto" else opts.format
    if fmt not in ST_FORMATS:
        raise InputError(
            f"unknown format {fmt!r}; use one of {', '.join(ST_FORMATS)}", path=table.path
        )
    if rank_offset < 0:
        raise ValueError("rank_offset must be non-negative")
    anchor, positive = _columns(table, opts.anchor_column, opts.positive_column)
    report = ImportReport(rows=len(table.rows))
    groups = _group_rows(table, fmt, anchor, positive, opts.positives_per_query, report)

    matcher = TextMatcher(corpus) if corpus is not None else None
    resolve_doc: Callable[[str], str | None] = matcher.document if matcher is not None else text_id
    queries: list[MinedQuery] = []
    locations: dict[tuple[int, int], list[Location]] = {}
    used_ids: set[str] = set()

    def unmatched(line: int, text: str) -> None:
        if len(report.unmatched_examples) < _MAX_EXAMPLES:
            report.unmatched_examples.append((line, text[:80]))

    for g in groups:
        pos_ids: list[str] = []
        pos_scores: list[float | None] = []
        for text, score, line in g.positives.values():
            did = resolve_doc(text)
            if did is None:
                report.unmatched_positives += 1
                unmatched(line, text)
                continue
            if did not in pos_ids:
                pos_ids.append(did)
                pos_scores.append(score)
        negs: list[tuple[Negative, list[Location]]] = []
        for text, position, score, line, locs in g.negatives.values():
            did = resolve_doc(text)
            if did is None:
                report.unmatched_negatives += 1
                unmatched(line, text)
                continue
            if did in pos_ids or any(n.doc_id == did for n, _ in negs):
                continue  # the same document under two spellings: keep its first role
            negs.append((Negative(did, position + rank_offset, score), locs))
        if not pos_ids:
            report.queries_without_positive += 1
            report.excluded_negatives += len(negs)
            continue
        qid = matcher.query(g.anchor) if matcher is not None else None
        if qid is None:
            report.anchors_without_query_id += 1
            qid = text_id(g.anchor, "anchor")
        if qid in used_ids:  # two anchors that normalise differently but share an id
            qid = text_id(g.anchor, "anchor")
        used_ids.add(qid)
        qi = len(queries)
        for ni, (_, locs) in enumerate(negs):
            locations[(qi, ni)] = locs
        has_scores = all(s is not None for s in pos_scores)
        queries.append(
            MinedQuery(
                qid,
                tuple(pos_ids),
                tuple(n for n, _ in negs),
                tuple(pos_scores) if has_scores else (),
                g.anchor,
                g.line,
            )
        )
    if matcher is not None:
        report.ambiguous_texts = len(matcher.ambiguous)
    missing = report.unmatched_negatives + report.unmatched_positives
    if missing and not opts.allow_unmatched:
        first = "; ".join(f"line {ln}: {t!r}" for ln, t in report.unmatched_examples)
        raise InputError(
            f"{missing} text(s) match no document of the corpus "
            f"({report.unmatched_negatives} negatives, {report.unmatched_positives} positives) "
            f"after whitespace normalisation; first: {first}. Is --corpus the corpus the set "
            "was mined from? (--allow-unmatched excludes them and reports the count)",
            path=table.path,
        )
    if not queries:
        raise InputError("no query of the mined set has a positive in the corpus", path=table.path)
    report.queries = len(queries)
    report.negatives = sum(len(q.negatives) for q in queries)
    source = STSource(table, fmt, anchor, positive, locations)
    return MinedSet(queries, table.path, fmt, report, source)


@dataclass(frozen=True)
class WriteSummary:
    """What a writer did to the rows of the input."""

    rows_in: int
    rows_out: int
    #: Negatives dropped although kept, because their n-tuple row lost another negative.
    collateral_negatives: int = 0
    #: Negatives written untouched because they were not imported (unmatched texts).
    untouched_negatives: int = 0


def write_st_mined(
    mined: MinedSet,
    path: Path | str,
    keep: dict[tuple[int, int], bool],
    weights: dict[tuple[int, int], float] | None = None,
) -> WriteSummary:
    """Write an imported set back in its format, dropping negatives whose ``keep`` is False.

    n-tuple rows have a fixed number of negatives, so a row that loses one is dropped whole (as
    ``mine_hard_negatives`` drops rows without enough negatives). Weights add a ``weight`` column
    (triplet, labeled-pair; positives weigh 1) or a ``weights`` list (n-tuple: one per negative;
    labeled-list: one per document).
    """
    source = mined.source
    if not isinstance(source, STSource):
        raise ValueError("write_st_mined needs a set imported by read_st_mined")
    out = Path(path)
    table = source.table
    by_location: dict[Location, tuple[int, int]] = {}
    for key, locs in source.locations.items():
        for loc in locs:
            by_location[loc] = key

    def decision(loc: Location) -> tuple[bool, float, bool]:
        key = by_location.get(loc)
        if key is None:
            return True, 1.0, False
        w = 1.0 if weights is None else float(weights.get(key, 1.0))
        return keep.get(key, True), w, True

    rows: list[dict[str, Any]] = []
    collateral = untouched = 0
    fmt = source.format
    n_cols = [c for c in table.columns if c.startswith("negative_") and c[9:].isdigit()]
    for r, row in enumerate(table.rows):
        new = dict(row)
        if fmt == "triplet" or (fmt == "labeled-pair" and (r, None) in by_location):
            kept, w, known = decision((r, None))
            untouched += not known
            if not kept:
                continue
            if weights is not None:
                new["weight"] = round(w, 6)
        elif fmt == "labeled-pair":  # a positive row, or a negative that matched no corpus text
            if weights is not None:
                new["weight"] = 1.0
            if "label" in row and str(row["label"]).strip() in ("0", "0.0"):
                untouched += 1
        elif fmt.startswith("n-tuple"):
            ds = [decision((r, i)) for i in range(1, len(n_cols) + 1)]
            untouched += sum(not known for _, _, known in ds)
            if not all(kept for kept, _, _ in ds):
                collateral += sum(kept for kept, _, _ in ds)
                continue
            if weights is not None:
                new["weights"] = [round(w, 6) for _, w, _ in ds]
        else:  # labeled-list
            docs = cell_list(
                row[source.positive_column], table, table.lines[r], source.positive_column
            )
            list_col = "labels" if "labels" in row else "scores"
            values = cell_list(row[list_col], table, table.lines[r], list_col)
            keep_docs, keep_vals, ws = [], [], []
            for j, (doc, val) in enumerate(zip(docs, values, strict=True)):
                kept, w, known = decision((r, j))
                is_negative = (r, j) in by_location or (
                    j > 0 if list_col == "scores" else int(float(val)) == 0
                )
                untouched += is_negative and not known
                if kept:
                    keep_docs.append(doc)
                    keep_vals.append(val)
                    ws.append(round(w, 6) if is_negative else 1.0)
            if len(keep_docs) <= 1 and len(docs) > 1:
                continue  # a positive with no negative left: nothing to train on
            new[source.positive_column] = keep_docs
            new[list_col] = keep_vals
            if weights is not None:
                new["weights"] = ws
        rows.append(new)
    columns = list(table.columns)
    if weights is not None:
        extra = "weights" if fmt.startswith("n-tuple") or fmt == "labeled-list" else "weight"
        if extra not in columns:
            columns.append(extra)
    write_rows(out, table_kind(out), columns, rows)
    return WriteSummary(len(table.rows), len(rows), collateral, untouched)
