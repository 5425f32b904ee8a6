"""A local Ray for the Ray backend's tests, and a ``python:`` encoder whose worker dies once.

``ray_cluster`` starts Ray in the test process (2 CPUs, a small object store, no dashboard) once
per test module and shuts it down after; the backend then uses that connection. Its workers get
the repository on ``PYTHONPATH`` so they can import the test encoder below. Tests that use it
import the fixture: ``from tests.helpers.ray_cluster import ray_cluster``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import numpy.typing as npt
import pytest

REPO = Path(__file__).resolve().parents[2]
#: ``python:`` spec of ``encode_or_die_once``.
DYING_ENCODER = "python:tests.helpers.ray_cluster:encode_or_die_once"
#: In a checkpoint: the first document batch to see it renames it to ``DIED`` and kills its worker.
DIE_ONCE, DIED = "die-once", "died"


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[ModuleType]:
    """Ray on this machine with 2 CPUs, for one test module."""
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2,
        object_store_memory=256 << 20,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}},
    )
    try:
        yield ray
    finally:
        ray.shutdown()


def encode_or_die_once(checkpoint: Path, texts: list[str], kind: str) -> npt.NDArray[np.float32]:
    """Embed each text as a seeded random vector; die abruptly on the first document batch that
    finds ``DIE_ONCE`` in the checkpoint (only one batch wins the rename)."""
    if kind == "document" and (checkpoint / DIE_ONCE).exists():
        try:
            os.rename(checkpoint / DIE_ONCE, checkpoint / DIED)
        except FileNotFoundError:
            pass  # another shard's worker took it
        else:
            os._exit(17)
    out = np.empty((len(texts), 24), dtype=np.float32)
    for i, text in enumerate(texts):
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        # One text in 5 shares one vector: exact ties, so the tie order across shards matters.
        out[i] = np.random.default_rng(0 if seed % 5 == 0 else seed).standard_normal(24)
    return out
