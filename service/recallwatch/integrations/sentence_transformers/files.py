"""The files the integration writes: their names, atomic writes, and which process writes them."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from recallwatch.mining.remine import POOL_FILE

__all__ = [
    "MINED_DIR",
    "MINING_FILE",
    "POOL_FILE",
    "READY_MARKER",
    "SCHEMA",
    "atomic_write",
    "is_main_process",
]

MINING_FILE = "mining.json"
READY_MARKER = "recallwatch.ready"
MINED_DIR = "recallwatch-mining"
SCHEMA = "recallwatch-mining/1"


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write a file so that readers see the old content or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def is_main_process() -> bool:
    """Rank 0 of a distributed job (or a job that is not distributed)."""
    with contextlib.suppress(Exception):
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return int(dist.get_rank()) == 0
    return os.environ.get("RANK", "0") == "0"
