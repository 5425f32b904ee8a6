"""The ``qrels`` oracle: audit judgements, dense for a subset of queries.

An audit judges *every* document for the queries it covers (or at least every candidate a miner
could return), so for an audited query a document it does not list is not relevant. Negatives of
unaudited queries cannot be judged and are never sampled.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from recallwatch.heldout.beir import read_qrels
from recallwatch.mining.oracles.base import (
    FILE_FREE_LABELS,
    Judgement,
    OracleInfo,
    OracleKind,
    Pair,
    register,
)
from recallwatch.mining.oracles.options import OracleOptions

__all__ = ["QrelsJudge", "QrelsOracle"]


class QrelsOracle:
    """Judge by audit qrels: relevant when the grade is at least ``relevance_level``."""

    needs_text = False
    judges_whole_queries = True

    def __init__(
        self,
        qrels: dict[str, dict[str, int]],
        *,
        relevance_level: int = 1,
        spec: str = "qrels",
    ) -> None:
        self.qrels = qrels
        self.relevance_level = relevance_level
        self.info = OracleInfo(
            "qrels",
            spec,
            details={"audited_queries": len(qrels), "relevance_level": relevance_level},
            free_labels=FILE_FREE_LABELS,
        )

    @classmethod
    def from_file(cls, path: Path | str, *, relevance_level: int = 1) -> QrelsOracle:
        """Read a BEIR qrels TSV (``query-id, corpus-id, score``)."""
        raw = read_qrels(Path(path))
        qrels = {q: {d: s for d, (s, _) in docs.items()} for q, docs in raw.items()}
        return cls(qrels, relevance_level=relevance_level, spec=f"qrels:{path}")

    def eligible(
        self, query_ids: Sequence[str], doc_ids: Sequence[str]
    ) -> npt.NDArray[np.bool_] | None:
        """Pairs whose query is audited."""
        return np.fromiter((q in self.qrels for q in query_ids), dtype=bool, count=len(query_ids))

    def judge(self, pairs: Sequence[Pair]) -> list[Judgement]:
        """Relevant when the audit grades the pair at or above the relevance level."""
        out: list[Judgement] = []
        for p in pairs:
            grades = self.qrels.get(p.query_id)
            if grades is None:
                out.append(Judgement(None))
                continue
            grade = grades.get(p.doc_id, 0)
            out.append(Judgement("relevant" if grade >= self.relevance_level else "not_relevant"))
        return out


@register
class QrelsJudge(OracleKind):
    """``qrels:PATH``: audit judgements, a BEIR qrels TSV."""

    prefixes = ("qrels",)
    usages = ("qrels:PATH",)
    listed = 10
    takes_path = True

    def open(self, spec: str, argument: str, options: OracleOptions) -> QrelsOracle:
        """Read the qrels, relevant from ``options.relevance_level``."""
        return QrelsOracle.from_file(argument, relevance_level=options.relevance_level)
