"""Mining segments and baselines: which checkpoint a new one is compared with, and why.

1. **Mining change.** Checkpoints ordered by step form *segments* of equal mining fingerprint
   (checkpoints without mining metadata are ignored). A checkpoint whose fingerprint differs from
   its predecessor's starts a segment: that is a mining change.
2. **Baseline.** ``previous_mining``: the best (default) or last checkpoint of the segment before
   the current one. ``same_mining``: the best (or last) earlier checkpoint of the current segment,
   which catches regressions not caused by mining. A checkpoint pinned by name overrides both.

Pure: plain data (checkpoint summaries) in, plain data out; no store, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Baseline",
    "BaselineKind",
    "BaselinePolicy",
    "CheckpointSummary",
    "CompareWith",
    "choose_baseline",
    "mining_segments",
]

CompareWith = Literal["previous_mining", "same_mining"]
BaselinePolicy = Literal["best", "last"]
BaselineKind = Literal["previous_mining", "same_mining", "pinned"]


@dataclass(frozen=True)
class CheckpointSummary:
    """An evaluated checkpoint as the decision sees it: identity, step, mining, headline value."""

    id: int
    name: str
    step: int | None
    fingerprint: str | None
    #: The metric at k on the dataset under decision (``None``: not evaluated on it).
    value: float | None


@dataclass(frozen=True)
class Baseline:
    """The checkpoint a new one is compared with, and why it was chosen."""

    checkpoint: CheckpointSummary
    kind: BaselineKind
    policy: BaselinePolicy | Literal["pinned"]
    #: The first checkpoint under the current mining config (the mining change), if known.
    change: CheckpointSummary | None
    #: How many checkpoints the baseline was chosen from (``best``: all scored candidates).
    candidates: int = 1


def mining_segments(history: Sequence[CheckpointSummary]) -> list[list[CheckpointSummary]]:
    """Split checkpoints (ordered by step) into runs of equal mining fingerprint."""
    segments: list[list[CheckpointSummary]] = []
    for c in history:
        if c.fingerprint is None:
            continue
        if segments and segments[-1][-1].fingerprint == c.fingerprint:
            segments[-1].append(c)
        else:
            segments.append([c])
    return segments


def _pick(
    candidates: Iterable[CheckpointSummary], policy: BaselinePolicy
) -> tuple[CheckpointSummary, int] | None:
    """The chosen checkpoint and how many it was chosen from (1 for ``last``)."""
    scored = [c for c in candidates if c.value is not None and math.isfinite(c.value)]
    if not scored:
        return None
    if policy == "last":
        return scored[-1], 1
    # Best value; ties go to the earliest, so the baseline does not move without a reason.
    best = max(range(len(scored)), key=lambda i: (scored[i].value, -i))
    return scored[best], len(scored)


def choose_baseline(
    history: Sequence[CheckpointSummary],
    current: CheckpointSummary,
    *,
    compare_with: CompareWith = "previous_mining",
    policy: BaselinePolicy = "best",
    pinned: str | None = None,
) -> Baseline | None:
    """The baseline of ``current`` among the checkpoints before it in ``history`` (by step)."""
    ids = [c.id for c in history]
    before = list(history[: ids.index(current.id)]) if current.id in ids else list(history)
    segments = mining_segments([*before, current])
    mine = next((s for s in reversed(segments) if s[-1].id == current.id), None)
    change = mine[0] if mine is not None and len(segments) > 1 and mine is not segments[0] else None
    if pinned is not None:
        chosen = next((c for c in before if c.name == pinned and c.value is not None), None)
        return None if chosen is None else Baseline(chosen, "pinned", "pinned", change)
    if mine is None:  # the current checkpoint has no mining metadata
        return None
    kind: BaselineKind = compare_with
    if compare_with == "same_mining":
        candidates = mine[:-1]
    else:
        position = next(i for i, s in enumerate(segments) if s is mine)
        if position == 0:
            return None  # no mining change yet
        candidates = segments[position - 1]
    picked = _pick(candidates, policy)
    if picked is None:
        return None
    return Baseline(picked[0], kind, policy, mine[0], candidates=picked[1])
