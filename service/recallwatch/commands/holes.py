"""``recallwatch holes``: is a recall drop real, or did the checkpoint find documents nobody judged?

``audit``: for the queries a checkpoint lost against its baseline (default: the previous evaluated
checkpoint of the run), pool the unjudged documents it ranked in its top k above the lost
positive (bounded, seeded), judge them with the oracles, and print the raw drop and the
hole-adjusted drop with its interval. ``--accept`` stores the documents judged relevant as a new
qrels overlay version of the held-out set (its files are never edited).

``rescore``: a run's history re-scored from the stored rankings under a qrels version, beside the
stored numbers.

    recallwatch holes audit --config recallwatch.yaml --run NAME --checkpoint checkpoint-900 \\
        --oracle labels:holes.csv [--baseline checkpoint-800] [--k 10] [--json]
    recallwatch holes rescore --config recallwatch.yaml --run NAME [--version N] [--k 10]

It reads the store and can run while the daemon is serving. See docs/holes.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from recallwatch.errors import ConfigError, InputError

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``holes`` subcommand."""
    p = sub.add_parser(
        "holes",
        help="audit a recall drop for holes in the held-out set; re-score under qrels versions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    modes = p.add_subparsers(dest="mode", required=True)
    for name, text in (
        ("audit", "the hole audit of one checkpoint against its baseline"),
        ("rescore", "a run's history re-scored from stored rankings under a qrels version"),
    ):
        m = modes.add_parser(name, help=text)
        m.add_argument("--config", type=Path, required=True, help="recallwatch.yaml")
        m.add_argument("--run", required=True, help="the run's name")
        m.add_argument("--dataset", help="the held-out set (default: the first configured)")
        m.add_argument("--metric", default="recall", help="recall (default), success, mrr, ndcg")
        m.add_argument("--k", type=int, default=10, help="the cutoff (default 10)")
        m.add_argument("--version", type=int, help="qrels overlay version (default: latest)")
        m.add_argument("--json", action="store_true", help="print a JSON document")
        if name == "audit":
            m.add_argument("--checkpoint", required=True, help="the checkpoint that regressed")
            m.add_argument("--baseline", help="default: the previous evaluated checkpoint")
            m.add_argument(
                "--oracle",
                action="append",
                default=[],
                help="oracle spec (labels:FILE, model:DIR, http(s)://...); repeat for an "
                "ensemble (default: the config's holes.oracles)",
            )
            m.add_argument("--max-pairs", type=int, help="pool bound (default holes.max_pairs)")
            m.add_argument("--seed", type=int, help="pool seed (default holes.seed)")
            m.add_argument(
                "--accept",
                action="store_true",
                help="store the documents judged relevant as a new qrels version",
            )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the audit or the re-scoring; print the outcome."""
    from recallwatch.alerting.holes import (
        HoleTarget,
        accept_relevant,
        audit_holes,
        rescore_history,
    )
    from recallwatch.config import DEFAULT_MAX_PAIRS, load_config
    from recallwatch.heldout.sets import load_heldout
    from recallwatch.mining.oracles import open_oracles
    from recallwatch.store import Store

    config = load_config(args.config)
    heldouts = {h.dataset: h for h in config.heldout}
    dataset = args.dataset or config.heldout[0].dataset
    if dataset not in heldouts:
        raise ConfigError([("dataset", f"no held-out set {dataset!r} in the config")])
    h = heldouts[dataset]
    if not Path(config.store.path).is_file():
        raise ConfigError([("store", f"no store at {config.store.path}")], source=str(args.config))
    store = Store.open(config.store.path, exclusive=False)
    try:
        heldout = load_heldout(h.path, h.split, h.relevance_level)
        if args.mode == "rescore":
            used, points = rescore_history(
                store,
                args.run,
                dataset,
                heldout,
                metric=args.metric,
                k=args.k,
                version=args.version,
            )
            if args.json:
                doc: dict[str, Any] = {
                    "run": args.run,
                    "dataset": dataset,
                    "qrels_version": used,
                    "metric": args.metric,
                    "k": args.k,
                    "checkpoints": [p.__dict__ for p in points],
                }
                print(json.dumps(doc, indent=2))
            else:
                print(f"{args.metric}@{args.k} on {dataset}, qrels version {used}")
                print(f"{'checkpoint':<28}{'step':>8}{'stored':>10}{'v' + str(used):>10}")
                for p in points:
                    print(
                        f"{p.checkpoint:<28}{p.step if p.step is not None else '-':>8}"
                        f"{_fmt(p.stored):>10}{_fmt(p.rescored):>10}"
                    )
            return 0
        rows = {r.name: r for r in store.queue.checkpoints(args.run, states=["evaluated"])}
        if args.checkpoint not in rows:
            raise InputError(f"run {args.run!r} has no evaluated checkpoint {args.checkpoint!r}")
        target = rows[args.checkpoint]
        if args.baseline is not None:
            if args.baseline not in rows:
                raise InputError(f"run {args.run!r} has no evaluated checkpoint {args.baseline!r}")
            baseline = rows[args.baseline]
        else:
            earlier = [
                r
                for r in rows.values()
                if r.step is not None and target.step is not None and r.step < target.step
            ]
            if not earlier:
                raise InputError(f"{args.checkpoint!r} has no earlier evaluated checkpoint")
            baseline = max(earlier, key=lambda r: r.step or 0)
        holes = config.holes
        max_pairs = holes.max_pairs if holes else DEFAULT_MAX_PAIRS
        seed = holes.seed if holes else 0
        specs = args.oracle or (config.holes.oracles if config.holes else [])
        if not specs:
            raise ConfigError([("oracle", "give --oracle or configure holes.oracles")])
        oracle = open_oracles(specs)
        audit, used = audit_holes(
            store,
            HoleTarget(target, baseline, dataset, h.path, h.split, h.relevance_level),
            oracle,
            metric=args.metric,
            k=args.k,
            max_pairs=max_pairs if args.max_pairs is None else args.max_pairs,
            seed=seed if args.seed is None else args.seed,
            version=args.version,
            heldout=heldout,
        )
        accepted = None
        if args.accept:
            accepted = accept_relevant(
                store,
                dataset,
                audit,
                source=",".join(specs),
                grade=h.relevance_level,
                now=time.time(),
            )
        if args.json:
            out = {
                "run": args.run,
                "checkpoint": target.name,
                "baseline": baseline.name,
                "dataset": dataset,
                "qrels_version": used,
                "oracle": oracle.info.as_dict(),
                "audit": audit.as_dict(),
                "accepted_version": accepted,
            }
            print(json.dumps(out, indent=2))
        else:
            print(
                f"{target.name} against {baseline.name} on {dataset} (qrels version {used}): "
                f"{audit.lost_queries} of {audit.queries} queries lost, {audit.displacing} "
                f"displacing documents, {audit.pooled} pooled, {audit.judged} judged"
            )
            print(audit.summary())
            print(
                "the hole-adjusted drop is "
                + ("still significant" if audit.significant else "no longer significant")
            )
            if accepted is not None:
                print(f"accepted {audit.relevant} relevant documents as qrels version {accepted}")
        return 0
    finally:
        store.close()


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
