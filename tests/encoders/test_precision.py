"""Precision: device capability from CPU flags, the parity probe's arithmetic, probe sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recallwatch.encoders.precision import (
    PARITY_MIN_COSINE,
    capability,
    cpu_flags,
    parity,
    probe_sample,
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
