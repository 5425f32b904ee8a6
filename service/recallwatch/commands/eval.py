"""``recallwatch eval``: exact retrieval metrics of one checkpoint on a clean held-out set."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from recallwatch.commands.common import k_list, positive_int, write_json
from recallwatch.encoders import PRECISIONS, EncoderOptions, validate_spec
from recallwatch.errors import ConfigError
from recallwatch.evaluation.backends import BACKENDS, EvaluationRequest, backend_for
from recallwatch.evaluation.metrics import DEFAULT_KS
from recallwatch.evaluation.output import evaluation_json, format_table
from recallwatch.evaluation.pipeline import DEFAULT_SHARD_BYTES, Evaluation

__all__ = ["add_parser", "run"]

log = logging.getLogger("recallwatch.eval")

#: The defaults of the encoder options (``EncoderOptions``), shown and used by the flags below;
#: each flag is its field's name with dashes.
DEFAULT = EncoderOptions()

EPILOG = """\
encoders:
  st                     the checkpoint is a sentence-transformers model directory
  precomputed            read CHECKPOINT/eval_embeddings/{queries,corpus}.npy and
                         {query,corpus}_ids.txt written by your trainer
  python:MODULE:FN       call FN(checkpoint_dir, texts, kind) -> array (kind: query|document)

metrics (trec_eval definitions): recall, success, precision, mrr, ndcg, map, each @k.

examples:
  recallwatch eval --heldout data/scifact --checkpoint runs/a/checkpoint-500 --encoder st
  recallwatch eval --heldout data/scifact --checkpoint ckpt --encoder precomputed \\
      --k 1,10,100 --json out/eval.json
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``eval`` subcommand."""
    p = sub.add_parser(
        "eval",
        help="evaluate one checkpoint on a clean held-out set",
        description="Compute exact retrieval metrics of one checkpoint on a BEIR held-out set.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--heldout", required=True, type=Path, help="BEIR directory (corpus.jsonl ...)")
    p.add_argument("--split", default="test", help="qrels split to evaluate (default: test)")
    p.add_argument("--checkpoint", required=True, type=Path, help="checkpoint directory")
    p.add_argument("--encoder", default="st", help="st | precomputed | python:MODULE:FN")
    p.add_argument(
        "--k",
        type=k_list,
        default=DEFAULT_KS,
        help="comma-separated cutoffs (default: 1,5,10,20,100)",
    )
    p.add_argument(
        "--similarity", choices=("cosine", "dot", "l2"), default="cosine", help="default: cosine"
    )
    p.add_argument("--relevance-level", type=int, default=1, help="min relevant grade (default 1)")
    p.add_argument("--json", dest="json_out", help="write the full result as JSON ('-': stdout)")
    g = p.add_argument_group("sentence-transformers encoder")
    g.add_argument(
        "--device", default=DEFAULT.device, help=f"torch device (default: {DEFAULT.device})"
    )
    g.add_argument("--batch-size", type=positive_int, default=DEFAULT.batch_size)
    g.add_argument("--max-seq-length", type=positive_int, default=DEFAULT.max_seq_length)
    g.add_argument("--normalize", action="store_true", help="normalise embeddings in the model")
    g.add_argument(
        "--query-prompt", default=DEFAULT.query_prompt, help="prefix for queries, e.g. 'query: '"
    )
    g.add_argument(
        "--document-prompt", default=DEFAULT.document_prompt, help="prefix for documents"
    )
    g.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=DEFAULT.precision,
        help="numeric precision: fp32 (sentence-transformers' own numbers), auto (the device's "
        "native bf16/fp16 if a parity probe on a few held-out texts agrees with fp32, else fp32: "
        "about 2x faster on a CPU with bf16, recall@10 can move by a few queries), bf16 or fp16 "
        f"(default: {DEFAULT.precision})",
    )
    p.add_argument(
        "--shard-rows",
        type=positive_int,
        default=None,
        help="corpus rows per search shard; two shards are held at once, so this bounds memory "
        f"(default: {DEFAULT_SHARD_BYTES >> 20} MiB of float32 per shard, 131072 rows at 384 "
        "dimensions)",
    )
    r = p.add_argument_group("backend (docs/scale.md)")
    r.add_argument(
        "--backend",
        choices=tuple(sorted(BACKENDS)),
        default="local",
        help="local: in this process (default); ray: the corpus in shards on a Ray cluster "
        "(pip install 'recallwatch[ray]')",
    )
    # A backend's options are its ``--<backend>-<option>`` flags (``_backend_options``).
    r.add_argument(
        "--ray-address",
        default=None,
        help="auto, ray://HOST:PORT (Ray Client) or HOST:PORT (GCS); default: start Ray here",
    )
    r.add_argument("--ray-shards", type=positive_int, default=8, help="corpus shards (default 8)")
    r.add_argument(
        "--ray-num-gpus", type=float, default=0.0, help="GPUs per shard task (default 0)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the evaluation and print the table."""
    try:
        spec = validate_spec(args.encoder)
    except ConfigError as exc:
        raise ConfigError(
            [("--encoder", msg) for _, msg in exc.errors], source="the command line"
        ) from exc
    options = _backend_options(args)
    request = EvaluationRequest(
        args.heldout,
        args.split,
        args.relevance_level,
        spec,
        args.checkpoint,
        _encoder_options(args),
        ks=args.k,
        similarity=args.similarity,
        shard_rows=args.shard_rows,
        progress=progress,
        log=log,
    )
    try:
        ev, _ = backend_for(args.backend).evaluate(request, options)
    except ConfigError as exc:
        flagged = _as_flags(exc, args.backend)
        if flagged is exc:
            raise
        raise flagged from exc
    return _report(args, ev)


def _backend_options(args: argparse.Namespace) -> dict[str, Any]:
    """The chosen backend's options: its ``--<backend>-<option>`` flags, without the prefix."""
    prefix = f"{args.backend}_"
    return {k.removeprefix(prefix): v for k, v in vars(args).items() if k.startswith(prefix)}


def _as_flags(exc: ConfigError, backend: str) -> ConfigError:
    """A backend's option errors (``evaluation.<backend>.<option>``) named by their flags."""
    section = f"evaluation.{backend}."
    if not any(loc.startswith(section) for loc, _ in exc.errors):
        return exc
    flags = [
        ("--" + loc.removeprefix("evaluation.").replace(".", "-").replace("_", "-"), msg)
        if loc.startswith(section)
        else (loc, msg)
        for loc, msg in exc.errors
    ]
    return ConfigError(flags, source="the command line")


def _encoder_options(args: argparse.Namespace) -> EncoderOptions:
    """The encoder options the flags set (each flag is its field's name with dashes)."""
    return EncoderOptions.model_validate({f: getattr(args, f) for f in EncoderOptions.model_fields})


def progress(done: int, total: int) -> None:
    """Log the search's progress."""
    log.info("searched %d/%d documents", done, total)


def _report(args: argparse.Namespace, ev: Evaluation) -> int:
    print(format_table(ev))
    if args.json_out:
        write_json(args.json_out, evaluation_json(ev, checkpoint=str(args.checkpoint)))
        if args.json_out != "-":
            print(f"wrote {args.json_out}", file=sys.stderr)
    return 0
