"""The review label mirror read back at start: labels the store lost are put back from it.

The daemon rewrites ``<store dir>/reviews/KEY.csv`` from the store after every label change, so
the mirror can hold labels the store no longer has: a ``-wal`` file deleted after a crash takes
the last committed writes with it, silently, and a restored backup lacks what was labelled
since. ``restore_mirrored_labels`` stores every mirrored label the store lacks (or holds only an
older label of, for the same reviewer and pair) and logs how many, per file. Labels the store has
but the mirror lacks (an undo whose mirror write was lost) are left alone.
"""

from __future__ import annotations

import logging
from pathlib import Path

from recallwatch.errors import RecallwatchError
from recallwatch.logs import fields
from recallwatch.mining.oracles.labels import read_labels
from recallwatch.store import Store
from recallwatch.store.reviews import ReviewRow

__all__ = ["restore_mirrored_labels"]

log = logging.getLogger(__name__)

#: Mirror times are ISO 8601 with microseconds: a stored label this much older is older.
_TIME_SLACK_SECONDS = 1e-3


def restore_mirrored_labels(store: Store, folder: Path) -> dict[Path, int]:
    """Store the mirrored labels the store lacks; how many, per mirror file that had any."""
    restored: dict[Path, int] = {}
    for path in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
        key = path.stem
        try:
            labels = read_labels(path)
        except (RecallwatchError, OSError, UnicodeDecodeError) as exc:
            # A damaged mirror must not stop the daemon: the store is the record.
            log.warning("review mirror not read back: %s", exc, extra=fields(file=str(path)))
            continue
        stored = {
            (r.query_id, r.doc_id, r.reviewer): r.labelled_at for r in store.reviews.labels(key)
        }
        missing = []
        for lab in labels:
            reviewer = lab.reviewer or "anonymous"
            at = lab.time.timestamp() if lab.time is not None else 0.0
            held = stored.get((lab.query_id, lab.doc_id, reviewer))
            if held is None or held < at - _TIME_SLACK_SECONDS:
                missing.append(ReviewRow(key, lab.query_id, lab.doc_id, lab.label, reviewer, at))
        if missing:
            store.reviews.record_many(missing)
            restored[path] = len(missing)
            log.warning(
                "restored %d review label(s) from the mirror that the store lacked "
                "(lost writes: a deleted -wal, a restored backup)",
                len(missing),
                extra=fields(file=str(path), mined_set=key, labels=len(missing)),
            )
    return restored
