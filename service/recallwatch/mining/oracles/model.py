"""The ``model`` oracle: a judge model scores the pair and the query's positive.

The judge is a sentence-transformers bi-encoder directory (cosine similarity of the embeddings)
or a CrossEncoder directory (its ``predict`` score), or the checkpoint under evaluation itself as a
label-free *proxy*. The rule is positive-aware: a negative is a false negative when

- ``score(q, neg) >= score(q, pos) - |score(q, pos)| * relative_margin``  (``(1 - m) * pos`` for
  a positive score; the lowest-scoring positive of the query is used, as sentence-transformers
  does), or
- ``score(q, neg) >= threshold``  (an absolute score, e.g. 0.5 for a sigmoid CrossEncoder).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from recallwatch.encoders.base import Encoder, check_matrix
from recallwatch.encoders.sentence_transformers import load_offline
from recallwatch.errors import CheckpointError, RecallwatchError
from recallwatch.mining.oracles.base import (
    MODEL_FREE_LABELS,
    JudgeError,
    Judgement,
    OracleInfo,
    OracleKind,
    Pair,
    register,
)
from recallwatch.mining.oracles.options import JudgeRule, OracleOptions

__all__ = [
    "BiEncoderScorer",
    "CrossEncoderScorer",
    "ModelJudge",
    "ModelOracle",
    "PairScorer",
    "detect_model_kind",
    "open_scorer",
]

log = logging.getLogger(__name__)
ModelKind = Literal["bi-encoder", "cross-encoder"]


class PairScorer(Protocol):
    """Score (query text, document text) pairs; higher means more relevant."""

    name: str

    def score(self, queries: Sequence[str], documents: Sequence[str]) -> npt.NDArray[np.float64]:
        """Return one score per pair."""
        ...


class BiEncoderScorer:
    """Cosine similarity of query and document embeddings from an ``Encoder``."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.name = encoder.name

    def score(self, queries: Sequence[str], documents: Sequence[str]) -> npt.NDArray[np.float64]:
        """Cosine similarity of each pair (each distinct text encoded once)."""
        uq = list(dict.fromkeys(queries))
        ud = list(dict.fromkeys(documents))
        q = check_matrix(
            self.encoder.encode(uq, "query"), rows=len(uq), what="judge queries", origin=self.name
        )
        d = check_matrix(
            self.encoder.encode(ud, "document"),
            rows=len(ud),
            what="judge documents",
            origin=self.name,
            dim=q.shape[1],
        )
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
        qi = {t: i for i, t in enumerate(uq)}
        di = {t: i for i, t in enumerate(ud)}
        rows = np.fromiter((qi[t] for t in queries), np.int64, len(queries))
        cols = np.fromiter((di[t] for t in documents), np.int64, len(documents))
        scores: npt.NDArray[np.float64] = np.einsum("ij,ij->i", q[rows], d[cols]).astype(np.float64)
        return scores


class CrossEncoderScorer:
    """A sentence-transformers CrossEncoder loaded offline from a directory."""

    name = "cross-encoder"

    def __init__(self, model_dir: Path | str, *, device: str = "cpu", batch_size: int = 32) -> None:
        self.model_dir = Path(model_dir)
        self.batch_size = batch_size
        self.model: Any = load_offline("CrossEncoder", self.model_dir, device)

    def score(self, queries: Sequence[str], documents: Sequence[str]) -> npt.NDArray[np.float64]:
        """The CrossEncoder's score of each pair (after its activation function)."""
        pairs = list(zip(queries, documents, strict=True))
        out = self.model.predict(
            pairs, batch_size=self.batch_size, show_progress_bar=False, convert_to_numpy=True
        )
        arr: npt.NDArray[np.float64] = np.asarray(out, dtype=np.float64)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise JudgeError(
                f"the CrossEncoder at {self.model_dir} returns {arr.shape[1]} scores per pair; "
                "a judge needs a single relevance score (num_labels=1)"
            )
        return arr


def detect_model_kind(model_dir: Path | str) -> ModelKind:
    """Tell a CrossEncoder directory from a bi-encoder one by its saved configuration."""
    root = Path(model_dir)
    if not root.is_dir():
        raise CheckpointError("judge model directory not found", path=root)
    st_config = root / "config_sentence_transformers.json"
    if st_config.is_file():
        try:
            model_type = json.loads(st_config.read_text(encoding="utf-8")).get("model_type")
        except (json.JSONDecodeError, AttributeError):
            model_type = None
        if model_type == "CrossEncoder":
            return "cross-encoder"
    if (root / "modules.json").is_file():
        return "bi-encoder"
    config = root / "config.json"
    if config.is_file():
        try:
            archs = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
        except (json.JSONDecodeError, AttributeError):
            archs = []
        if any(str(a).endswith("ForSequenceClassification") for a in archs):
            return "cross-encoder"
        return "bi-encoder"
    raise CheckpointError(
        "not a sentence-transformers model directory (no modules.json or config.json)", path=root
    )


