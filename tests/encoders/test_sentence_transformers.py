"""The sentence-transformers encoder: missing, foreign and corrupt checkpoints; precision."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from recallwatch.encoders import EncoderOptions, TextEncoderSource, open_source
from recallwatch.encoders.precision import capability
from recallwatch.encoders.sentence_transformers import SentenceTransformerEncoder
from recallwatch.errors import CheckpointError, ConfigError
from recallwatch.heldout.sets import load_heldout
from recallwatch.synthetic.heldout import write_heldout


def test_st_checkpoint_errors(tmp_path: Path, minilm_dir: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint directory not found"):
        open_source("st", tmp_path / "missing")
    with pytest.raises(CheckpointError, match="not a sentence-transformers model directory"):
        open_source("st", tmp_path)
    broken = tmp_path / "checkpoint-7"
    shutil.copytree(minilm_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"checkpoint-7: cannot load the SentenceTransformer"):
        open_source("st", broken)


TEXTS = [
    "What causes antibiotic resistance in bacteria?",
    "Protein folding is guided by hydrophobic interactions. " * 30,
    "A randomized trial of vitamin D in older adults found no effect on fractures.",
    "mitochondria",
]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)  # type: ignore[no-any-return]


def test_auto_falls_back_to_fp32_when_the_parity_probe_fails(
    bf16_fragile_minilm: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Forced to offer bf16 (whatever this CPU has), ``auto`` probes a model bf16 breaks."""
    caplog.set_level(logging.INFO, logger="recallwatch.encoders.sentence_transformers")
    enc = SentenceTransformerEncoder(
        bf16_fragile_minilm, precision="auto", capability_of=lambda device: "bf16"
    )
    assert enc.precision is None  # settled by the probe, on held-out texts
    enc.prepare({"query": TEXTS[:1], "document": TEXTS[1:]})
    assert enc.precision == "fp32"
    assert enc.parity is not None and not enc.parity.passed
    assert enc.parity.candidate == "bf16" and enc.parity.min_cosine < enc.parity_threshold
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert "parity probe FAILED: bf16 vs fp32" in warning.getMessage()
    assert warning.getMessage().endswith("using fp32")
    report = enc.precision_report
    assert (report.requested, report.used, report.verdict) == ("auto", "fp32", "failed")
    assert report.min_cosine == enc.parity.min_cosine and report.texts == enc.parity.texts
    # plain texts without judgements: no probe shift, and the report says why
    assert report.shift is None and report.note == "no judged probe queries"
    fp32 = SentenceTransformerEncoder(bf16_fragile_minilm, precision="fp32")
    assert np.array_equal(enc.encode(TEXTS, "document"), fp32.encode(TEXTS, "document"))


def test_auto_keeps_bf16_when_the_probe_agrees(minilm_dir: Path) -> None:
    """The real MiniLM passes the probe; its bf16 embeddings stay within the threshold."""
    enc = SentenceTransformerEncoder(
        minilm_dir, precision="auto", capability_of=lambda device: "bf16"
    )
    got = enc.encode(TEXTS, "document")  # no prepare(): the first texts encoded are the probe
    assert enc.precision == "bf16"
    assert enc.parity is not None and enc.parity.passed and enc.parity.texts == 2 * len(TEXTS)
    want = SentenceTransformerEncoder(minilm_dir, precision="fp32").encode(TEXTS, "document")
    assert cosines(got, want).min() >= enc.parity_threshold


def test_auto_without_a_native_reduced_precision_is_fp32_without_a_probe(
    minilm_dir: Path,
) -> None:
    enc = SentenceTransformerEncoder(minilm_dir, precision="auto", capability_of=lambda d: None)
    assert enc.precision == "fp32" and enc.parity is None
    enc.prepare({"query": TEXTS})
    assert enc.parity is None
    assert enc.precision_report.verdict == "not-run" and enc.precision_report.used == "fp32"
    assert enc.precision_report.note == "cpu has no native reduced precision"


def test_fp32_is_sentence_transformers_own_encode(minilm_dir: Path) -> None:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(minilm_dir), device="cpu", local_files_only=True)
    enc = SentenceTransformerEncoder(minilm_dir, precision="fp32", batch_size=32)
    assert np.array_equal(enc.encode(TEXTS, "query"), st.encode(TEXTS, batch_size=32))


def test_explicit_bf16_needs_no_probe_and_unknown_precision_is_refused(minilm_dir: Path) -> None:
    enc = SentenceTransformerEncoder(minilm_dir, precision="bf16")
    assert enc.precision == "bf16" and enc.parity is None
    assert (
        enc.precision_report.describe()
        == "Encoded in bf16 (parity probe not run: bf16 as configured)"
    )
    with pytest.raises(ConfigError, match="unknown precision 'fp8'"):
        SentenceTransformerEncoder(minilm_dir, precision="fp8")  # type: ignore[arg-type]


def test_source_prepares_the_encoder_with_held_out_texts(tmp_path: Path, minilm_dir: Path) -> None:
    """``TextEncoderSource`` hands the probe a few held-out queries and documents first."""
    synth = write_heldout(tmp_path / "heldout", num_docs=30, num_queries=5, dim=8)
    heldout = load_heldout(synth.path, "test")
    source = open_source("st", minilm_dir, EncoderOptions(precision="auto"))
    assert isinstance(source, TextEncoderSource)
    encoder = source.encoder
    assert isinstance(encoder, SentenceTransformerEncoder)
    source.queries(heldout)
    native = capability("cpu")
    assert source.precision == (native if encoder.parity and encoder.parity.passed else "fp32")
    if native is not None:
        assert encoder.parity is not None
        assert encoder.parity.texts == 2 * (5 + encoder.probe_texts)  # each probed two ways


def test_the_report_of_auto_has_the_probe_and_its_shift_on_held_out_judgements(
    tmp_path: Path, minilm_dir: Path
) -> None:
    """Through ``TextEncoderSource`` (as an evaluation runs it), bf16 offered whatever this CPU
    has: the verdict is the parity probe's and the probe shift ranks the judged probe queries'
    sub-corpus both ways; an fp32 encoder's report says no probe ran."""
    synth = write_heldout(tmp_path / "heldout", num_docs=40, num_queries=6, dim=8, seed=3)
    heldout = load_heldout(synth.path, "test")
    encoder = SentenceTransformerEncoder(
        minilm_dir, precision="auto", capability_of=lambda d: "bf16"
    )
    source = TextEncoderSource(encoder)
    source.queries(heldout)
    report = source.precision_report
    assert encoder.parity is not None and encoder.parity.passed
    assert (report.requested, report.used, report.verdict) == ("auto", "bf16", "passed")
    assert (report.min_cosine, report.texts) == (encoder.parity.min_cosine, encoder.parity.texts)
    shift = report.shift
    assert shift is not None and shift.k == 10
    assert shift.queries == min(heldout.num_queries, encoder.probe_texts)
    assert shift.documents == min(heldout.num_docs, 48)
    # a flip (hits in the top 10 changed) is a reordering; neither exceeds the probe queries
    assert 0.0 < shift.recall_fp32 <= 1.0 and 0.0 <= shift.flips <= shift.reordered <= shift.queries
    assert report.describe().startswith("Encoded in bf16 (auto requested; parity probe passed")
    fp32 = TextEncoderSource(SentenceTransformerEncoder(minilm_dir, precision="fp32"))
    fp32.queries(heldout)
    assert fp32.precision_report.verdict == "not-run"
    assert fp32.precision_report.note == "fp32 as configured"
