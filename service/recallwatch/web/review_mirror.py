"""The review label mirror, written after every change and reconciled with the store at start.

The daemon rewrites ``<store dir>/reviews/KEY.csv`` (the labels, the file a ``labels:`` oracle
reads) and ``KEY.removals.jsonl`` (when each label was taken back with the page's undo) from the
store after every label change (``write_mirror``). So either side can hold events the other lost:

- the store loses its last committed writes when a ``-wal`` file is deleted after a crash, or
  when an older backup is restored: labels, and undos (a label the store still has although the
  reviewer took it back);
- the mirror misses a change when the daemon stops between the store's commit and the mirror's
  rewrite.

``reconcile_mirror`` (at start) settles each (query, document, reviewer) of each mirrored set
deterministically: **the newest event wins**, a label (its ``time``) or an undo (its
``removed_at``), from either side; at the same time an undo wins (it always follows its label).

- The mirror's event is newer: a label is stored again (``restored``), an undo is applied again
  (``undone``: the label the store kept is removed). Both are logged per file and counted
  (``/readyz``'s ``handled``, ``recallwatch_review_labels_restored_total`` and
  ``recallwatch_review_undos_restored_total``).
- The store's event is newer: the mirror is behind; it is rewritten from the store and logged.

A mirror written before undos were recorded has no removals file: a label the store has and the
mirror lacks then has no known undo, so the store's label stays (and the mirror is rewritten).
"""

from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from recallwatch.errors import InputError, RecallwatchError
from recallwatch.logs import fields
from recallwatch.mining.oracles.labels import read_labels
from recallwatch.mining.review import write_review_labels
from recallwatch.store import Store
from recallwatch.store.reviews import ReviewRemoval, ReviewRow
from recallwatch.views.reviews import review_labels

__all__ = ["REMOVALS_SUFFIX", "Reconciled", "reconcile_mirror", "removals_path", "write_mirror"]

log = logging.getLogger(__name__)

#: Mirror times are ISO 8601 with microseconds: events this close are the same moment.
_TIME_SLACK_SECONDS = 1e-3
#: Beside ``KEY.csv``: ``KEY.removals.jsonl``, one undo per line.
REMOVALS_SUFFIX = ".removals.jsonl"

_Pair = tuple[str, str, str]  # query id, doc id, reviewer


@dataclass(frozen=True)
class _Event:
    kind: Literal["label", "removal"]
    at: float
    label: str = ""


@dataclass
class Reconciled:
    """What ``reconcile_mirror`` did, per mirror file."""

    #: Labels stored again from the mirror (the store had lost them).
    restored: dict[Path, int] = field(default_factory=dict)
    #: Labels removed from the store: the mirror holds a newer undo of them.
    undone: dict[Path, int] = field(default_factory=dict)
    #: Mined-set keys whose mirror was behind the store, rewritten.
    rewritten: list[str] = field(default_factory=list)


def removals_path(folder: Path, key: str) -> Path:
    """The mirror's file of undos of the set ``key``."""
    return folder / f"{key}{REMOVALS_SUFFIX}"


def write_mirror(
    store: Store, folder: Path, key: str, ranks: dict[tuple[str, str], int] | None = None
) -> None:
    """Rewrite the set's mirror from the store: its undos first, then its labels (atomically
    each; a stop between the two leaves an undo newer than its label, which reconciles right)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = removals_path(folder, key)
    tmp = target.with_name(target.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for r in store.reviews.removals(key):
            doc = {"query_id": r.query_id, "doc_id": r.doc_id, "reviewer": r.reviewer}
            fh.write(json.dumps({**doc, "removed_at": r.removed_at}) + "\n")
    tmp.replace(target)
    write_review_labels(folder / f"{key}.csv", review_labels(store, key), ranks or {})


def _read_removals(path: Path) -> dict[_Pair, float]:
    out: dict[_Pair, float] = {}
    if not path.exists():
        return out
    with path.open("r", encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
                pair = (str(doc["query_id"]), str(doc["doc_id"]), str(doc["reviewer"]))
                at = float(doc["removed_at"])
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(f"not an undo record ({exc})", path=path, line=number) from None
            if not math.isfinite(at):
                raise InputError("removed_at is not a time", path=path, line=number)
            out[pair] = max(at, out.get(pair, at))
    return out


def _ranks(path: Path) -> dict[tuple[str, str], int]:
    """The ``rank`` column of an existing mirror file (kept when it is rewritten at start)."""
    ranks: dict[tuple[str, str], int] = {}
    with path.open("r", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            rank = (row.get("rank") or "").strip()
            if rank.isdigit():
                ranks[(row.get("query_id") or "", row.get("doc_id") or "")] = int(rank)
    return ranks


def _newest(label: _Event | None, removal: _Event | None) -> _Event | None:
    """One side's state of a pair: its newer event (an undo at the same moment wins)."""
    if label is None or removal is None:
        return label or removal
    return label if label.at > removal.at + _TIME_SLACK_SECONDS else removal


