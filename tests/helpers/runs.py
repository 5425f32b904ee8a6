"""Training runs on disk and the configs that watch them: checkpoints with precomputed
embeddings (complete, or still being written) and small config documents."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from recallwatch.synthetic.heldout import SyntheticSet, write_precomputed_checkpoint


def write_checkpoint(
    run_dir: Path,
    step: int,
    synthetic: SyntheticSet,
    *,
    noise: float = 0.6,
    complete: bool = True,
    mining: dict[str, Any] | None = None,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write ``checkpoint-<step>`` with precomputed embeddings; ``complete`` writes the marker."""
    ckpt = write_precomputed_checkpoint(
        run_dir / f"checkpoint-{step}", synthetic, noise=noise, seed=step
    )
    if mining is not None:
        (ckpt / "mining.json").write_text(json.dumps(mining), encoding="utf-8")
    for name, text in (extra_files or {}).items():
        (ckpt / name).write_text(text, encoding="utf-8")
    if complete:
        mark_complete(ckpt, step)
    return ckpt


def mark_complete(ckpt: Path, step: int) -> None:
    """Write the ready marker the trainer writes last."""
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}), encoding="utf-8")


def half_written(run_dir: Path, step: int, synthetic: SyntheticSet) -> Path:
    """A checkpoint the trainer is still writing: query embeddings only, no ready marker."""
    ckpt = run_dir / f"checkpoint-{step}" / "eval_embeddings"
    ckpt.mkdir(parents=True)
    np.save(ckpt / "queries.npy", np.zeros((3, 4), dtype=np.float32))
    return ckpt.parent


def config_doc(
    tmp: Path, heldout: Path, run_dir: Path, *, encoder: str = "precomputed", **sections: Any
) -> dict[str, Any]:
    """A small config document: one held-out set, one run, fast polling."""
    doc: dict[str, Any] = {
        "store": {"path": str(tmp / "state" / "recallwatch.db")},
        "http": {"listen": "127.0.0.1:0"},
        "poll_interval_seconds": 0.2,
        "evaluation": {"encoder": encoder, "ks": [1, 10, 100], "timeout_seconds": 120},
        "heldout": [{"name": "synth", "path": str(heldout)}],
        "runs": [{"name": "demo", "directory": str(run_dir), "settle_seconds": 0.3}],
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return doc


def write_config(path: Path, doc: dict[str, Any]) -> Path:
    """Write a config document as YAML."""
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def fn_section(run: Path, **extra: Any) -> dict[str, Any]:
    """A false_negatives section auditing with the simulated set's dense qrels."""
    return {"corpus": str(run / "corpus"), "oracles": [f"qrels:{run / 'audit.tsv'}"], **extra}


def age(path: Path, seconds: float) -> None:
    """Move every modification time under ``path`` ``seconds`` into the past."""
    for p in [path, *path.rglob("*")]:
        st = p.stat()
        os.utime(p, (st.st_atime - seconds, st.st_mtime - seconds), follow_symlinks=False)
