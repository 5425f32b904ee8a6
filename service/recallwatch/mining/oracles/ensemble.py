"""The ``ensemble`` oracle: several judges; a false negative when at least m of n agree.

Not a spec of its own: several specs make one (``open_oracles``).

This is the cross-validation mitigation: a negative flagged by one judge alone may be that judge's
mistake; one that several independent judges flag is likely a real positive. A pair is

- ``relevant`` when at least ``agree`` judges say relevant,
- ``not_relevant`` when that is out of reach even if every unsure or missing vote were relevant,
- ``unsure`` otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from recallwatch.errors import ConfigError
from recallwatch.mining.oracles.base import (
    Judgement,
    Label,
    Oracle,
    OracleInfo,
    Pair,
    open_oracle,
)
from recallwatch.mining.oracles.options import OracleOptions

__all__ = ["EnsembleOracle", "combine_votes", "open_oracles"]


def combine_votes(votes: Sequence[Label | None], agree: int) -> Label:
    """Combine per-judge labels with the m-of-n rule."""
    relevant = sum(v == "relevant" for v in votes)
    open_votes = sum(v in (None, "unsure") for v in votes)
    if relevant >= agree:
        return "relevant"
    if relevant + open_votes < agree:
        return "not_relevant"
    return "unsure"


class EnsembleOracle:
    """m-of-n agreement of several oracles; eligible where every member is."""

    def __init__(self, members: Sequence[Oracle], *, agree: int | None = None) -> None:
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two judges")
        n = len(members)
        m = agree if agree is not None else n // 2 + 1
        if not 1 <= m <= n:
            raise ValueError(f"agree must be between 1 and {n}, got {m}")
        self.members = list(members)
        self.agree = m
        self.needs_text = any(o.needs_text for o in members)
        self.judges_whole_queries = all(o.judges_whole_queries for o in members)
        self.info = OracleInfo(
            "ensemble",
            f"ensemble:{m}-of-{n}",
            proxy=all(o.info.proxy for o in members),
            details={"agree": m, "judges": n},
            members=tuple(o.info for o in members),
            free_labels=min(o.info.free_labels for o in members),
        )

    def eligible(
        self, query_ids: Sequence[str], doc_ids: Sequence[str]
    ) -> npt.NDArray[np.bool_] | None:
        """Pairs every member can judge."""
        mask: npt.NDArray[np.bool_] | None = None
        for o in self.members:
            m = o.eligible(query_ids, doc_ids)
            if m is not None:
                mask = m if mask is None else mask & m
        return mask

    def judge(self, pairs: Sequence[Pair]) -> list[Judgement]:
        """Ask every member, then combine the votes."""
        per_member = [o.judge(pairs) for o in self.members]
        out: list[Judgement] = []
        for i in range(len(pairs)):
            votes = tuple(js[i].label for js in per_member)
            out.append(Judgement(combine_votes(votes, self.agree), votes=votes))
        return out


def open_oracles(
    specs: Sequence[str], options: OracleOptions | None = None, *, agree: int | None = None
) -> Oracle:
    """Open one oracle, or an m-of-n ensemble of several."""
    if not specs:
        raise ConfigError([("oracle", "give at least one --oracle")])
    oracles = [open_oracle(s, options) for s in specs]
    if len(oracles) == 1:
        if agree is not None and agree != 1:
            raise ConfigError([("agree", "--agree needs at least two oracles")])
        return oracles[0]
    try:
        return EnsembleOracle(oracles, agree=agree)
    except ValueError as exc:
        raise ConfigError([("agree", str(exc))]) from exc
