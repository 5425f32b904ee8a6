"""Numeric precision of a model encoder: the names, what a device supports, the parity probe.

``auto`` picks a reduced precision where the device computes it natively (a CPU with AVX-512 BF16
or AMX, a CUDA GPU), but only after a **parity probe**: a few held-out texts are encoded in fp32
and in the reduced precision, and the reduced one is kept only if every probe embedding has a
cosine of at least ``PARITY_MIN_COSINE`` to its fp32 twin. Otherwise the encoder stays in fp32 and
says why in the log. ``fp32``, ``bf16`` and ``fp16`` are taken as asked, without a probe.

With the probe, the encoder also measures the **probe shift** (``measure_shift``): a few held-out
queries (``ShiftSample``: the probe's, those with a judged document) ranked against a small
sub-corpus (their relevant documents, documents sharing their words, documents spread over the
corpus) with fp32 embeddings and with the candidate's; recall@10 / nDCG@10 there and the queries
whose hits changed. Not the shift on the full held-out set. The
encoder's ``precision_report`` (``records.precision.PrecisionReport``) carries both to the store.

This module decides; it imports no torch (``capability`` imports it only for CUDA devices).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from recallwatch.records.precision import PrecisionReport, ProbeShift, ProbeVerdict

log = logging.getLogger(__name__)

__all__ = [
    "PARITY_MIN_COSINE",
    "PRECISIONS",
    "SHIFT_DOCUMENTS",
    "SHIFT_K",
    "SHIFT_QUERIES",
    "SHIFT_SCANNED",
    "Capability",
    "Parity",
    "Precision",
    "PrecisionReport",
    "ProbeShift",
    "ProbeTexts",
    "ProbeVerdict",
    "Resolved",
    "ShiftSample",
    "capability",
    "cpu_flags",
    "look_alikes",
    "measure_shift",
    "parity",
    "probe_sample",
    "probe_shift",
    "shift_or_why",
    "shift_sample",
    "taken_as_configured",
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

    def report(
        self, requested: str, used: str, shift: ProbeShift | None, note: str = ""
    ) -> PrecisionReport:
        """The evaluation's ``PrecisionReport`` of this probe (``note``: why no shift)."""
        return PrecisionReport(
            requested=requested,
            used=used,
            verdict="passed" if self.passed else "failed",
            candidate=self.candidate,
            texts=self.texts,
            min_cosine=self.min_cosine,
            threshold=self.threshold,
            shift=shift,
            note="" if shift is not None else note,
        )


def taken_as_configured(requested: str, used: str | None, why: str) -> PrecisionReport:
    """The report of an encoder that ran no probe (``why``: e.g. "fp32 as configured")."""
    return PrecisionReport(requested=requested, used=used, verdict="not-run", note=why)


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


# -- the probe shift ---------------------------------------------------------------------------

#: The cutoff of the probe shift (recall@k, nDCG@k on the probe's sub-corpus).
SHIFT_K = 10
#: Probe queries of the probe shift: spread over the held-out queries as the parity probe's
#: are, those with a judged document.
SHIFT_QUERIES = 8
#: Documents in the probe shift's sub-corpus: the probe queries' relevant documents, each
#: query's look-alikes (``look_alikes``), then documents spread over the corpus up to this many.
SHIFT_DOCUMENTS = 48
#: Documents (spread over the corpus) searched for look-alikes: bounded work on any corpus.
SHIFT_SCANNED = 4096
_WORD = re.compile(r"[a-z0-9]{4,}")

Kind = Literal["query", "document"]


class ProbeTexts(dict[Kind, Sequence[str]]):
    """The held-out texts an encoder's probe draws from, with their judgements.

    A mapping ``{"query": texts, "document": texts}`` (what ``prepare`` took before judgements
    were passed) whose ``relevant[i]`` holds the positions in the documents of query i's
    relevant documents.
    """

    def __init__(
        self,
        queries: Sequence[str],
        documents: Sequence[str],
        relevant: Sequence[Sequence[int]],
    ) -> None:
        super().__init__({"query": queries, "document": documents})
        self.relevant = relevant


@dataclass(frozen=True)
class ShiftSample:
    """The probe shift's queries, its sub-corpus, and each query's relevant sub-corpus rows."""

    queries: list[str]
    documents: list[str]
    relevant: list[frozenset[int]]


def _spread(n: int, count: int) -> list[int]:
    if n <= count:
        return list(range(n))
    return [int(i) for i in np.linspace(0, n - 1, num=count).round().astype(np.int64)]


def _words(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text.lower()))


def look_alikes(query: str, candidates: Mapping[int, frozenset[str]], count: int) -> list[int]:
    """The ``count`` candidate documents (position -> its words) sharing the most words (4+
    letters) with ``query``, the lower position first on ties: cheap competitors that make the
    probe's rankings contested."""
    words = _words(query)
    scored = sorted(candidates, key=lambda d: (-len(words & candidates[d]), d))
    return scored[:count]


