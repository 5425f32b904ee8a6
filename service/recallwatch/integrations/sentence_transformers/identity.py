"""What makes two minings the same: canonical JSON, fingerprints, weight hashes, the model
identity and the arguments of ``mine_hard_negatives`` that change what is mined."""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)


#: ``mine_hard_negatives`` arguments that do not change what is mined (speed, logging, caching).
NOT_MINING = frozenset(
    {"batch_size", "faiss_batch_size", "use_multi_process", "verbose", "cache_folder"}
)
#: Model arguments, recorded as their identity (name or path and weights hash).
MODEL_ARGS = frozenset({"dataset", "model", "cross_encoder", "corpus"})


# -- canonical JSON and hashes ---------------------------------------------------------------


def canonical_json(value: Any) -> str:
    """Canonical JSON (sorted keys, no whitespace), as the daemon fingerprints mining metadata."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(value: Any) -> str:
    """SHA-256 (hex) of the canonical JSON: the daemon's mining fingerprint of ``mining.json``."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def weights_sha256(model: Any) -> str:
    """SHA-256 of a torch module's state dict: every tensor's name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(name.encode("utf-8"))
        digest.update(str(t.dtype).encode("ascii"))
        digest.update(str(tuple(t.shape)).encode("ascii"))
        digest.update(t.reshape(-1).view(_uint8()).numpy().tobytes())
    return digest.hexdigest()


def _uint8() -> Any:
    import torch

    return torch.uint8


def texts_sha256(texts: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for t in texts:
        digest.update(json.dumps(t, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def sha16(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# -- the model identity and the arguments ----------------------------------------------------


def _name_or_path(model: Any) -> str | None:
    """The name or path a sentence-transformers model (or CrossEncoder) was loaded from."""
    candidates: list[Any] = []
    with contextlib.suppress(Exception):
        candidates.append(model[0].auto_model.config._name_or_path)
    with contextlib.suppress(Exception):
        candidates.append(model.model.config._name_or_path)
    with contextlib.suppress(Exception):
        candidates.append(model.config._name_or_path)
    with contextlib.suppress(Exception):
        candidates.append(model.model_card_data.base_model)
    for c in candidates:
        if isinstance(c, str) and c:
            return c
    return None


def model_identity(model: Any) -> dict[str, Any]:
    ident: dict[str, Any] = {
        "name_or_path": _name_or_path(model),
        "class": type(model).__name__,
        "weights_sha256": weights_sha256(model),
    }
    # What else changes the embeddings: the module stack and its settings, the similarity.
    with contextlib.suppress(Exception):
        ident["modules"] = [repr(m) for m in model]
    for attr in ("max_seq_length", "similarity_fn_name", "prompts", "default_prompt_name"):
        with contextlib.suppress(Exception):
            value = getattr(model, attr)
            if value is None or isinstance(value, str | int | float | bool | dict):
                ident[attr] = value
    return ident


def bind(dataset: Any, model: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    from sentence_transformers.util import mine_hard_negatives

    sig = inspect.signature(mine_hard_negatives)
    bound = sig.bind(dataset, model, **kwargs)  # TypeError for an unknown argument
    bound.apply_defaults()
    return dict(bound.arguments)


def normalised(args: dict[str, Any]) -> dict[str, Any]:
    """The arguments as the function resolves its deprecated spellings."""
    a = dict(args)
    if a.get("as_triplets") is not None:
        a["output_format"] = "triplet" if a["as_triplets"] else "n-tuple"
    if a.get("include_positives"):
        a["output_format"] = "n-tuple"
    if a.get("output_format") == "n-tuple-scores":
        a["output_format"] = "n-tuple"
        a["output_scores"] = True
    if a.get("margin") is not None:
        a["absolute_margin"] = a["margin"]
    a.pop("as_triplets", None)
    a.pop("margin", None)
    columns = list(a["dataset"].column_names)
    if not a.get("anchor_column_name") or a["anchor_column_name"] not in columns:
        a["anchor_column_name"] = columns[0]
    if not a.get("positive_column_name") or a["positive_column_name"] not in columns:
        a["positive_column_name"] = columns[1] if len(columns) > 1 else None
    return a


def mining_arguments(args: dict[str, Any]) -> dict[str, Any]:
    """The arguments that change what is mined (plain values), from ``bind``'s result."""
    a = normalised(args)
    out: dict[str, Any] = {}
    for key, value in sorted(a.items()):
        if key in NOT_MINING or key in MODEL_ARGS:
            continue
        out[key] = value
    return out
