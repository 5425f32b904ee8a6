"""Query texts and document titles of the held-out sets, for the lost queries an alert names.

An alert names a few lost queries with their texts; ``TextIndex`` reads each held-out file once
per file version (keyed by mtime and size) and serves those texts from memory, or streams the few
it needs from a file too large to index. Texts are a courtesy: a file that cannot be read gives
an alert without texts, never a failed decision.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from recallwatch.heldout.beir import stream_fields

__all__ = ["TEXT_INDEX_MAX_BYTES", "TextIndex"]

log = logging.getLogger(__name__)

#: Held-out files larger than this are not indexed: an alert streams its few texts from them.
TEXT_INDEX_MAX_BYTES = 128 * 1024 * 1024
#: The held-out files an alert takes texts from, and the field it takes.
_TEXT_FILES = (("queries.jsonl", "text"), ("corpus.jsonl", "title"))


class TextIndex:
    """Query texts and document titles of held-out sets, read once per file version."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: path -> ((mtime_ns, size), id -> text), or None for a file that could not be read.
        self._files: dict[Path, tuple[tuple[int, int], dict[str, str] | None]] = {}

    def warm(self, heldouts: Iterable[Path]) -> None:
        """Index the texts of each held-out set whose files are new or changed since last time."""
        for heldout in heldouts:
            for name, field in _TEXT_FILES:
                self._load(heldout / name, field)

    def lookup(
        self, heldout: Path, query_ids: Sequence[str], doc_ids: Sequence[str]
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Query texts and document titles of a few ids (streamed when not indexed)."""
        out: list[dict[str, str]] = []
        for (name, field), ids in zip(_TEXT_FILES, (query_ids, doc_ids), strict=True):
            path = heldout / name
            cached = self._files.get(path)  # no lock: never wait for another thread's reading
            stamp = _stamp(path)
            if cached is not None and cached[0] == stamp and cached[1] is not None:
                texts = cached[1]
                out.append({i: texts[i] for i in ids if i in texts})
            else:
                out.append(_stream_texts(path, field, set(ids)))
        return out[0], out[1]

    def _load(self, path: Path, field: str) -> None:
        stamp = _stamp(path)
        if stamp is None or stamp[1] > TEXT_INDEX_MAX_BYTES:
            return
        with self._lock:
            cached = self._files.get(path)
            if cached is not None and cached[0] == stamp:
                return
            self._files[path] = (stamp, _read_texts(path, field))


def _stamp(path: Path) -> tuple[int, int] | None:
    """A file's version: (mtime in ns, size), or None when it cannot be seen."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


#: Texts shown in an alert are cut to this many characters.
TEXT_LIMIT = 300


def _read(path: Path, field: str, wanted: set[str] | None) -> dict[str, str] | None:
    """Texts of one held-out file (all, or the wanted ids), through the one BEIR reader.

    A title falls back to the document's text. None when the file cannot be read: texts are a
    courtesy, and an alert without them is still an alert.
    """
    fallback = "text" if field == "title" else None
    try:
        texts = stream_fields(path, field, wanted, fallback=fallback)
    except Exception:
        log.warning("could not read texts from %s", path)
        return None
    return {i: text[:TEXT_LIMIT] for i, text in texts.items()}


def _read_texts(path: Path, field: str) -> dict[str, str] | None:
    """Every record's text of one held-out file, or None when the file cannot be read."""
    return _read(path, field, None)


def _stream_texts(path: Path, field: str, wanted: set[str]) -> dict[str, str]:
    """The texts of a few ids, streamed from one held-out file."""
    return _read(path, field, wanted) or {}
