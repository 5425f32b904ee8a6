"""A sentence-transformers checkpoint directory as an ``Encoder``.

The checkpoint directory is a SentenceTransformer model directory (``modules.json``,
``config.json``, ``model.safetensors``, ...). It is loaded offline: nothing is downloaded.

Precision (``encoders.precision``): ``fp32`` is sentence-transformers' own ``encode``, unchanged.
``bf16``/``fp16`` encode with a reduced-precision copy of the model (``encoders.st_fast``). ``auto``
picks the device's native reduced precision, if any, once a parity probe on a few held-out texts
accepts it (``prepare``; else the first texts encoded); ``precision`` is then the one used.
``precision_report`` says what was asked, what was used, the probe's verdict and its probe shift.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from recallwatch.encoders.base import TextKind
from recallwatch.encoders.precision import (
    PARITY_MIN_COSINE,
    Capability,
    Parity,
    Precision,
    PrecisionReport,
    ProbeShift,
    Resolved,
    capability,
    parity,
    probe_sample,
    shift_or_why,
    taken_as_configured,
)
from recallwatch.errors import CheckpointError, ConfigError

__all__ = ["SentenceTransformerEncoder", "load_offline"]

log = logging.getLogger(__name__)


def load_offline(
    cls: Literal["SentenceTransformer", "CrossEncoder"], model_dir: Path, device: str
) -> Any:
    """Load a sentence-transformers model class from a local directory, never from a hub."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import sentence_transformers
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise CheckpointError(
            f"loading a {cls} needs the 'st' extra: pip install 'recallwatch[st]' "
            "(install the CPU build of torch first)",
            path=model_dir,
        ) from exc
    try:
        return getattr(sentence_transformers, cls)(
            str(model_dir), device=device, local_files_only=True
        )
    except Exception as exc:
        raise CheckpointError(
            f"cannot load the {cls} ({type(exc).__name__}: {exc}); is the checkpoint complete?",
            path=model_dir,
        ) from exc


