"""A ``python:`` encoder for fault tests: deterministic, and able to hold or crash on demand.

``python:tests.daemon.encoders:encode`` embeds each text as a seeded random unit vector. A
``hold`` file in the checkpoint makes it write ``started`` and wait until ``hold`` is removed (so
a test can kill the daemon mid-evaluation); a ``crash`` file makes the process die abruptly.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt


def encode(checkpoint: Path, texts: list[str], kind: str) -> npt.NDArray[np.float32]:
    """Embed texts; hold or crash when the checkpoint asks for it."""
    if (checkpoint / "crash").exists():
        os._exit(9)
    if (checkpoint / "hold").exists():
        (checkpoint / "started").write_text(str(os.getpid()))
        deadline = time.monotonic() + 120
        while (checkpoint / "hold").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    out = np.empty((len(texts), 16), dtype=np.float32)
    for i, text in enumerate(texts):
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        out[i] = np.random.default_rng(seed).standard_normal(16)
    return out
