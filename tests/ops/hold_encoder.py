"""A ``python:`` encoder whose evaluations never finish while the checkpoint holds a ``hold`` file.

``python:tests.ops.hold_encoder:encode`` waits while ``<checkpoint>/hold`` exists (the test removes
it at teardown, so the evaluation's child process ends), then embeds each text as a seeded random
vector.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

#: A bound on the hold, so that a child process left behind by a killed test still ends.
MAX_HOLD_SECONDS = 1800


def encode(checkpoint: Path, texts: list[str], kind: str) -> npt.NDArray[np.float32]:
    """Hold while ``hold`` exists, then embed ``texts``."""
    deadline = time.monotonic() + MAX_HOLD_SECONDS
    while (checkpoint / "hold").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    out = np.empty((len(texts), 16), dtype=np.float32)
    for i, text in enumerate(texts):
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        out[i] = np.random.default_rng(seed).standard_normal(16)
    return out
