"""The sentence-transformers encoder: missing, foreign and corrupt checkpoints."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from recallwatch.encoders import open_source
from recallwatch.errors import CheckpointError


def test_st_checkpoint_errors(tmp_path: Path, minilm_dir: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint directory not found"):
        open_source("st", tmp_path / "missing")
    with pytest.raises(CheckpointError, match="not a sentence-transformers model directory"):
        open_source("st", tmp_path)
    broken = tmp_path / "checkpoint-7"
    shutil.copytree(minilm_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"checkpoint-7: cannot load the SentenceTransformer"):
        open_source("st", broken)