def shift_sample(
    texts: Mapping[Kind, Sequence[str]],
    count: int = SHIFT_QUERIES,
    documents: int = SHIFT_DOCUMENTS,
    scanned: int = SHIFT_SCANNED,
) -> ShiftSample | None:
    """The probe's queries (``probe_sample``'s picks) with a judged document among ``texts``, and
    a sub-corpus of at most ``documents`` (more only where their relevant documents are more):
    their relevant documents, then each query's look-alikes among ``scanned`` documents spread
    over the corpus, then documents spread over the corpus. None without judgements (``texts``
    is no ``ProbeTexts``) or judged queries."""
    relevant = getattr(texts, "relevant", None)
    queries, corpus = texts.get("query", ()), texts.get("document", ())
    if relevant is None or not queries or not corpus:
        return None
    judged = [[int(d) for d in relevant[i] if 0 <= d < len(corpus)] for i in range(len(queries))]
    picked = [i for i in _spread(len(queries), count) if judged[i]]
    if not picked:
        return None
    rows: dict[int, int] = {}
    for i in picked:
        for d in judged[i]:
            rows.setdefault(d, len(rows))
    each = max(0, documents - len(rows)) // len(picked)
    if each:
        pool = {d: _words(corpus[d]) for d in _spread(len(corpus), scanned) if d not in rows}
        for i in picked:
            for d in look_alikes(
                queries[i], {d: w for d, w in pool.items() if d not in rows}, each
            ):
                rows.setdefault(d, len(rows))
    for d in _spread(len(corpus), documents):
        if len(rows) >= documents:
            break
        rows.setdefault(d, len(rows))
    return ShiftSample(
        queries=[queries[i] for i in picked],
        documents=[corpus[d] for d in rows],
        relevant=[frozenset(rows[d] for d in judged[i]) for i in picked],
    )


def _ranked(
    queries: npt.NDArray[np.floating], documents: npt.NDArray[np.floating], k: int
) -> npt.NDArray[np.int64]:
    """Each query's top-k document rows by cosine, best first (ties: the lower row first)."""
    q = np.asarray(queries, dtype=np.float64)
    d = np.asarray(documents, dtype=np.float64)
    with np.errstate(all="ignore"):
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
        scores = np.nan_to_num(q @ d.T, nan=-np.inf)
    order = np.argsort(-scores, axis=1, kind="stable")
    return order[:, :k].astype(np.int64)


def _recall_ndcg(
    top: npt.NDArray[np.int64], relevant: Sequence[frozenset[int]]
) -> tuple[list[int], float, float]:
    """Hits per query, and mean recall@k and binary-gain nDCG@k over the queries."""
    hits, recall, ndcg = [], 0.0, 0.0
    for row, rel in zip(top.tolist(), relevant, strict=True):
        found = [r for r, doc in enumerate(row) if doc in rel]
        hits.append(len(found))
        recall += len(found) / len(rel)
        ideal = sum(1.0 / np.log2(r + 2) for r in range(min(len(rel), len(row))))
        ndcg += sum(1.0 / np.log2(r + 2) for r in found) / ideal
    n = len(relevant)
    return hits, float(recall / n), float(ndcg / n)


def probe_shift(
    sample: ShiftSample,
    reference: tuple[npt.NDArray[np.floating], npt.NDArray[np.floating]],
    candidate: tuple[npt.NDArray[np.floating], npt.NDArray[np.floating]],
    k: int = SHIFT_K,
) -> ProbeShift:
    """Rank the sample's documents for its queries with the fp32 (``reference``) and the
    candidate (query, document) embeddings; compare recall@k, nDCG@k and the hits per query."""
    top_ref = _ranked(*reference, k)
    top_cand = _ranked(*candidate, k)
    hits_ref, recall_ref, ndcg_ref = _recall_ndcg(top_ref, sample.relevant)
    hits_cand, recall_cand, ndcg_cand = _recall_ndcg(top_cand, sample.relevant)
    return ProbeShift(
        queries=len(sample.queries),
        documents=len(sample.documents),
        k=k,
        recall_fp32=recall_ref,
        recall_candidate=recall_cand,
        ndcg_fp32=ndcg_ref,
        ndcg_candidate=ndcg_cand,
        flips=sum(a != b for a, b in zip(hits_ref, hits_cand, strict=True)),
        reordered=int((top_ref != top_cand).any(axis=1).sum()),
    )


#: ``encode(texts, kind)`` -> embeddings in one precision.
Encode = Callable[[Sequence[str], Kind], npt.NDArray[np.floating]]


def measure_shift(
    sample: ShiftSample, reference: Encode, candidate: Encode, k: int = SHIFT_K
) -> ProbeShift:
    """Encode the sample both ways and compare its rankings (``probe_shift``)."""
    ref = (reference(sample.queries, "query"), reference(sample.documents, "document"))
    cand = (candidate(sample.queries, "query"), candidate(sample.documents, "document"))
    return probe_shift(sample, ref, cand, k)


def shift_or_why(
    texts: Mapping[Kind, Sequence[str]], reference: Encode, candidate: Encode
) -> tuple[ProbeShift | None, str]:
    """The probe shift of the candidate encoding on ``texts``' shift sample, or None and why
    (no judged probe queries; the measurement failed: logged, never a failed evaluation)."""
    sample = shift_sample(texts)
    if sample is None:
        return None, "no judged probe queries"
    try:
        return measure_shift(sample, reference, candidate), ""
    except Exception as exc:  # a measurement, never a reason to fail the evaluation
        log.warning("the probe shift failed (%s: %s)", type(exc).__name__, exc)
        return None, f"the probe shift failed: {type(exc).__name__}"