def _wins(mine: _Event, theirs: _Event | None) -> bool:
    """Whether ``mine`` is newer than ``theirs`` (at the same moment, an undo beats a label)."""
    if theirs is None:
        return True
    if abs(mine.at - theirs.at) <= _TIME_SLACK_SECONDS:
        return mine.kind == "removal" and theirs.kind == "label"
    return mine.at > theirs.at


def reconcile_mirror(store: Store, folder: Path) -> Reconciled:
    """Settle every mirrored set with the store, the newest event winning (see the module)."""
    done = Reconciled()
    for path in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
        key = path.stem
        try:
            mirrored = read_labels(path)
            mirrored_removals = _read_removals(removals_path(folder, key))
            ranks = _ranks(path)
        except (RecallwatchError, OSError, UnicodeDecodeError) as exc:
            # A damaged mirror must not stop the daemon: the store is the record.
            log.warning("review mirror not read back: %s", exc, extra=fields(file=str(path)))
            continue
        mirror: dict[_Pair, _Event] = {}
        for lab in mirrored:
            pair = (lab.query_id, lab.doc_id, lab.reviewer or "anonymous")
            at = lab.time.timestamp() if lab.time is not None else 0.0
            mirror[pair] = _Event("label", at, lab.label)
        stored = {(r.query_id, r.doc_id, r.reviewer): r for r in store.reviews.labels(key)}
        stored_removals = {
            (r.query_id, r.doc_id, r.reviewer): r.removed_at for r in store.reviews.removals(key)
        }
        restore: list[ReviewRow] = []
        undo: list[ReviewRemoval] = []
        behind = False
        for pair in sorted(
            set(mirror) | set(mirrored_removals) | set(stored) | set(stored_removals)
        ):
            row = stored.get(pair)
            ours = _newest(
                None if row is None else _Event("label", row.labelled_at, row.label),
                None if pair not in stored_removals else _Event("removal", stored_removals[pair]),
            )
            theirs = _newest(
                mirror.get(pair),
                None
                if pair not in mirrored_removals
                else _Event("removal", mirrored_removals[pair]),
            )
            if theirs is not None and _wins(theirs, ours):
                if theirs.kind == "label":
                    restore.append(ReviewRow(key, *pair[:2], theirs.label, pair[2], theirs.at))
                else:
                    undo.append(ReviewRemoval(key, *pair, theirs.at))
            elif ours is not None and (theirs is None or _wins(ours, theirs)):
                behind = True
            elif ours is not None and theirs is not None and ours.label != theirs.label:
                behind = True  # the same moment, different labels: the store is the record
        if restore:
            store.reviews.record_many(restore)
            done.restored[path] = len(restore)
            log.warning(
                "restored %d review label(s) from the mirror that the store lacked "
                "(lost writes: a deleted -wal, a restored backup)",
                len(restore),
                extra=fields(file=str(path), mined_set=key, labels=len(restore)),
            )
        if undo:
            removed = store.reviews.remove_many(undo)  # undos of labels it never had: noted
            if removed:
                done.undone[path] = removed
                log.warning(
                    "removed %d review label(s) that the mirror records a newer undo of (an "
                    "undo the store lost: a deleted -wal, a restored backup); the newest event "
                    "wins",
                    removed,
                    extra=fields(file=str(path), mined_set=key, labels=removed),
                )
        if behind:
            write_mirror(store, folder, key, ranks)
            done.rewritten.append(key)
            log.warning(
                "the review mirror was behind the store (a change whose mirror write was lost): "
                "rewritten from the store",
                extra=fields(file=str(path), mined_set=key),
            )
    return done
