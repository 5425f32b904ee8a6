"""The evidence an alert carries: lost queries, the mining diff, FN snapshots, the recommendation.

Rules decide; this module gathers what a person needs to act on a decision, from the store's read
side and the held-out texts:

- ``lost_queries``: how many queries lost a relevant document from the top k, and the first
  ``LOST_TOP`` of them with their texts;
- ``mining_diff``: the key-by-key change of two mining metadata documents (pure);
  ``EvidenceReader.mining_diff`` applies it between two checkpoints' stored configs, and
  ``mining_diff_before`` against the previous mining config of a run;
- ``fn_snapshot`` / ``previous_mining_estimate``: the false-negative estimates of the mined sets;
- ``recommendation``: the FN estimator's filter recommendation as one sentence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from recallwatch.evaluation.outcomes import lost_queries
from recallwatch.heldout.texts import TextIndex
from recallwatch.mining.audit_output import recommendation_text
from recallwatch.records.alert import (
    FnSnapshot,
    LostQueryRef,
    MiningKeyChange,
)
from recallwatch.store import CheckpointRow, FnEstimate, Store

__all__ = [
    "LOST_TOP",
    "EvidenceReader",
    "MiningChange",
    "fn_snapshot",
    "mining_diff",
    "recommendation",
]

#: How many lost queries an alert names (all are counted).
LOST_TOP = 5


@dataclass(frozen=True)
class MiningChange:
    """One key of the mining metadata that changed (dotted path for nested keys)."""

    key: str
    before: Any
    after: Any
    change: Literal["added", "removed", "changed"]


_MISSING = object()


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix or "(value)": value}


def mining_diff(before: Any, after: Any) -> list[MiningChange]:
    """The key-by-key difference of two mining metadata documents, sorted by key."""
    old, new = _flatten(before), _flatten(after)
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, _MISSING), new.get(key, _MISSING)
        if a is _MISSING:
            changes.append(MiningChange(key, None, b, "added"))
        elif b is _MISSING:
            changes.append(MiningChange(key, a, None, "removed"))
        elif a != b or type(a) is not type(b):
            changes.append(MiningChange(key, a, b, "changed"))
    return changes


def fn_snapshot(estimate: FnEstimate | None) -> FnSnapshot | None:
    """The part of a stored FN estimate an alert shows (None without an estimate)."""
    if estimate is None:
        return None
    return FnSnapshot(
        estimate.estimate,
        estimate.lower,
        estimate.upper,
        estimate.oracle,
        estimate.sample_size,
        estimate.amplification,
    )


def recommendation(estimate: FnEstimate | None) -> str | None:
    """The filter recommendation stored with an FN estimate, as one sentence (or None)."""
    if estimate is None or not isinstance(estimate.details, Mapping):
        return None
    rec: Any = estimate.details.get("recommendation")
    return recommendation_text(rec if isinstance(rec, Mapping) else None)


class EvidenceReader:
    """Evidence from the store's read side and the held-out texts."""

    def __init__(self, store: Store, texts: TextIndex) -> None:
        self._store = store
        self.texts = texts

    def lost_queries(
        self,
        heldout: Path,
        before: Mapping[str, Mapping[str, int]],
        after: Mapping[str, Mapping[str, int]],
        k: int,
    ) -> tuple[int, tuple[LostQueryRef, ...]]:
        """How many queries lost a relevant document from the top k, and the first few, named."""
        lost = lost_queries(before, after, k)
        top = lost[:LOST_TOP]
        queries, titles = self.texts.lookup(
            heldout, [q.query_id for q in top], [q.doc_id for q in top]
        )
        named = tuple(
            LostQueryRef(
                q.query_id,
                queries.get(q.query_id, ""),
                q.doc_id,
                titles.get(q.doc_id, ""),
                q.rank_before,
                q.rank_after,
                q.lost,
            )
            for q in top
        )
        return len(lost), named

    def mining_diff(self, before: str | None, after: str | None) -> tuple[MiningKeyChange, ...]:
        """The changed mining keys between two mining fingerprints (none when one is missing)."""
        if not before or not after:
            return ()
        return tuple(
            MiningKeyChange(c.key, c.before, c.after, c.change)
            for c in mining_diff(
                self._store.queue.mining_content(before), self._store.queue.mining_content(after)
            )
        )

    def previous_mining_checkpoint(self, row: CheckpointRow) -> CheckpointRow | None:
        """The newest evaluated checkpoint before ``row`` under another (known) mining config."""
        for r in self._store.queue.checkpoints(row.run, states=["evaluated"], newest_first=True):
            if (
                r.step is not None
                and row.step is not None
                and r.step < row.step
                and r.mining_fingerprint not in (None, row.mining_fingerprint)
            ):
                return r
        return None

    def previous_mining_estimate(self, row: CheckpointRow) -> FnEstimate | None:
        """The FN estimate of the previous mining config's newest checkpoint, if it has one."""
        previous = self.previous_mining_checkpoint(row)
        return None if previous is None else self._store.results.fn_estimate(previous.id)

    def mining_diff_before(self, row: CheckpointRow) -> tuple[MiningKeyChange, ...]:
        """The mining change that led to ``row``'s config (none without a previous config)."""
        previous = self.previous_mining_checkpoint(row)
        if previous is None:
            return ()
        return self.mining_diff(previous.mining_fingerprint, row.mining_fingerprint)
