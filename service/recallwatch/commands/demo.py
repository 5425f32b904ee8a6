"""``recallwatch demo``: evaluate a small synthetic example end to end.

It writes a synthetic held-out set and two checkpoints with precomputed embeddings (a good one and
a worse one) into a work directory, then evaluates both with exactly the code ``recallwatch eval``
runs, so a fresh install shows real output without any model or data set.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from recallwatch.encoders import open_source
from recallwatch.evaluate import evaluate
from recallwatch.heldout import load_heldout
from recallwatch.report import format_table
from recallwatch.synthetic import write_heldout, write_precomputed_checkpoint

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``demo`` subcommand."""
    p = sub.add_parser(
        "demo",
        help="evaluate a generated example (no model or data needed)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where to write the example (default: a temp dir)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the example and evaluate its checkpoints."""
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="recallwatch-demo-"))
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
