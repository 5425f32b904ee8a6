"""The openvino encoder on the real all-MiniLM-L6-v2 and a SciFact slice: the model's own
embeddings (against the cached sentence-transformers fp32 ones), token ids cached across
checkpoints of one tokenizer, and ``auto``'s parity probe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino")

from recallwatch.encoders.openvino import OpenVINOEncoder, TokenCache
from recallwatch.encoders.precision import PARITY_MIN_COSINE, ProbeTexts, capability
from recallwatch.heldout.beir import document_text


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.einsum("ij,ij->i", a, b)


def test_openvino_embeddings_are_the_models_and_token_ids_are_cached(
    tmp_path: Path, scifact_dir: Path, minilm_dir: Path, scifact_minilm
) -> None:  # type: ignore[no-untyped-def]
    ids, texts = [], []
    with (scifact_dir / "corpus.jsonl").open(encoding="utf-8") as fh:
        for line, _ in zip(fh, range(40), strict=False):
            doc = json.loads(line)
            ids.append(doc["_id"])
            texts.append(document_text(doc.get("title", ""), doc.get("text", "")))
    want = scifact_minilm.corpus[[scifact_minilm.corpus_ids.index(d) for d in ids]]
    cache = TokenCache(tmp_path / "tokens")
    first = OpenVINOEncoder(minilm_dir, precision="fp32", batch_size=16, token_cache=cache)
    got = first.encode(texts, "document")
    assert first.precision == "fp32"
    # Compiled for throughput: a batch in flight on every stream (7 and 16 both leave batches
    # queued behind the requests; the rows still land where their texts are).
    compiled = first._compiled_for("fp32")
    assert str(compiled.get_property("PERFORMANCE_HINT")) == "THROUGHPUT"
    assert first._requests(compiled) == int(
        compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
    )
    assert _cos(got, want).min() >= 0.9999
    assert (cache.hits, cache.misses) == (0, 1)
    # Another checkpoint of the same tokenizer: the ids come from the cache, the numbers agree.
    second = OpenVINOEncoder(minilm_dir, precision="fp32", batch_size=7, token_cache=cache)
    again = second.encode(texts, "document")
    assert (cache.hits, cache.misses) == (1, 1)
    assert _cos(again, got).min() >= 0.99999

    auto = OpenVINOEncoder(minilm_dir, precision="auto", batch_size=16, token_cache=cache)
    auto.prepare({"document": texts})
    if capability("cpu") is None:
        assert auto.precision == "fp32" and auto.parity is None
    else:
        assert auto.parity is not None and auto.parity.passed
        assert auto.precision == "bf16"
        assert _cos(auto.encode(texts, "document"), want).min() >= PARITY_MIN_COSINE
    report = auto.precision_report
    assert report.used == auto.precision
    assert report.verdict == ("not-run" if auto.parity is None else "passed")
    assert report.shift is None  # plain texts, no judgements: no probe shift
    assert first.precision_report.verdict == "not-run"
    assert first.precision_report.note == "fp32 as configured"
    if auto.parity is not None:
        # With judgements (each of 4 texts, as a query, finds itself): the shift is measured.
        probe = ProbeTexts(texts[:4], texts, [[0], [1], [2], [3]])
        shift, note = auto._shift(probe, "bf16")
        assert shift is not None and note == "" and shift.queries == 4
        assert shift.documents == min(len(texts), 48) and shift.recall_fp32 == 1.0


def test_a_compiled_model_without_the_request_count_runs_one_batch_at_a_time() -> None:
    class NoProperty:
        def get_property(self, name: str) -> int:
            raise RuntimeError(f"unsupported property {name}")

    class Zero:
        def get_property(self, name: str) -> int:
            return 0

    assert OpenVINOEncoder._requests(NoProperty()) == 1
    assert OpenVINOEncoder._requests(Zero()) == 1
