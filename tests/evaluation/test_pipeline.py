"""The evaluation pipeline: reading one shard ahead, errors mid-stream, the recorded precision."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from recallwatch.encoders import CorpusShard, TextEncoderSource
from recallwatch.encoders.precomputed import PrecomputedSource
from recallwatch.errors import EmbeddingError
from recallwatch.evaluation.pipeline import evaluate
from recallwatch.heldout.sets import HeldoutSet, load_heldout
from recallwatch.synthetic.heldout import write_heldout, write_precomputed_checkpoint


@pytest.fixture
def synth(tmp_path: Path) -> tuple[HeldoutSet, Path]:
    s = write_heldout(tmp_path / "heldout", num_docs=503, num_queries=40, dim=16, seed=3)
    return load_heldout(s.path, "test"), write_precomputed_checkpoint(
        tmp_path / "ckpt", s, noise=0.5
    )


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_small_shards_read_ahead_give_the_results_of_one_shard(
    synth: tuple[HeldoutSet, Path], dtype: str
) -> None:
    """The precomputed source alternates two buffers: a shard read ahead never overwrites the
    shard being searched, so 7-row shards give exactly what one shard gives."""
    heldout, ckpt = synth
    if dtype == "float16":
        corpus = ckpt / "eval_embeddings" / "corpus.npy"
        np.save(corpus, np.load(corpus).astype(np.float16))
    one = evaluate(heldout, PrecomputedSource(ckpt), shard_rows=10_000)
    many = evaluate(heldout, PrecomputedSource(ckpt), shard_rows=7)
    assert np.array_equal(one.topk.positions, many.topk.positions)
    assert np.array_equal(one.topk.scores, many.topk.scores)
    assert one.metrics.means() == many.metrics.means()
    assert one.precision is None and many.precision is None


class Shards:
    """A source whose shards come from a list; it records the threads and whether it was closed."""

    name = "listed"

    def __init__(self, heldout: HeldoutSet, fail_at: int | None = None) -> None:
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal((heldout.num_docs, 8)).astype(np.float32)
        self.q = rng.standard_normal((heldout.num_queries, 8)).astype(np.float32)
        self.fail_at = fail_at
        self.threads: set[str] = set()
        self.closed = threading.Event()

    def queries(self, heldout: HeldoutSet) -> npt.NDArray[np.float32]:
        return self.q

    def corpus_shards(self, heldout: HeldoutSet, shard_rows: int) -> Iterator[CorpusShard]:
        try:
            for i, a in enumerate(range(0, len(self.x), shard_rows)):
                self.threads.add(threading.current_thread().name)
                if i == self.fail_at:
                    raise EmbeddingError("the disk went away", path="shard")
                rows = np.arange(a, min(a + shard_rows, len(self.x)), dtype=np.int64)
                yield CorpusShard(self.x[rows], rows, self.name, rows)
        finally:
            self.closed.set()


def test_shards_are_produced_ahead_in_a_worker_and_the_source_is_closed(
    synth: tuple[HeldoutSet, Path],
) -> None:
    heldout, _ = synth
    source = Shards(heldout)
    seen: list[int] = []
    ev = evaluate(heldout, source, shard_rows=50, progress=lambda done, total: seen.append(done))
    assert seen[-1] == heldout.num_docs and len(seen) == 11
    assert source.threads and all(t.startswith("recallwatch-read-ahead") for t in source.threads)
    assert source.closed.is_set()
    assert ev.num_docs == heldout.num_docs


def test_an_error_mid_stream_reaches_the_caller_and_closes_the_source(
    synth: tuple[HeldoutSet, Path],
) -> None:
    heldout, _ = synth
    source = Shards(heldout, fail_at=3)
    with pytest.raises(EmbeddingError, match="the disk went away"):
        evaluate(heldout, source, shard_rows=50)
    assert source.closed.is_set()


def test_a_search_error_stops_reading_ahead_and_closes_the_source(
    synth: tuple[HeldoutSet, Path],
) -> None:
    heldout, _ = synth
    source = Shards(heldout)
    source.x = np.concatenate([source.x, source.x], axis=1)  # corpus dim 16, queries dim 8
    with pytest.raises(EmbeddingError, match="corpus dimension 16 does not match"):
        evaluate(heldout, source, shard_rows=50)
    assert source.closed.is_set()


class Fixed:
    """An encoder that says which precision it computed in."""

    name = "fixed"
    precision = "bf16"

    def encode(self, texts: Sequence[str], kind: str) -> npt.NDArray[np.float32]:
        return np.asarray(
            [[len(t) % 7 + 1.0, len(t) % 5 + 1.0, 1.0] for t in texts], dtype=np.float32
        )


def test_the_encoders_precision_is_recorded_with_the_evaluation(
    synth: tuple[HeldoutSet, Path],
) -> None:
    heldout, _ = synth
    ev = evaluate(heldout, TextEncoderSource(Fixed()), shard_rows=100)
    assert ev.precision == "bf16"
    # it names its precision, not a probe: the report says so
    report = ev.precision_report
    assert report is not None and (report.used, report.verdict) == ("bf16", "not-run")


class Silent(Fixed):
    """An encoder that says nothing of its precision (as a ``python:`` entry point)."""

    precision = None  # type: ignore[assignment]


def test_embeddings_recallwatch_did_not_compute_have_a_not_applicable_report(
    synth: tuple[HeldoutSet, Path],
) -> None:
    heldout, ckpt = synth
    for source, why in (
        (PrecomputedSource(ckpt), "precomputed embeddings"),
        (TextEncoderSource(Silent()), "the fixed encoder computes its embeddings"),
    ):
        report = evaluate(heldout, source, shard_rows=100).precision_report
        assert report is not None and report.verdict == "not-applicable" and report.note == why
        assert report.describe() == f"Precision: not applicable ({why})"
