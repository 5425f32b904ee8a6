"""``recallwatch demo``: the daemon on a generated training run, with a mining change and alerts.

It writes a synthetic held-out set and a run directory into a work directory, starts the real
daemon on them (the same code as ``recallwatch serve``), and a simulated trainer adds a checkpoint
every --interval seconds. At the seventh checkpoint the mining configuration changes (hard
negatives from rank 1 instead of 11): the mined set's audited false-negative rate rises to about
10% and recall@10 drops by about 9 points. The daemon's rules fire and the alerts, with their
evidence, are delivered to a webhook receiver on loopback that verifies their signatures and
prints them. Meanwhile: http://127.0.0.1:9464/metrics, /api/v1/runs, /api/v1/alerts, /docs.

``--eval-only`` instead evaluates two generated checkpoints once with ``recallwatch eval``'s code.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from recallwatch.config import DEFAULT_PORT
from recallwatch.encoders import open_source
from recallwatch.evaluation.output import format_table
from recallwatch.evaluation.pipeline import evaluate
from recallwatch.heldout.sets import load_heldout
from recallwatch.synthetic.heldout import write_heldout, write_precomputed_checkpoint

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``demo`` subcommand."""
    p = sub.add_parser(
        "demo",
        help="run the daemon on a generated training run: metrics, a mining change, alerts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="a new or empty directory for the example (default: a temp dir)",
    )
    p.add_argument(
        "--interval", type=float, default=5.0, help="seconds between checkpoints (default 5)"
    )
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop by itself after this long (default: run until Ctrl-C)",
    )
    p.add_argument(
        "--listen",
        default=f"127.0.0.1:{DEFAULT_PORT}",
        help=f"HOST:PORT of the daemon's HTTP server (default 127.0.0.1:{DEFAULT_PORT})",
    )
    p.add_argument(
        "--log-format", choices=("human", "json"), default="human", help="default: human"
    )
    p.add_argument(
        "--eval-only",
        action="store_true",
        help="no daemon: evaluate two generated checkpoints once and print their metrics",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the daemon demo, or the one-shot evaluation example."""
    if args.eval_only:
        return _eval_only(args.workdir or Path(tempfile.mkdtemp(prefix="recallwatch-demo-")))
    from recallwatch.commands import serve

    serve_args = argparse.Namespace(
        config=None,
        listen=args.listen,
        retry_failed=False,
        demo=str(args.workdir) if args.workdir else "",
        demo_interval=args.interval,
        demo_duration=args.duration,
        log_format=args.log_format,
        log_level=getattr(args, "log_level", "INFO"),
    )
    return serve.run(serve_args)


def _eval_only(workdir: Path) -> int:
    synthetic = write_heldout(workdir / "heldout", num_docs=5_000, num_queries=300, seed=7)
    heldout = load_heldout(synthetic.path, "test")
    for name, noise in (("checkpoint-1000", 0.6), ("checkpoint-2000", 0.9)):
        ckpt = write_precomputed_checkpoint(workdir / "run" / name, synthetic, noise=noise, seed=1)
        ev = evaluate(heldout, open_source("precomputed", ckpt), ks=(1, 10, 100))
        print(f"== {ckpt}")
        print(format_table(ev))
        print()
    print(f"example written to {workdir}; evaluate it yourself with:")
    print(
        f"  recallwatch eval --heldout {workdir / 'heldout'} "
        f"--checkpoint {workdir / 'run' / 'checkpoint-1000'} --encoder precomputed"
    )
    return 0
