"""A real tiny training with ``mine`` and the callback, watched by ``recallwatch serve``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import yaml

from recallwatch.integrations.sentence_transformers import (
    READY_MARKER,
    RecallwatchCallback,
    fingerprint,
)
from tests.integrations.helpers import (
    REPO,
    TRAINING_WARNINGS,
    Serve,
    audit_qrels,
    train_pairs,
    wait_until,
)

pytestmark = [pytest.mark.filterwarnings(w) for w in TRAINING_WARNINGS]
EXAMPLE = REPO / "examples" / "sentence-transformers" / "train_hardneg.py"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "service"), "HF_HUB_OFFLINE": "1"}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recallwatch.cli", *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO,
        check=True,
    )


def _assert_one_schedule_across_the_remining(
    run: Path, *, total: int, remine: int, base: float
) -> None:
    """The example's learning rate follows one linear schedule over the run, re-mining or not."""
    import torch

    def schedule(step: int) -> float:  # the rate of step ``step`` (1-based), no warmup
        return base * (total - step + 1) / total

    # The rate the resumed training starts with: the optimizer's, saved at the re-mining step.
    optimizer = torch.load(run / f"checkpoint-{remine}" / "optimizer.pt", weights_only=False)
    assert optimizer["param_groups"][0]["lr"] == pytest.approx(schedule(remine + 1))
    assert schedule(remine + 1) > 0
    state = json.loads((run / f"checkpoint-{total}" / "trainer_state.json").read_text())
    logged = {e["step"]: e["learning_rate"] for e in state["log_history"] if "learning_rate" in e}
    assert sorted(logged) == list(range(1, total + 1))
    for step, lr in logged.items():
        assert lr == pytest.approx(schedule(step)), (step, logged)


def test_training_remines_mid_run_and_the_daemon_attributes_the_change(
    tmp_path: Path, tiny_beir: Path, minilm_dir: Path, serve: Callable[[Path, Path], Serve]
) -> None:
    run = tmp_path / "run"
    config = {
        "store": {"path": str(tmp_path / "state" / "recallwatch.db")},
        "http": {"listen": "127.0.0.1:0"},
        "poll_interval_seconds": 0.5,
        "evaluation": {"encoder": "precomputed", "ks": [1, 5, 10]},
        "heldout": [{"name": "tiny", "path": str(tiny_beir), "split": "test"}],
        "runs": [
            {
                "name": "hardneg",
                "directory": str(run),
                "ready_marker": READY_MARKER,
                "settle_seconds": 0.5,
            }
        ],
        # The train qrels judge the mined negatives (dense for the mined queries).
        "false_negatives": {
            "corpus": str(tiny_beir),
            "oracles": [f"qrels:{tiny_beir / 'qrels' / 'train.tsv'}"],
            "sample_size": 20,
            "control_size": 0,
        },
    }
    cfg = tmp_path / "recallwatch.yaml"
    cfg.write_text(yaml.safe_dump(config))
    daemon = serve(cfg, tmp_path / "serve.log")

    trainer = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLE),
            "--scifact",
            str(tiny_beir),
            "--out",
            str(run),
            "--model",
            str(minilm_dir),
            "--max-steps",
            "4",
            "--remine-step",
            "2",
            "--save-steps",
            "1",
            "--batch-size",
            "4",
            "--max-seq-length",
            "64",
            "--num-negatives",
            "3",
        ],
        env=_env(),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "train.log").open("wb"),
    )
    assert trainer.wait() == 0, (tmp_path / "train.log").read_text()[-3000:]
    _assert_one_schedule_across_the_remining(run, total=4, remine=2, base=2e-5)

    api = httpx.Client(base_url=daemon.url, timeout=30)

    def all_evaluated() -> list[dict[str, Any]] | None:
        items = api.get("/api/v1/runs/hardneg/evaluations").json()["items"]
        done = [c for c in items if c["state"] == "evaluated"]
        failed = [c for c in items if c["state"] == "failed"]
        assert not failed, failed
        return sorted(done, key=lambda c: c["step"]) if len(done) == 4 else None

    ckpts = wait_until(all_evaluated, alive=daemon.proc, what="4 evaluated checkpoints")
    assert [c["step"] for c in ckpts] == [1, 2, 3, 4]
    fps = [c["mining_fingerprint"] for c in ckpts]
    # The re-mining at step 2: checkpoints 1-2 trained on the first mining, 3-4 on the second.
    assert fps[0] == fps[1] != fps[2] == fps[3]
    final = json.loads((run / "mining.json").read_text())
    assert fps[2] == fingerprint(final)
    for c in ckpts:
        on_disk = json.loads((run / c["name"] / "mining.json").read_text())
        assert fingerprint(on_disk) == c["mining_fingerprint"]
    before = api.get("/api/v1/runs/hardneg/evaluations/checkpoint-2").json()
    after = api.get("/api/v1/runs/hardneg/evaluations/checkpoint-3").json()
    assert before["mining"]["arguments"]["range_min"] == 10
    assert before["mining"]["arguments"]["relative_margin"] == 0.05
    assert after["mining"]["arguments"]["range_min"] == 0
    assert after["mining"]["arguments"]["relative_margin"] is None
    # The daemon audited each mined set (it reads the ids mine wrote).
    assert after["false_negatives"] is not None and after["false_negatives"]["sample_size"] > 0
    assert before["false_negatives"] is not None
    # Each scrape is served the next evaluated checkpoint (docs/daemon.md#metrics): the fourth,
    # the latest, trained on the re-mined set.
    metrics = [api.get("/metrics").text for _ in ckpts][-1]
    assert 'recallwatch_checkpoint_step{run="hardneg"} 4.0' in metrics
    assert 'recallwatch_mining_change_timestamp_seconds{run="hardneg"}' in metrics

    # fn-rate on the risky mined set can recommend a margin: the scores are there.
    mined = run / final["mined_set"]
    audit = audit_qrels(mined, tmp_path / "audit.tsv", 0.2)
    fn_json = tmp_path / "fn.json"
    _cli(
        "fn-rate",
        "--mined",
        str(mined),
        "--corpus",
        str(tiny_beir),
        "--oracle",
        f"qrels:{audit}",
        "--sample",
        "48",
        "--control",
        "0",
        "--criterion",
        "estimate",
        "--json",
        str(fn_json),
    )
    rec = json.loads(fn_json.read_text())["recommendation"]
    assert rec["best"] is not None
    assert any(o["family"] in ("relative_margin", "absolute_margin") for o in rec["options"]), rec

    # The callback's embeddings (precomputed) give the st encoder's metrics on the checkpoint.
    ckpt = run / "checkpoint-4"
    results = {}
    for encoder in ("st", "precomputed"):
        out = tmp_path / f"{encoder}.json"
        _cli(
            "eval",
            "--heldout",
            str(tiny_beir),
            "--checkpoint",
            str(ckpt),
            "--encoder",
            encoder,
            "--k",
            "1,5,10",
            "--json",
            str(out),
        )
        results[encoder] = json.loads(out.read_text())["metrics"]
    daemon_metrics = after["evaluations"][0]["metrics"]
    for metric, by_k in results["st"].items():
        for k, value in by_k.items():
            assert results["precomputed"][metric][k] == pytest.approx(value, abs=1e-4)
    ckpt4 = api.get("/api/v1/runs/hardneg/evaluations/checkpoint-4").json()
    for metric, by_k in ckpt4["evaluations"][0]["metrics"].items():
        for k, value in by_k.items():
            assert results["st"][metric][k] == pytest.approx(value, abs=1e-4), (metric, k)
    assert daemon_metrics  # checkpoint-3 evaluated from its own embeddings too


