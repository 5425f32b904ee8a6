"""The ``labels`` oracle: human review labels, from a file or a label store.

A label file is CSV (header ``query_id,doc_id,label,reviewer,time``) or JSONL with the same keys;
``label`` is ``relevant``, ``not_relevant`` or ``unsure``; ``reviewer`` and ``time`` (ISO 8601)
are optional. Other columns (texts, notes) are ignored, so a sheet written by
``recallwatch fn-rate --export-sample`` can be filled in and read back as it is.

A file with a ``sample`` column (a sheet of ``fn-rate --export-sample`` or an export of the
review pages) holds labels of the **seeded sample** of the whole mined set: drawn again with the
same seed and size, every mined negative is in the frame and the sampled pairs without a label
are left out as unjudged, so the rates are about the whole mined set (not about the labelled
pairs only) and a review stopped early is still a valid sample. Without that column only the
labelled pairs are sampled.

``LabelStore`` is the interface the review pages write to. When several reviewers label a pair,
the pair's label is theirs if they agree and ``unsure`` if they do not; a reviewer's later label
replaces their earlier one.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from recallwatch.errors import InputError
from recallwatch.heldout.beir import read_jsonl_objects
from recallwatch.mining.cells import neutralise, restore
from recallwatch.mining.oracles.base import (
    FILE_FREE_LABELS,
    LABELS,
    Judgement,
    Label,
    OracleInfo,
    OracleKind,
    Pair,
    register,
)
from recallwatch.mining.oracles.options import OracleOptions

__all__ = [
    "LabelStore",
    "LabelsJudge",
    "LabelsOracle",
    "MemoryLabelStore",
    "ReviewLabel",
    "read_labels",
    "write_label_sheet",
]

SHEET_COLUMNS = [
    "query_id",
    "doc_id",
    "label",
    "reviewer",
    "time",
    "sample",
    "rank",
    "query",
    "document",
]


@dataclass(frozen=True)
class ReviewLabel:
    """One reviewer's label of one (query, document) pair."""

    query_id: str
    doc_id: str
    label: Label
    reviewer: str | None = None
    time: datetime | None = None


@runtime_checkable
class LabelStore(Protocol):
    """Where review labels live; the review pages implement it over the database."""

    def add(self, label: ReviewLabel) -> None:
        """Record a label (replacing the same reviewer's earlier label of the pair)."""
        ...

    def get(self, query_id: str, doc_id: str) -> Label | None:
        """The pair's label (``unsure`` when reviewers disagree), or None when unlabelled."""
        ...

    def labelled_pairs(self) -> Iterator[tuple[str, str]]:
        """Every (query id, doc id) that has at least one label."""
        ...


class MemoryLabelStore:
    """A ``LabelStore`` in memory (for label files and tests)."""

    def __init__(self, labels: Iterable[ReviewLabel] = ()) -> None:
        self._labels: dict[tuple[str, str], dict[str | None, ReviewLabel]] = {}
        for label in labels:
            self.add(label)

    def add(self, label: ReviewLabel) -> None:
        """Record a label (replacing the same reviewer's earlier label of the pair)."""
        per_pair = self._labels.setdefault((label.query_id, label.doc_id), {})
        previous = per_pair.get(label.reviewer)
        if previous is None or (
            label.time is None or previous.time is None or label.time >= previous.time
        ):
            per_pair[label.reviewer] = label

    def get(self, query_id: str, doc_id: str) -> Label | None:
        """The pair's label (``unsure`` when reviewers disagree), or None when unlabelled."""
        per_pair = self._labels.get((query_id, doc_id))
        if not per_pair:
            return None
        found = {lab.label for lab in per_pair.values()}
        return found.pop() if len(found) == 1 else "unsure"

    def labelled_pairs(self) -> Iterator[tuple[str, str]]:
        """Every (query id, doc id) that has at least one label."""
        return iter(list(self._labels))

    def __len__(self) -> int:
        return len(self._labels)


def _parse_label(row: dict[str, Any], path: Path, line: int) -> ReviewLabel:
    def text(key: str, *, required: bool) -> str | None:
        value = row.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                raise InputError(f"missing {key}", path=path, line=line, field=key)
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise InputError(f"expected a string, got {value!r}", path=path, line=line, field=key)
        return value.strip()

    qid = text("query_id", required=True)
    did = text("doc_id", required=True)
    label = text("label", required=True)
    if label not in LABELS:
        raise InputError(
            f"unknown label {label!r}; use relevant, not_relevant or unsure",
            path=path,
            line=line,
            field="label",
        )
    when = text("time", required=False)
    stamp: datetime | None = None
    if when is not None:
        try:
            stamp = datetime.fromisoformat(when.replace("Z", "+00:00"))
        except ValueError:
            raise InputError(
                f"time {when!r} is not ISO 8601 (e.g. 2025-01-31T12:00:00Z)",
                path=path,
                line=line,
                field="time",
            ) from None
    assert qid is not None and did is not None
    return ReviewLabel(qid, did, label, text("reviewer", required=False), stamp)