class SentenceTransformerEncoder:
    """Encode texts with a SentenceTransformer loaded from a local checkpoint directory."""

    name = "sentence-transformers"

    def __init__(
        self,
        model_dir: Path | str,
        *,
        device: str = "cpu",
        batch_size: int = 32,
        max_seq_length: int | None = None,
        normalize: bool = False,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        show_progress: bool | None = None,
        precision: Precision = "fp32",
        capability_of: Capability = capability,
        parity_threshold: float = PARITY_MIN_COSINE,
        probe_texts: int = 8,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.device = device
        self.requested: Precision = precision
        self.parity_threshold = parity_threshold
        self.probe_texts = probe_texts
        #: The precision encodings are computed in; None while ``auto`` waits for its probe.
        self.precision: Resolved | None = None
        #: The parity probe's outcome (``auto`` only).
        self.parity: Parity | None = None
        #: What the evaluation stores: asked, used, the probe's verdict and probe shift.
        self.precision_report = taken_as_configured(precision, None, "the probe has not run")
        if precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ConfigError([("precision", f"unknown precision {precision!r}")])
        self.batch_size = batch_size
        self.normalize = normalize
        self.show_progress = sys.stderr.isatty() if show_progress is None else show_progress
        if not self.model_dir.is_dir():
            raise CheckpointError("checkpoint directory not found", path=self.model_dir)
        if not any((self.model_dir / f).is_file() for f in ("modules.json", "config.json")):
            raise CheckpointError(
                "not a sentence-transformers model directory (no modules.json or config.json)",
                path=self.model_dir,
            )
        self.model: Any = load_offline("SentenceTransformer", self.model_dir, device)
        if max_seq_length is not None:
            self.model.max_seq_length = max_seq_length
        prompts: dict[str, str] = dict(getattr(self.model, "prompts", {}) or {})
        self.prompts: dict[TextKind, str | None] = {
            "query": query_prompt if query_prompt is not None else prompts.get("query"),
            "document": (
                document_prompt if document_prompt is not None else prompts.get("document")
            ),
        }
        log.info(
            "loaded sentence-transformers model %s (dim %s, max_seq_length %s, device %s)",
            self.model_dir,
            self.dimension,
            self.model.max_seq_length,
            device,
        )
        self._candidate: Resolved | None = None
        if precision == "auto":
            self._candidate = capability_of(device)
            if self._candidate is None:
                log.info("precision auto: %s has no native reduced precision; using fp32", device)
                self.precision = "fp32"
                self.precision_report = taken_as_configured(
                    precision, "fp32", f"{device} has no native reduced precision"
                )
        elif precision == "fp32":
            self.precision = "fp32"
            self.precision_report = taken_as_configured(precision, "fp32", "fp32 as configured")
        else:
            self.precision = self._reduce(precision)
            why = (
                f"{precision} as configured"
                if self.precision == precision
                else "the model has no transformer module"
            )
            self.precision_report = taken_as_configured(precision, self.precision, why)

    def _reduce(self, precision: Resolved) -> Resolved:
        """Switch to a ``precision`` copy of the model; fp32 if the model has no transformer."""
        from recallwatch.encoders.st_fast import reduced_copy

        fast = reduced_copy(self.model, precision, self.device)
        if fast is None:
            log.warning("precision %s: the model has no transformer module; using fp32", precision)
            return "fp32"
        self.model = fast
        return precision

    def prepare(self, samples: Mapping[TextKind, Sequence[str]]) -> None:
        """Settle ``auto``: probe the candidate precision on a few of these held-out texts.

        The candidate is kept if every probe text's embedding has a cosine of at least
        ``parity_threshold`` to its fp32 embedding; otherwise the encoder stays in fp32 and the
        log says why. The probe texts are encoded one per batch and all in one batch, so both the
        unpadded and the padded way through the model are compared. No-op once settled.
        """
        if self.precision is not None or self._candidate is None:
            return
        from recallwatch.encoders.st_fast import reduced_copy

        candidate = self._candidate
        picked = {kind: probe_sample(texts, self.probe_texts) for kind, texts in samples.items()}
        picked = {kind: texts for kind, texts in picked.items() if texts}
        fast = reduced_copy(self.model, candidate, self.device)
        if fast is None or not picked:
            why = "the model has no transformer module" if fast is None else "no probe texts"
            log.warning("precision auto: %s; using fp32", why)
            self.precision = "fp32"
            self.precision_report = taken_as_configured("auto", "fp32", why)
            return
        reference, reduced = [], []
        for kind, texts in picked.items():
            want = self._run(self.model, texts, kind, len(texts))
            for batch_size in (1, len(texts)):
                reference.append(want)
                try:
                    reduced.append(self._run(fast, texts, kind, batch_size))
                except Exception as exc:  # a reduced copy that cannot run fails the probe
                    why = f"the {candidate} copy failed: {type(exc).__name__}: {exc}"
                    log.warning("precision auto: %s in the parity probe; using fp32", why)
                    self.precision = "fp32"
                    self.precision_report = PrecisionReport(
                        "auto", "fp32", "failed", candidate=candidate, note=why
                    )
                    return
        self.parity = parity(
            np.concatenate(reference), np.concatenate(reduced), candidate, self.parity_threshold
        )
        used: Resolved = candidate if self.parity.passed else "fp32"
        shift, note = self._shift(samples, fast)
        self.precision_report = self.parity.report("auto", used, shift, note)
        (log.info if self.parity.passed else log.warning)(
            "precision auto: %s; %s; using %s",
            self.parity.describe(),
            self.precision_report.describe_shift() or f"probe shift not measured: {note}",
            used,
        )
        if self.parity.passed:
            self.model = fast
        self.precision = used

    def _shift(
        self, samples: Mapping[TextKind, Sequence[str]], fast: Any
    ) -> tuple[ProbeShift | None, str]:
        """The probe shift of the reduced copy ``fast`` (None, and why, where not measured)."""
        return shift_or_why(
            samples,
            lambda texts, kind: self._run(self.model, texts, kind, self.batch_size),
            lambda texts, kind: self._run(fast, texts, kind, self.batch_size),
        )

    @property
    def dimension(self) -> int | None:
        """The model's embedding dimension."""
        getter = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        dim = getter()
        return None if dim is None else int(dim)

    def _run(
        self,
        model: Any,
        texts: Sequence[str],
        kind: TextKind,
        batch_size: int,
        progress: bool = False,
    ) -> npt.NDArray[np.float32]:
        out = model.encode(
            list(texts),
            batch_size=batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
            prompt=self.prompts[kind] or None,
        )
        return np.asarray(out, dtype=np.float32)

    def encode(self, texts: Sequence[str], kind: TextKind) -> npt.NDArray[np.float32]:
        """Encode queries or documents with the configured prompt for that kind."""
        if self.precision is None:
            self.prepare({kind: texts})
        return self._run(self.model, texts, kind, self.batch_size, self.show_progress)
