"""``RecallwatchCallback``: a transformers ``TrainerCallback`` that makes each saved checkpoint
complete for recallwatch (``mining.json``, optional ``eval_embeddings/``, the ready marker last)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from transformers import TrainerCallback

from recallwatch.integrations.sentence_transformers.files import (
    MINING_FILE,
    READY_MARKER,
    atomic_write,
)
from recallwatch.integrations.sentence_transformers.identity import fingerprint

log = logging.getLogger(__name__)


# -- the callback ---------------------------------------------------------------------------

EncodeFn = Callable[[Any, Sequence[str], str], Any]


class RecallwatchCallback(TrainerCallback):
    """A transformers ``TrainerCallback`` that makes each checkpoint complete for recallwatch.

    On each save (``on_save``, which transformers calls after the checkpoint's model, optimizer
    and ``trainer_state.json`` are written and old checkpoints rotated away), on the main process
    only (``state.is_world_process_zero``), it

    1. copies the active ``<run_dir>/mining.json`` (the one ``mine`` wrote last) into the
       checkpoint, so a re-mining mid-run is attributed to exactly the checkpoints saved after it;
    2. with ``heldout``, encodes that BEIR directory's corpus and the queries of ``split`` with the
       model being trained, on the device it trains on, into ``<checkpoint>/eval_embeddings/``
       (``queries.npy``, ``corpus.npy``, ``query_ids.txt``, ``corpus_ids.txt``: the daemon's
       ``precomputed`` encoder), written in a hidden directory and renamed into place;
    3. writes ``ready_marker`` (default ``recallwatch.ready``) last.

    Configure the run with ``ready_marker: recallwatch.ready`` so the daemon waits for all of it.
    ``trainer_state.json`` (the daemon's default marker) exists *before* ``on_save`` runs; with it
    the daemon relies on ``settle_seconds`` alone, which must then exceed the time this callback
    takes (encoding the held-out set). ``ready_marker=None`` writes no marker.

    The embeddings match the daemon's ``st`` encoder on the saved checkpoint: the same texts
    (``title + " " + text``), ``model.encode`` with the model's ``query``/``document`` prompts
    (or ``query_prompt``/``document_prompt``), ``normalize`` as configured there (default off).
    For a model without ``encode`` (a plain ``Trainer``), pass ``encode_fn(model, texts, kind)``
    returning a float matrix; ``kind`` is ``"query"`` or ``"document"``.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str] | None = None,
        *,
        mining_metadata: str = MINING_FILE,
        heldout: str | os.PathLike[str] | None = None,
        split: str = "test",
        batch_size: int = 32,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        normalize: bool = False,
        encode_fn: EncodeFn | None = None,
        ready_marker: str | None = READY_MARKER,
    ) -> None:
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.mining_metadata = mining_metadata
        self.heldout = None if heldout is None else Path(heldout)
        self.split = split
        self.batch_size = batch_size
        self.query_prompt = query_prompt
        self.document_prompt = document_prompt
        self.normalize = normalize
        self.encode_fn = encode_fn
        self.ready_marker = ready_marker
        self._texts: tuple[list[str], list[str], list[str], list[str]] | None = None

    def _heldout_texts(self) -> tuple[list[str], list[str], list[str], list[str]]:
        if self._texts is None:
            from recallwatch.heldout.sets import load_heldout

            assert self.heldout is not None
            h = load_heldout(self.heldout, self.split)
            self._texts = (
                list(h.query_ids),
                list(h.query_texts),
                list(h.corpus_ids),
                list(h.corpus_texts),
            )
        return self._texts

    def _encode(self, model: Any, texts: Sequence[str], kind: str) -> npt.NDArray[np.float32]:
        if self.encode_fn is not None:
            return np.asarray(self.encode_fn(model, texts, kind), dtype=np.float32)
        if not hasattr(model, "encode"):
            raise TypeError(
                f"{type(model).__name__} has no encode(): pass encode_fn=... to RecallwatchCallback"
            )
        prompts: dict[str, str] = dict(getattr(model, "prompts", {}) or {})
        given = self.query_prompt if kind == "query" else self.document_prompt
        prompt = given if given is not None else prompts.get(kind)
        out = model.encode(
            list(texts),
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
            prompt=prompt or None,
        )
        return np.asarray(out, dtype=np.float32)

    def write_embeddings(self, model: Any, checkpoint: Path) -> Path:
        """Encode the held-out set with ``model`` into ``<checkpoint>/eval_embeddings``."""
        qids, qtexts, dids, dtexts = self._heldout_texts()
        was_training = bool(getattr(model, "training", False))
        try:
            import torch

            with torch.no_grad():
                queries = self._encode(model, qtexts, "query")
                corpus = self._encode(model, dtexts, "document")
        finally:
            if was_training and hasattr(model, "train"):
                model.train()
        final = checkpoint / "eval_embeddings"
        tmp = Path(tempfile.mkdtemp(prefix=".eval_embeddings.", dir=checkpoint))
        try:
            np.save(tmp / "queries.npy", np.ascontiguousarray(queries, dtype=np.float32))
            np.save(tmp / "corpus.npy", np.ascontiguousarray(corpus, dtype=np.float32))
            (tmp / "query_ids.txt").write_text("\n".join(qids) + "\n", encoding="utf-8")
            (tmp / "corpus_ids.txt").write_text("\n".join(dids) + "\n", encoding="utf-8")
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def finish_checkpoint(self, checkpoint: Path, run_dir: Path, model: Any = None) -> None:
        """Do for one checkpoint directory what ``on_save`` does (also usable by hand)."""
        marker = None if self.ready_marker is None else checkpoint / self.ready_marker
        if marker is not None:
            with contextlib.suppress(FileNotFoundError):
                marker.unlink()  # a checkpoint written again: not ready until finished again
        source = run_dir / self.mining_metadata
        mining_fp = None
        if source.is_file():
            content = source.read_bytes()
            atomic_write(checkpoint / self.mining_metadata, content)
            with contextlib.suppress(ValueError):
                mining_fp = fingerprint(json.loads(content))
        else:
            log.warning(
                "no %s in %s: checkpoint %s carries no mining metadata",
                self.mining_metadata,
                run_dir,
                checkpoint.name,
            )
        embeddings = None
        if self.heldout is not None:
            if model is None:
                raise ValueError("encoding the held-out set needs the model")
            embeddings = self.write_embeddings(model, checkpoint)
        if marker is not None:
            atomic_write(
                marker,
                json.dumps(
                    {
                        "mining_fingerprint": mining_fp,
                        "eval_embeddings": None if embeddings is None else embeddings.name,
                    },
                    sort_keys=True,
                )
                + "\n",
            )

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """Finish the checkpoint just saved (main process only)."""
        if not state.is_world_process_zero:
            return control
        output_dir = Path(args.output_dir)
        checkpoint = output_dir / f"checkpoint-{state.global_step}"
        if not checkpoint.is_dir():
            log.warning("checkpoint %s not found after save; nothing written", checkpoint)
            return control
        self.finish_checkpoint(checkpoint, self.run_dir or output_dir, kwargs.get("model"))
        return control