def read_labels(path: Path | str, *, skip_unlabelled: bool = True) -> list[ReviewLabel]:
    """Read review labels from CSV or JSONL; rows with an empty label are skipped (unreviewed)."""
    p = Path(path)
    rows: list[tuple[int, dict[str, Any]]] = []
    if p.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        rows = list(read_jsonl_objects(p))
    else:
        try:
            fh = p.open("r", encoding="utf-8", newline="")
        except FileNotFoundError as exc:
            raise InputError("label file not found", path=p) from exc
        with fh:
            reader = csv.DictReader(fh)
            missing = {"query_id", "doc_id", "label"} - set(reader.fieldnames or [])
            if missing:
                raise InputError(
                    f"missing column(s) {', '.join(sorted(missing))}; the header needs "
                    "query_id,doc_id,label (reviewer,time optional)",
                    path=p,
                    line=1,
                )
            line = reader.line_num + 1
            for row in reader:
                # Cells written by ``neutralise`` (review files, label sheets) read back as written.
                rows.append(
                    (line, {k: restore(v) if isinstance(v, str) else v for k, v in row.items()})
                )
                line = reader.line_num + 1
    labels: list[ReviewLabel] = []
    for line, row in rows:
        if skip_unlabelled and not str(row.get("label") or "").strip():
            continue
        labels.append(_parse_label(row, p, line))
    return labels


def _has_sample_column(path: Path | str) -> bool:
    """Whether a label file has the ``sample`` column of a seeded-sample sheet."""
    p = Path(path)
    if p.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        return any("sample" in row for _, row in read_jsonl_objects(p))
    with p.open("r", encoding="utf-8", newline="") as fh:
        return "sample" in (csv.DictReader(fh).fieldnames or [])


class LabelsOracle:
    """Judge by review labels: only labelled pairs are eligible."""

    needs_text = False
    judges_whole_queries = False

    def __init__(
        self, store: LabelStore, *, spec: str = "labels", seeded_sample: bool = False
    ) -> None:
        self.store = store
        #: Labels of the seeded sample of the whole mined set (see the module docstring).
        self.seeded_sample = seeded_sample
        self._pairs = set(store.labelled_pairs())
        details: dict[str, Any] = {"labelled_pairs": len(self._pairs)}
        if seeded_sample:
            details["seeded_sample"] = True
        self.info = OracleInfo("labels", spec, details=details, free_labels=FILE_FREE_LABELS)

    @classmethod
    def from_file(cls, path: Path | str) -> LabelsOracle:
        """Read a CSV / JSONL label file into a memory store."""
        labels = read_labels(path)
        if not labels:
            raise InputError(
                "the label file has no label (is every 'label' cell empty?)", path=path
            )
        return cls(
            MemoryLabelStore(labels), spec=f"labels:{path}", seeded_sample=_has_sample_column(path)
        )

    def eligible(
        self, query_ids: Sequence[str], doc_ids: Sequence[str]
    ) -> npt.NDArray[np.bool_] | None:
        """Labelled pairs; every pair for the labels of a seeded sample."""
        if self.seeded_sample:
            return None
        return np.fromiter(
            ((q, d) in self._pairs for q, d in zip(query_ids, doc_ids, strict=True)),
            dtype=bool,
            count=len(query_ids),
        )

    def judge(self, pairs: Sequence[Pair]) -> list[Judgement]:
        """The stored label of each pair (None when unlabelled)."""
        return [Judgement(self.store.get(p.query_id, p.doc_id)) for p in pairs]


def write_label_sheet(
    path: Path | str,
    rows: Sequence[tuple[str, Pair, int | None]],
) -> None:
    """Write a CSV sheet for reviewers: one row per (sample kind, pair, rank), label empty."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=SHEET_COLUMNS)
        writer.writeheader()
        for kind, pair, rank in rows:
            row: dict[str, object] = {
                "query_id": pair.query_id,
                "doc_id": pair.doc_id,
                "label": "",
                "reviewer": "",
                "time": "",
                "sample": kind,
                "rank": "" if rank is None else rank,
                "query": pair.query_text or "",
                "document": pair.doc_text or "",
            }
            # Texts and ids are the corpus': none may run as a formula in the reviewer's sheet.
            writer.writerow({k: neutralise(v) for k, v in row.items()})


@register
class LabelsJudge(OracleKind):
    """``labels:PATH``: human review labels, CSV or JSONL."""

    prefixes = ("labels",)
    usages = ("labels:PATH",)
    listed = 20
    takes_path = True

    def open(self, spec: str, argument: str, options: OracleOptions) -> LabelsOracle:
        """Read the labels."""
        return LabelsOracle.from_file(argument)
