"""Fixtures of the encoder tests: a synthetic held-out set with a precomputed checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from recallwatch.evaluation.heldout import HeldoutSet, load_heldout
from recallwatch.synthetic.heldout import SyntheticSet, write_heldout, write_precomputed_checkpoint


@pytest.fixture
def synth(tmp_path: Path) -> tuple[SyntheticSet, HeldoutSet, Path]:
    s = write_heldout(tmp_path / "heldout", num_docs=300, num_queries=40, dim=16, seed=5)
    ckpt = write_precomputed_checkpoint(tmp_path / "ckpt", s, noise=0.5, seed=2)
    return s, load_heldout(s.path, "test"), ckpt
