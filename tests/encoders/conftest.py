"""Fixtures of the encoder tests: a synthetic held-out set with a precomputed checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from recallwatch.heldout.sets import HeldoutSet, load_heldout
from recallwatch.synthetic.heldout import SyntheticSet, write_heldout, write_precomputed_checkpoint


@pytest.fixture
def synth(tmp_path: Path) -> tuple[SyntheticSet, HeldoutSet, Path]:
    s = write_heldout(tmp_path / "heldout", num_docs=300, num_queries=40, dim=16, seed=5)
    ckpt = write_precomputed_checkpoint(tmp_path / "ckpt", s, noise=0.5, seed=2)
    return s, load_heldout(s.path, "test"), ckpt


@pytest.fixture
def bf16_fragile_minilm(tmp_path: Path, minilm_dir: Path) -> Path:
    """A real MiniLM checkpoint whose numbers do not survive bf16 linear layers: each attention
    output projection's bias carries a constant offset of 256, which the LayerNorm after it removes
    exactly in fp32, while a bf16 output (8 bits of mantissa: steps of 2 at 256) rounds away the
    whole signal riding on it."""
    import shutil

    from safetensors.torch import load_file, save_file

    ckpt = tmp_path / "checkpoint-fragile"
    shutil.copytree(minilm_dir, ckpt, ignore=shutil.ignore_patterns("model.safetensors"))
    weights = load_file(str(minilm_dir / "model.safetensors"))
    for name in weights:
        if name.endswith("attention.output.dense.bias"):
            weights[name] = weights[name] + 256
    save_file(weights, str(ckpt / "model.safetensors"), metadata={"format": "pt"})
    return ckpt
