"""Precision: device capability from CPU flags, the parity probe's arithmetic, probe sampling,
the probe shift."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recallwatch.encoders.precision import (
    PARITY_MIN_COSINE,
    ProbeTexts,
    ShiftSample,
    capability,
    cpu_flags,
    measure_shift,
    parity,
    probe_sample,
    probe_shift,
    shift_or_why,
    shift_sample,
)

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
flags\t\t: fpu sse sse2 avx2 avx512f {extra}
bogomips\t: 5192.24

processor\t: 1
flags\t\t: fpu sse sse2 avx2 avx512f {extra}
"""


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("avx512_bf16 avx512_vnni", "bf16"),
        ("amx_bf16 amx_tile", "bf16"),
        ("avx512_vnni", None),
        ("", None),
    ],
)
def test_cpu_capability_follows_the_bf16_flags(
    tmp_path: Path, extra: str, expected: str | None
) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(CPUINFO.format(extra=extra))
    assert capability("cpu", cpuinfo=info) == expected
    assert ("avx512f" in cpu_flags(info)) and ("sse2" in cpu_flags(info))


def test_capability_without_cpuinfo_or_for_other_devices(tmp_path: Path) -> None:
    assert cpu_flags(tmp_path / "missing") == frozenset()
    assert capability("cpu", cpuinfo=tmp_path / "missing") is None
    assert capability("mps") is None
    assert capability("xpu:0") is None


def test_cuda_capability_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        assert capability("cuda") is None
    else:  # pragma: no cover - only on a GPU machine
        assert capability("cuda:0") == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")


def test_parity_passes_for_rounding_and_fails_for_a_different_direction() -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((6, 32)).astype(np.float32)
    close = ref + 1e-3 * rng.standard_normal(ref.shape).astype(np.float32)
    p = parity(ref, close, "bf16")
    assert p.passed and p.min_cosine > 0.9999 and p.texts == 6
    assert "passed" in p.describe() and f"threshold {PARITY_MIN_COSINE}" in p.describe()
    bad = close.copy()
    bad[3] = rng.standard_normal(32)
    q = parity(ref, bad, "bf16")
    assert not q.passed and q.min_cosine < 0.5
    assert "FAILED" in q.describe() and "bf16 vs fp32 on 6 probe embeddings" in q.describe()


def test_parity_counts_non_finite_zero_or_misshapen_output_as_failed() -> None:
    ref = np.eye(3, dtype=np.float32)
    nan = ref.copy()
    nan[1, 1] = np.nan
    assert parity(ref, nan, "fp16").min_cosine == -1.0
    zero = ref.copy()
    zero[2] = 0.0
    assert not parity(ref, zero, "fp16").passed
    assert not parity(ref, ref[:2], "fp16").passed
    assert parity(ref, ref, "fp16", threshold=1.0).passed


def test_probe_sample_spreads_over_the_texts() -> None:
    texts = [f"t{i}" for i in range(100)]
    assert probe_sample(texts, 5) == ["t0", "t25", "t50", "t74", "t99"]
    assert probe_sample(texts[:3], 8) == ["t0", "t1", "t2"]
    assert probe_sample([], 8) == []


def test_the_shift_sample_is_the_judged_probe_queries_their_documents_and_a_spread() -> None:
    texts = ProbeTexts(
        [f"q{i}" for i in range(4)], [f"d{i}" for i in range(10)], [[2], [5, 6], [], [9, 99]]
    )
    sample = shift_sample(texts, count=4, documents=6)
    assert sample is not None
    # query 2 has no judged document (99 is no corpus position): left out
    assert sample.queries == ["q0", "q1", "q3"]
    # relevant documents first, then the spread over the corpus (0, 2, 4, ...) up to 6
    assert sample.documents == ["d2", "d5", "d6", "d9", "d0", "d4"]
    assert sample.relevant == [frozenset({0}), frozenset({1, 2}), frozenset({3})]
    # without judgements (a plain mapping, as before ProbeTexts) or judged queries: no sample
    assert shift_sample({"query": ["q"], "document": ["d"]}) is None
    assert shift_sample(ProbeTexts(["q"], ["d"], [[]])) is None


def test_the_probe_shift_counts_what_moved_across_k() -> None:
    """Documents are unit vectors; query 0 finds its document in fp32 and another one in the
    candidate precision: recall@1 loses query 0's 1 of 3 queries, so does nDCG@1."""
    docs = np.eye(6)
    sample = ShiftSample(
        ["a", "b", "c"],
        [f"d{i}" for i in range(6)],
        [frozenset({0}), frozenset({1, 2}), frozenset({3})],
    )
    reference = np.array([docs[0], docs[1] + docs[2], docs[3]])
    candidate = np.array([docs[4], docs[1] + docs[2], docs[3]])
    same = probe_shift(sample, (reference, docs), (reference, docs), k=1)
    assert (same.recall_shift, same.ndcg_shift, same.flips, same.reordered) == (0, 0, 0, 0)
    # query 1: two relevant, a tie; the lower row comes first: recall@1 1/2, nDCG@1 1
    assert same.recall_fp32 == pytest.approx((1 + 0.5 + 1) / 3)
    assert same.ndcg_fp32 == pytest.approx(1.0)
    moved = probe_shift(sample, (reference, docs), (candidate, docs), k=1)
    assert moved.recall_shift == pytest.approx(-1 / 3)
    assert moved.ndcg_shift == pytest.approx(-1 / 3)
    assert (moved.flips, moved.reordered, moved.queries, moved.documents) == (1, 1, 3, 6)


def test_measure_shift_encodes_each_kind_both_ways() -> None:
    sample = ShiftSample(["a"], ["x", "y"], [frozenset({0})])
    calls: list[tuple[str, str]] = []

    def encoder(name: str, vectors: dict[str, list[float]]):  # type: ignore[no-untyped-def]
        def encode(texts, kind):  # type: ignore[no-untyped-def]
            calls.append((name, kind))
            return np.array([vectors[t] for t in texts])

        return encode

    ref = encoder("fp32", {"a": [1, 0], "x": [1, 0], "y": [0, 1]})
    cand = encoder("bf16", {"a": [0, 1], "x": [1, 0], "y": [0, 1]})
    shift = measure_shift(sample, ref, cand, k=1)
    assert sorted(calls) == sorted(
        [("fp32", "query"), ("fp32", "document"), ("bf16", "query"), ("bf16", "document")]
    )
    assert (shift.recall_fp32, shift.recall_candidate, shift.flips) == (1.0, 0.0, 1)


def test_a_shift_that_cannot_be_measured_says_why_and_never_raises() -> None:
    texts = ProbeTexts(["q"], ["d", "e"], [[0]])

    def works(texts, kind):  # type: ignore[no-untyped-def]
        return np.ones((len(texts), 2))

    def broken(texts, kind):  # type: ignore[no-untyped-def]
        raise RuntimeError("the reduced copy fell over")

    assert shift_or_why(texts, works, broken) == (None, "the probe shift failed: RuntimeError")
    assert shift_or_why({"query": ["q"]}, works, works) == (None, "no judged probe queries")
    shift, why = shift_or_why(texts, works, works)
    assert shift is not None and why == "" and shift.recall_shift == 0.0