def open_scorer(
    model_dir: Path | str,
    *,
    kind: ModelKind | None = None,
    device: str = "cpu",
    batch_size: int = 32,
) -> PairScorer:
    """Load a judge model directory as a bi-encoder or CrossEncoder scorer."""
    resolved = kind or detect_model_kind(model_dir)
    if resolved == "cross-encoder":
        return CrossEncoderScorer(model_dir, device=device, batch_size=batch_size)
    from recallwatch.encoders.sentence_transformers import SentenceTransformerEncoder

    encoder = SentenceTransformerEncoder(
        model_dir, device=device, batch_size=batch_size, normalize=True, show_progress=False
    )
    return BiEncoderScorer(encoder)


class ModelOracle:
    """Judge with a model: positive-aware margin and/or absolute threshold."""

    needs_text = True
    judges_whole_queries = True

    def __init__(
        self,
        scorer: PairScorer,
        rule: JudgeRule,
        *,
        spec: str = "model",
        proxy: bool = False,
    ) -> None:
        self.scorer = scorer
        self.rule = rule
        kind = "proxy" if proxy else "model"
        self.info = OracleInfo(
            kind,
            spec,
            proxy=proxy,
            details={"scorer": scorer.name, **rule.as_dict()},
            free_labels=MODEL_FREE_LABELS,
        )

    def eligible(
        self, query_ids: Sequence[str], doc_ids: Sequence[str]
    ) -> npt.NDArray[np.bool_] | None:
        """A model can judge every pair."""
        return None

    def judge(self, pairs: Sequence[Pair]) -> list[Judgement]:
        """Score each pair and its query's positives; apply the rule."""
        if not pairs:
            return []
        queries: list[str] = []
        documents: list[str] = []
        positive_slots: dict[tuple[str, str], int] = {}
        for p in pairs:
            if p.query_text is None or p.doc_text is None:
                raise JudgeError(
                    f"the model judge needs texts, but pair ({p.query_id!r}, {p.doc_id!r}) has "
                    "none; add the query to queries.jsonl or a 'query' field to the mined set"
                )
            queries.append(p.query_text)
            documents.append(p.doc_text)
        n = len(queries)
        if self.rule.relative_margin is not None:
            for p in pairs:
                if not p.positive_texts:
                    raise JudgeError(f"query {p.query_id!r} has no positive text to compare with")
                for pid, ptext in zip(p.positive_ids, p.positive_texts, strict=True):
                    if (p.query_id, pid) not in positive_slots:
                        positive_slots[(p.query_id, pid)] = len(queries)
                        assert p.query_text is not None
                        queries.append(p.query_text)
                        documents.append(ptext)
        try:
            scores = self.scorer.score(queries, documents)
        except RecallwatchError:
            raise
        except Exception as exc:
            raise JudgeError(
                f"judge model {self.info.spec!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
        neg = scores[:n]
        pos = np.full(n, np.nan)
        for i, p in enumerate(pairs):
            slots = [
                positive_slots[(p.query_id, pid)]
                for pid in p.positive_ids
                if (p.query_id, pid) in positive_slots
            ]
            if slots:
                pos[i] = float(np.min(scores[slots]))
        # Without a relative margin the positive is not scored (NaN) and not used by the rule.
        fn = self.rule.false_negative(neg, np.nan_to_num(pos))
        return [
            Judgement(
                "relevant" if fn[i] else "not_relevant",
                float(neg[i]),
                None if np.isnan(pos[i]) else float(pos[i]),
            )
            for i in range(n)
        ]


@register
class ModelJudge(OracleKind):
    """``model:DIR`` (kind detected), ``bi-encoder:DIR``, ``cross-encoder:DIR``, ``proxy:DIR``."""

    prefixes = ("model", "cross-encoder", "bi-encoder", "proxy")
    usages = ("model:DIR", "cross-encoder:DIR", "bi-encoder:DIR", "proxy:DIR")
    listed = 30
    takes_path = True

    def open(self, spec: str, argument: str, options: OracleOptions) -> ModelOracle:
        """Load the judge model (its kind forced by the prefix, but for ``model``)."""
        prefix = spec.partition(":")[0]
        forced: dict[str, ModelKind] = {
            "bi-encoder": "bi-encoder",
            "proxy": "bi-encoder",
            "cross-encoder": "cross-encoder",
        }
        scorer = open_scorer(
            argument,
            kind=forced.get(prefix),
            device=options.device,
            batch_size=options.batch_size,
        )
        return ModelOracle(scorer, options.rule, spec=spec, proxy=prefix == "proxy")
