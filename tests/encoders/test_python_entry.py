"""The ``python:module:function`` encoder: calls per shard, bad output, failures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from recallwatch.encoders import open_source
from recallwatch.errors import EmbeddingError, EncoderError
from recallwatch.evaluation.pipeline import evaluate


def test_python_entry_point_encoder(synth, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    _s, heldout, ckpt = synth
    # A user module that encodes texts from the synthetic latent vectors by id.
    (tmp_path / "user_enc.py").write_text(
        "import numpy as np, pathlib\n"
        "CALLS = []\n"
        "def encode(checkpoint, texts, kind):\n"
        "    CALLS.append((pathlib.Path(checkpoint).name, kind, len(texts)))\n"
        "    return np.ones((len(texts), 4), dtype=np.float64) + np.arange(len(texts))[:, None]\n"
        "def wrong_rows(checkpoint, texts, kind):\n"
        "    return np.ones((len(texts) + 1, 4))\n"
        "def boom(checkpoint, texts, kind):\n"
        "    raise RuntimeError('cuda out of memory')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    ev = evaluate(heldout, open_source("python:user_enc:encode", ckpt), ks=(1,), shard_rows=100)
    assert ev.dim == 4 and ev.num_docs == 300
    calls = sys.modules["user_enc"].CALLS
    assert calls[0] == ("ckpt", "query", 40)
    assert [c[2] for c in calls[1:]] == [100, 100, 100]
    assert all(c[1] == "document" for c in calls[1:])
    with pytest.raises(EmbeddingError, match=r"expected 40 rows \(one per text\), got 41"):
        evaluate(heldout, open_source("python:user_enc:wrong_rows", ckpt), ks=(1,))
    with pytest.raises(
        EncoderError, match="failed on query embeddings: RuntimeError: cuda out of memory"
    ):
        evaluate(heldout, open_source("python:user_enc:boom", ckpt), ks=(1,))
