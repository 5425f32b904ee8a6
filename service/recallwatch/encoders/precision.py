"""Numeric precision of a model encoder: the names, what a device supports, the parity probe.

``auto`` picks a reduced precision where the device computes it natively (a CPU with AVX-512 BF16
or AMX, a CUDA GPU), but only after a **parity probe**: a few held-out texts are encoded in fp32
and in the reduced precision, and the reduced one is kept only if every probe embedding has a
cosine of at least ``PARITY_MIN_COSINE`` to its fp32 twin. Otherwise the encoder stays in fp32 and
says why in the log. ``fp32``, ``bf16`` and ``fp16`` are taken as asked, without a probe.

This module decides; it imports no torch (``capability`` imports it only for CUDA devices).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

__all__ = [
    "PARITY_MIN_COSINE",
    "PRECISIONS",
    "Capability",
    "Parity",
    "Precision",
    "Resolved",
    "capability",
    "cpu_flags",
    "parity",
    "probe_sample",
]

Precision = Literal["auto", "fp32", "bf16", "fp16"]
Resolved = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)

#: The lowest cosine between a probe text's reduced-precision and fp32 embeddings that ``auto``
#: accepts. all-MiniLM-L6-v2 in bf16 measures 0.9999 on SciFact texts. A guard against a model the
#: reduced precision breaks, not a promise of identical rankings: near-ties still flip (recall@10
#: +0.0067 on SciFact test on an AMX-BF16 CPU), which is why ``fp32`` is the configured default.
PARITY_MIN_COSINE = 0.999
#: CPU flags (``/proc/cpuinfo``) of native bf16 arithmetic.
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})

#: ``capability(device)`` -> the reduced precision a device computes natively, or None.
Capability = Callable[[str], "Resolved | None"]


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU feature flags the kernel reports (empty where there is no ``/proc/cpuinfo``)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def capability(device: str, *, cpuinfo: Path = Path("/proc/cpuinfo")) -> Resolved | None:
    """The reduced precision ``device`` computes natively, or None (then ``auto`` is fp32).

    CPU: bf16 where the CPU has AVX-512 BF16 or AMX (emulated bf16 is slower than fp32). CUDA: bf16
    where the GPU supports it (Ampere and newer), else fp16. Other devices: None.
    """
    kind = device.split(":", 1)[0]
    if kind == "cpu":
        return "bf16" if cpu_flags(cpuinfo) & BF16_CPU_FLAGS else None
    if kind == "cuda":
        import torch

        if not torch.cuda.is_available():
            return None
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return None


@dataclass(frozen=True)
class Parity:
    """The outcome of a parity probe."""

    candidate: Resolved
    #: embeddings compared (the st encoder encodes each probe text two ways: 2 per text)
    texts: int
    min_cosine: float
    threshold: float

    @property
    def passed(self) -> bool:
        """Whether the candidate precision is close enough to fp32."""
        return self.min_cosine >= self.threshold

    def describe(self) -> str:
        """One line for the log."""
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"parity probe {verdict}: {self.candidate} vs fp32 on {self.texts} probe embeddings, "
            f"minimum cosine {self.min_cosine:.6f} (threshold {self.threshold})"
        )


def parity(
    reference: npt.NDArray[np.floating],
    candidate: npt.NDArray[np.floating],
    precision: Resolved,
    threshold: float = PARITY_MIN_COSINE,
) -> Parity:
    """Compare the candidate precision's embeddings of the probe texts with the fp32 ones.

    A non-finite or all-zero row counts as cosine -1 (a failed probe, never a crash).
    """
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.shape != cand.shape or ref.ndim != 2:
        return Parity(precision, len(ref), -1.0, threshold)
    with np.errstate(all="ignore"):
        norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
        cos = np.einsum("ij,ij->i", ref, cand) / norms
    cos = np.where(np.isfinite(cos), cos, -1.0)
    return Parity(precision, len(ref), float(cos.min(initial=1.0)), threshold)


def probe_sample(texts: Sequence[str], count: int) -> list[str]:
    """``count`` texts spread evenly over ``texts`` (all of them when there are fewer)."""
    n = len(texts)
    if n <= count:
        return list(texts)
    picks = np.linspace(0, n - 1, num=count).round().astype(np.int64)
    return [texts[int(i)] for i in picks]
