"""Mined sets and their false negatives: formats, sampling, oracles, estimates, mitigations.

Reading order: ``formats`` (read any mined set: ``mined``, ``st_formats`` over ``tables``, texts
mapped to the ids of a ``corpus``) -> ``sampling`` -> ``oracles`` -> ``estimate`` -> ``recommend``
-> ``filtering``; ``audit`` wires them together for ``recallwatch fn-rate``.
"""

from __future__ import annotations

from recallwatch.mining.audit import AuditConfig, FNRateAudit, run_audit
from recallwatch.mining.corpus import Corpus, load_corpus, normalize_text
from recallwatch.mining.formats import FORMATS, read_mined
from recallwatch.mining.mined import MinedQuery, MinedSet, Negative, NegativeTable
from recallwatch.mining.recommend import FilterSpec, Recommendation, recommend
from recallwatch.mining.sampling import RankBuckets

__all__ = [
    "FORMATS",
    "AuditConfig",
    "Corpus",
    "FNRateAudit",
    "FilterSpec",
    "MinedQuery",
    "MinedSet",
    "Negative",
    "NegativeTable",
    "RankBuckets",
    "Recommendation",
    "load_corpus",
    "normalize_text",
    "read_mined",
    "recommend",
    "run_audit",
]
