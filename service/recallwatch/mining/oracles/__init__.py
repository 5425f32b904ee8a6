"""False-negative oracles and how to open one from a spec.

Specs (command line and configuration):

- ``qrels:PATH``            audit judgements, a BEIR qrels TSV (dense for the queries it covers)
- ``labels:PATH``           human review labels, CSV or JSONL
- ``model:DIR``             a judge model directory (bi-encoder or CrossEncoder, detected)
- ``bi-encoder:DIR``, ``cross-encoder:DIR``   the same, with the kind forced
- ``proxy:DIR``             the checkpoint under evaluation itself: a label-free proxy
- ``http://...``, ``https://...``   a judge endpoint (contract in ``oracles.http``); it is shown
  and recorded with its credentials redacted (``redact_url``)

Several specs make an ensemble (m of n must agree).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import requests

from recallwatch.errors import ConfigError
from recallwatch.mining.oracles.base import (
    LABELS,
    JudgeError,
    Judgement,
    Label,
    Oracle,
    OracleInfo,
    Pair,
)
from recallwatch.mining.oracles.ensemble import EnsembleOracle, combine_votes
from recallwatch.mining.oracles.http import HttpOracle, redact_url, resolve_http_headers
from recallwatch.mining.oracles.labels import (
    LabelsOracle,
    LabelStore,
    MemoryLabelStore,
    ReviewLabel,
    read_labels,
    write_label_sheet,
)
from recallwatch.mining.oracles.model import JudgeRule, ModelOracle, PairScorer, open_scorer
from recallwatch.mining.oracles.qrels import QrelsOracle

__all__ = [
    "LABELS",
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
    "OracleOptions",
    "Pair",
    "PairScorer",
    "QrelsOracle",
    "ReviewLabel",
    "combine_votes",
    "open_oracle",
    "open_oracles",
    "read_labels",
    "redact_url",
    "resolve_http_headers",
    "write_label_sheet",
]

KINDS = ("qrels", "labels", "model", "bi-encoder", "cross-encoder", "proxy")


@dataclass
class OracleOptions:
    """Options of the oracles that need them (ignored by the others)."""

    relevance_level: int = 1
    rule: JudgeRule = field(default_factory=JudgeRule)
    device: str = "cpu"
    batch_size: int = 32
    http_timeout: float = 30.0
    http_retries: int = 3
    http_batch_size: int = 32
    #: Extra request headers of http judges (e.g. ``Authorization``; see
    #: ``resolve_http_headers``). Never shown: only their names are recorded.
    http_headers: dict[str, str] = field(default_factory=dict)
    session: requests.Session | None = None


def open_oracle(spec: str, options: OracleOptions | None = None) -> Oracle:
    """Open one oracle from its spec (see the module docstring)."""
    opts = options or OracleOptions()
    if spec.startswith(("http://", "https://")):
        return HttpOracle(
            spec,
            session=opts.session,
            timeout=opts.http_timeout,
            retries=opts.http_retries,
            batch_size=opts.http_batch_size,
            headers=opts.http_headers,
        )
    kind, sep, arg = spec.partition(":")
    if not sep or not arg or kind not in KINDS:
        raise ConfigError(
            [
                (
                    "oracle",
                    f"unknown oracle {redact_url(spec)!r}; use qrels:PATH, labels:PATH, "
                    "model:DIR, "
                    "cross-encoder:DIR, bi-encoder:DIR, proxy:DIR or an http(s):// URL",
                )
            ]
        )
    if kind == "qrels":
        return QrelsOracle.from_file(arg, relevance_level=opts.relevance_level)
    if kind == "labels":
        return LabelsOracle.from_file(arg)
    forced = {"bi-encoder": "bi-encoder", "proxy": "bi-encoder", "cross-encoder": "cross-encoder"}
    scorer = open_scorer(
        arg,
        kind=forced.get(kind),  # type: ignore[arg-type]
        device=opts.device,
        batch_size=opts.batch_size,
    )
    return ModelOracle(scorer, opts.rule, spec=spec, proxy=kind == "proxy")


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