def test_rotation_resume_and_main_process_only(
    tmp_path: Path, tiny_beir: Path, minilm_dir: Path, teacher: Any
) -> None:
    from datasets import Dataset  # type: ignore[import-untyped]
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from recallwatch.integrations.sentence_transformers import mine

    pairs, corpus = train_pairs(tiny_beir)
    run = tmp_path / "run"
    data = mine(
        Dataset.from_dict(pairs),
        teacher,
        run_dir=run,
        id_corpus=tiny_beir,
        corpus=corpus,
        num_negatives=1,
        verbose=False,
    )
    model = SentenceTransformer(str(minilm_dir), device="cpu", local_files_only=True)
    model.max_seq_length = 32
    callback = RecallwatchCallback(heldout=tiny_beir)

    def train(max_steps: int, resume: str | None = None) -> None:
        args = SentenceTransformerTrainingArguments(
            output_dir=str(run),
            max_steps=max_steps,
            per_device_train_batch_size=4,
            save_strategy="steps",
            save_steps=1,
            save_total_limit=1,
            report_to="none",
            dataloader_pin_memory=False,
            use_cpu=True,
        )
        SentenceTransformerTrainer(
            model=model,
            args=args,
            train_dataset=data,
            loss=MultipleNegativesRankingLoss(model),
            callbacks=[callback],
        ).train(resume_from_checkpoint=resume)

    train(2)
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-2"]
    train(3, resume=str(run / "checkpoint-2"))
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-3"]
    ckpt = run / "checkpoint-3"
    for name in (
        "mining.json",
        READY_MARKER,
        "eval_embeddings/queries.npy",
        "eval_embeddings/corpus_ids.txt",
    ):
        assert (ckpt / name).is_file(), name
    assert not list(ckpt.glob(".eval_embeddings*"))

    # Only the main process writes.
    other = run / "checkpoint-9"
    other.mkdir()
    state = SimpleNamespace(is_world_process_zero=False, global_step=9)
    callback.on_save(SimpleNamespace(output_dir=str(run)), state, None, model=model)
    assert list(other.iterdir()) == []
