"""Evaluation backends: a registry by name, chosen by the config and the ``eval`` flag."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import numpy as np

from recallwatch.config import EvaluationConfig
from recallwatch.daemon.evaluation import backend_options
from recallwatch.encoders import EncoderOptions, open_source
from recallwatch.evaluation.backends import BACKENDS, EvaluationRequest, backend_for
from recallwatch.evaluation.pipeline import evaluate
from recallwatch.heldout.sets import load_heldout
from recallwatch.synthetic.heldout import write_heldout, write_precomputed_checkpoint


def test_the_registered_backends_are_the_configurable_ones() -> None:
    annotation = EvaluationConfig.model_fields["backend"].annotation
    assert set(get_args(annotation)) == set(BACKENDS) == {"local", "ray"}


def test_the_daemon_hands_its_child_the_backend_and_its_section() -> None:
    assert backend_options(EvaluationConfig()) == {"kind": "local"}
    ray = EvaluationConfig.model_validate({"backend": "ray", "ray": {"shards": 3}})
    assert backend_options(ray) == ray.ray.options()


def test_the_local_backend_is_the_local_pipeline(tmp_path: Path) -> None:
    s = write_heldout(tmp_path / "heldout", num_docs=200, num_queries=20, dim=8, seed=3)
    ckpt = write_precomputed_checkpoint(tmp_path / "ckpt", s, noise=0.5, seed=1)
    request = EvaluationRequest(s.path, "test", 1, "precomputed", ckpt, EncoderOptions(), ks=(10,))
    ev, heldout = backend_for("local").evaluate(request, {"kind": "local"})
    ref = evaluate(load_heldout(s.path, "test"), open_source("precomputed", ckpt), ks=(10,))
    assert ev.metrics.means() == ref.metrics.means()
    assert np.array_equal(ev.topk.positions, ref.topk.positions)
    assert heldout.query_ids == load_heldout(s.path, "test").query_ids
