"""What an evaluation's encoder says about its numeric precision: the ``PrecisionReport``.

The encoder builds it (``encoders.precision``), the evaluation carries it to the store (a JSON
column of ``evaluations``), and the API, the checkpoint page, ``recallwatch eval`` and the metrics
show it. Plain data with a JSON round trip (``as_json`` / ``from_json``) and one line for people
(``describe``).

Two measurements, named for what they are:

- the **parity probe**'s verdict: a few held-out texts encoded in fp32 and in the candidate
  precision; ``passed`` when every probe embedding has a cosine of at least ``threshold`` to its
  fp32 twin (then ``auto`` keeps the candidate);
- the **probe shift** (``ProbeShift``): the probe's queries ranked against a small sub-corpus
  (their relevant documents and documents spread over the corpus) with the fp32 embeddings and
  with the candidate precision's; the change of recall@k and nDCG@k there, and the probe queries
  whose relevant documents in the top k changed. A cheap sign of how far the precision moves
  rankings, **not** the shift on the full held-out set (which needs a second full evaluation:
  docs/daemon.md, "Encoder precision", states it as measured).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

__all__ = ["VERDICTS", "PrecisionReport", "ProbeShift", "ProbeVerdict"]

#: ``passed`` / ``failed``: the parity probe ran; ``not-run``: the precision was taken as
#: configured (``fp32``, an explicit ``bf16``, or ``auto`` on a device without a native reduced
#: precision); ``not-applicable``: recallwatch did not compute the embeddings (``precomputed``,
#: ``python:``).
ProbeVerdict = Literal["passed", "failed", "not-run", "not-applicable"]
VERDICTS: tuple[str, ...] = get_args(ProbeVerdict)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class ProbeShift:
    """Retrieval on the probe's sub-corpus, fp32 against the candidate precision."""

    #: probe queries with at least one relevant document in the sub-corpus
    queries: int
    #: documents of the sub-corpus
    documents: int
    k: int
    recall_fp32: float
    recall_candidate: float
    ndcg_fp32: float
    ndcg_candidate: float
    #: probe queries whose relevant documents in the top k changed (a rank flip across k)
    flips: int
    #: probe queries whose top k (ids in order) changed at all
    reordered: int

    @property
    def recall_shift(self) -> float:
        """recall@k in the candidate precision minus in fp32, on the probe."""
        return self.recall_candidate - self.recall_fp32

    @property
    def ndcg_shift(self) -> float:
        """nDCG@k in the candidate precision minus in fp32, on the probe."""
        return self.ndcg_candidate - self.ndcg_fp32

    def as_json(self) -> dict[str, Any]:
        """Plain data (the shifts included, for readers of the JSON)."""
        return {
            "queries": self.queries,
            "documents": self.documents,
            "k": self.k,
            "recall_fp32": self.recall_fp32,
            "recall_candidate": self.recall_candidate,
            "recall_shift": self.recall_shift,
            "ndcg_fp32": self.ndcg_fp32,
            "ndcg_candidate": self.ndcg_candidate,
            "ndcg_shift": self.ndcg_shift,
            "flips": self.flips,
            "reordered": self.reordered,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ProbeShift:
        """The shift ``as_json`` wrote (the derived shifts are recomputed)."""
        return cls(
            queries=int(doc["queries"]),
            documents=int(doc["documents"]),
            k=int(doc["k"]),
            recall_fp32=float(doc["recall_fp32"]),
            recall_candidate=float(doc["recall_candidate"]),
            ndcg_fp32=float(doc["ndcg_fp32"]),
            ndcg_candidate=float(doc["ndcg_candidate"]),
            flips=int(doc["flips"]),
            reordered=int(doc["reordered"]),
        )


@dataclass(frozen=True)
class PrecisionReport:
    """The precision an evaluation's encoder was asked for and used, and the probe's outcome."""

    #: what was configured (``auto``, ``fp32``, ``bf16``, ``fp16``); None: not applicable
    requested: str | None
    #: what the encoder computed in; None: not computed by recallwatch
    used: str | None
    verdict: ProbeVerdict
    #: the reduced precision the probe tried (None: no probe)
    candidate: str | None = None
    #: probe embeddings compared (0: no probe)
    texts: int = 0
    min_cosine: float | None = None
    threshold: float | None = None
    #: the probe shift (None: not measured; ``note`` says why)
    shift: ProbeShift | None = None
    #: why there is no probe, or no shift (empty: nothing to add)
    note: str = ""

    @classmethod
    def not_applicable(cls, why: str) -> PrecisionReport:
        """A report for embeddings recallwatch did not compute."""
        return cls(requested=None, used=None, verdict="not-applicable", note=why)

    def as_json(self) -> dict[str, Any]:
        """Plain data, as stored and served."""
        return {
            "requested": self.requested,
            "used": self.used,
            "verdict": self.verdict,
            "candidate": self.candidate,
            "texts": self.texts,
            "min_cosine": self.min_cosine,
            "threshold": self.threshold,
            "shift": None if self.shift is None else self.shift.as_json(),
            "note": self.note,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> PrecisionReport:
        """The report ``as_json`` wrote; ``ValueError`` naming the field when it is not one."""
        verdict = doc.get("verdict")
        if verdict not in VERDICTS:
            raise ValueError(f"precision report: verdict {verdict!r} is not one of {VERDICTS}")
        try:
            shift = doc.get("shift")
            return cls(
                requested=doc.get("requested"),
                used=doc.get("used"),
                verdict=verdict,
                candidate=doc.get("candidate"),
                texts=int(doc.get("texts") or 0),
                min_cosine=_float(doc.get("min_cosine")),
                threshold=_float(doc.get("threshold")),
                shift=None if shift is None else ProbeShift.from_json(shift),
                note=str(doc.get("note") or ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"precision report: {type(exc).__name__}: {exc}") from exc

    def describe_shift(self) -> str:
        """The probe shift in words ("" when not measured)."""
        s = self.shift
        if s is None:
            return ""
        return (
            f"probe recall@{s.k} shift {_signed(s.recall_shift)}, "
            f"nDCG@{s.k} shift {_signed(s.ndcg_shift)} "
            f"({s.flips} of {s.queries} probe queries flip, {s.documents} documents)"
        )

    def describe(self) -> str:
        """One line for people: the page, ``recallwatch eval``."""
        if self.verdict == "not-applicable":
            return "Precision: not applicable" + (f" ({self.note})" if self.note else "")
        head = f"Encoded in {self.used or '?'}"
        parts: list[str] = []
        if self.requested and self.requested != self.used:
            parts.append(f"{self.requested} requested")
        if self.verdict in ("passed", "failed"):
            word = "passed" if self.verdict == "passed" else "FAILED"
            if self.min_cosine is None:  # the candidate could not even run
                parts.append(f"parity probe {word} for {self.candidate}: {self.note}")
            else:
                parts.append(
                    f"parity probe {word} for {self.candidate}: min cosine "
                    f"{self.min_cosine:.6f} on {self.texts} texts (threshold {self.threshold})"
                )
                shift = self.describe_shift()
                if shift and self.verdict == "failed":
                    shift += f" of the rejected {self.candidate}"
                parts.append(shift or f"probe shift not measured: {self.note or 'no judgements'}")
        else:
            parts.append("parity probe not run" + (f": {self.note}" if self.note else ""))
        return f"{head} ({'; '.join(parts)})"


def _signed(value: float) -> str:
    return "+0.0000" if math.isclose(value, 0.0, abs_tol=5e-5) else f"{value:+.4f}"
