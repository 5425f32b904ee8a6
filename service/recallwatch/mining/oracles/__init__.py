"""False-negative oracles: one module per kind of oracle spec, registered by its prefix.

Specs (command line and configuration):

- ``qrels:PATH``            audit judgements, a BEIR qrels TSV (dense for the queries it covers)
- ``labels:PATH``           human review labels, CSV or JSONL
- ``review``                the daemon's ``/review`` labels of each mined set (``serve`` only;
  see ``oracles.review`` and ``daemon.review_feed``)
- ``model:DIR``             a judge model directory (bi-encoder or CrossEncoder, detected)
- ``bi-encoder:DIR``, ``cross-encoder:DIR``   the same, with the kind forced
- ``proxy:DIR``             the checkpoint under evaluation itself: a label-free proxy
- ``http://...``, ``https://...``   a judge endpoint (contract in ``oracles.http``); it is shown
  and recorded with its credentials redacted (``redact_url``)

Several specs make an ensemble (m of n must agree: ``ensemble.open_oracles``).

Importing this package imports every module in it, so each built-in kind registers itself
(``oracles.base.register``); ``open_oracle`` finds a spec's kind by its prefix. A new kind is a
new module here (see ``oracles.base``).
"""

from __future__ import annotations

import importlib
import pkgutil

from recallwatch.mining.oracles.base import (
    LABELS,
    ORACLE_KINDS,
    JudgeError,
    Judgement,
    Label,
    Oracle,
    OracleInfo,
    OracleKind,
    Pair,
    kind_of,
    open_oracle,
    register,
)
from recallwatch.mining.oracles.ensemble import EnsembleOracle, combine_votes, open_oracles
from recallwatch.mining.oracles.http import HttpOracle, resolve_http_headers
from recallwatch.mining.oracles.labels import (
    LabelsOracle,
    LabelStore,
    MemoryLabelStore,
    ReviewLabel,
    read_labels,
    write_label_sheet,
)
from recallwatch.mining.oracles.model import ModelOracle, PairScorer
from recallwatch.mining.oracles.options import JudgeRule, OracleOptions
from recallwatch.mining.oracles.qrels import QrelsOracle
from recallwatch.mining.oracles.redaction import redact_url

__all__ = [
    "LABELS",
    "ORACLE_KINDS",
    "EnsembleOracle",
    "HttpOracle",
    "JudgeError",
    "JudgeRule",
    "Judgement",
    "Label",
    "LabelStore",
    "LabelsOracle",
    "MemoryLabelStore",
    "ModelOracle",
    "Oracle",
    "OracleInfo",
    "OracleKind",
    "OracleOptions",
    "Pair",
    "PairScorer",
    "QrelsOracle",
    "ReviewLabel",
    "combine_votes",
    "kind_of",
    "open_oracle",
    "open_oracles",
    "read_labels",
    "redact_url",
    "register",
    "resolve_http_headers",
    "write_label_sheet",
]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
