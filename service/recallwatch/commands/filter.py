"""``recallwatch filter``: write a cleaned mined set, dropping or down-weighting false negatives."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from recallwatch.commands.common import write_json
from recallwatch.commands.fn_rate import (
    add_mined_arguments,
    add_oracle_arguments,
    oracle_options,
    read_mined_from_args,
)
from recallwatch.errors import ConfigError, InputError
from recallwatch.mining.audit import PairBuilder, outcome_codes
from recallwatch.mining.corpus import load_corpus
from recallwatch.mining.curve import FAMILIES, parse_threshold, resolve_threshold
from recallwatch.mining.filtering import (
    FilterOutcome,
    confidence_filter,
    ensemble_filter,
    soft_filter,
    write_filtered,
)
from recallwatch.mining.mined import NegativeTable
from recallwatch.mining.oracles import open_oracle
from recallwatch.mining.recommend import FilterSpec

__all__ = ["add_parser", "run"]

log = logging.getLogger("recallwatch.filter")

EPILOG = """\
strategies:
  confidence   drop by rank and margin, in sentence-transformers' terms:
               --range-min R (drop ranks 1..R), --relative-margin M (drop negatives scoring above
               positive * (1 - M), exactly as mine_hard_negatives does, also for negative
               scores), --absolute-margin A (drop score + A > positive);
               or --recommendation FILE to apply what `recallwatch fn-rate --json FILE` found
  ensemble     judge every negative with each --oracle; keep only those the judges agree are
               negative (drop when --agree M of them say relevant, default 1; unsure drops too
               unless --keep-unsure)
  soft         keep everything; add a weight in [0, 1] per negative: 0 when the judge scores it
               like the positive, 1 when at least --soft-scale relative margin below it. The judge
               is --oracle (a model), or the mined set's own scores without one

The output keeps the input's format (recallwatch JSONL, or the same sentence-transformers
layout; the file type follows --out's extension). n-tuple rows that lose a negative are dropped
whole, as mine_hard_negatives drops rows without enough negatives.

examples:
  recallwatch filter --mined mined.jsonl --out clean.jsonl --strategy confidence --range-min 3
  recallwatch filter --mined mined.jsonl --out clean.jsonl --recommendation fnrate.json
  recallwatch filter --mined triplets.parquet --corpus data/c --out clean.parquet \\
      --strategy ensemble --oracle model:judge-a --oracle cross-encoder:judge-b
  recallwatch filter --mined mined.jsonl --corpus data/c --out soft.jsonl --strategy soft \\
      --oracle cross-encoder:judge
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``filter`` subcommand."""
    p = sub.add_parser(
        "filter",
        help="write a cleaned mined set",
        description="Drop or down-weight likely false negatives of a mined set and write it back "
        "in its own format, with a summary of what was dropped and why.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_mined_arguments(p, corpus_required=False)
    p.add_argument("--out", required=True, type=Path, help="where to write the cleaned set")
    p.add_argument("--strategy", choices=("confidence", "ensemble", "soft"), default="confidence")
    g = p.add_argument_group("confidence")
    g.add_argument(
        "--range-min", default=None, help="drop ranks 1..R (or pXX: the XXth percentile of ranks)"
    )
    g.add_argument(
        "--relative-margin",
        default=None,
        help="drop negatives scoring above positive * (1 - M), sentence-transformers' rule; or "
        "pXX: the XXth percentile of the miner's relative margins, which drops about XX%% of any "
        "model's negatives",
    )
    g.add_argument(
        "--absolute-margin",
        default=None,
        help="drop score + A > positive; or pXX (percentile of the miner's absolute margins)",
    )
    g.add_argument(
        "--recommendation",
        type=Path,
        help="JSON written by `recallwatch fn-rate --json`: apply its recommended filter",
    )
    add_oracle_arguments(p, required=False)
    g = p.add_argument_group("ensemble and soft")
    g.add_argument("--keep-unsure", action="store_true", help="ensemble: keep unsure negatives")
    g.add_argument("--soft-scale", type=float, default=0.1, help="soft: margin of full weight")
    p.add_argument("--summary", help="also write the summary as JSON ('-': stdout)")
    p.set_defaults(func=run)


def _spec_from_args(args: argparse.Namespace, table: NegativeTable) -> FilterSpec:
    given = any(v is not None for v in (args.range_min, args.relative_margin, args.absolute_margin))
    if args.recommendation is not None:
        if given:
            raise ConfigError(
                [("--recommendation", "give a recommendation file or explicit margins, not both")],
                source="the command line",
            )
        try:
            doc = json.loads(args.recommendation.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(
                f"cannot read the fn-rate JSON ({exc})", path=args.recommendation
            ) from exc
        best = (doc.get("recommendation") or {}).get("best") if isinstance(doc, dict) else None
        if not isinstance(best, dict) or not isinstance(best.get("filter"), dict):
            raise InputError(
                "no recommended filter in this file (fn-rate found none, or it is not fn-rate "
                "JSON)",
                path=args.recommendation,
            )
        return FilterSpec.from_dict(best["filter"])
    if not given:
        raise ConfigError(
            [
                (
                    "--strategy confidence",
                    "give --range-min, --relative-margin, --absolute-margin or --recommendation",
                )
            ],
            source="the command line",
        )
    values: dict[str, float | None] = {}
    for family in FAMILIES:
        raw = getattr(args, family)
        if raw is None:
            values[family] = None
            continue
        flag = "--" + family.replace("_", "-")
        try:
            values[family] = resolve_threshold(table, family, parse_threshold(family, raw))
        except ValueError as exc:
            raise ConfigError([(flag, str(exc))], source="the command line") from exc
    try:
        return FilterSpec(
            int(values["range_min"] or 0), values["relative_margin"], values["absolute_margin"]
        )
    except ValueError as exc:
        raise ConfigError([("--range-min", str(exc))], source="the command line") from exc


def run(args: argparse.Namespace) -> int:
    """Filter the mined set and write it."""
    corpus = load_corpus(args.corpus) if args.corpus is not None else None
    mined = read_mined_from_args(args, corpus)
    table = mined.table()
    outcome: FilterOutcome
    if args.strategy == "confidence":
        outcome = confidence_filter(table, _spec_from_args(args, table))
    else:
        if args.strategy == "ensemble" and not args.oracle:
            raise ConfigError(
                [("--oracle", "the ensemble strategy needs at least one --oracle")],
                source="the command line",
            )
        if args.oracle and corpus is None:
            raise ConfigError(
                [("--corpus", "judges need the corpus texts: give --corpus")],
                source="the command line",
            )
        options = oracle_options(args)
        oracles = [open_oracle(spec, options) for spec in args.oracle]
        pairs = PairBuilder(mined, corpus).rows(table, np.arange(len(table), dtype=np.int64))
        log.info("judging %d negatives with %d judge(s)", len(pairs), len(oracles))
        if args.strategy == "ensemble":
            votes = [outcome_codes(o.judge(pairs)) for o in oracles]
            agree = args.agree or 1
            try:
                outcome = ensemble_filter(
                    votes,
                    agree=agree,
                    drop_unsure=not args.keep_unsure,
                    judges=[o.info.spec for o in oracles],
                )
            except ValueError as exc:
                raise ConfigError([("--agree", str(exc))], source="the command line") from exc
        else:
            if len(oracles) > 1:
                raise ConfigError(
                    [("--oracle", "the soft strategy takes one judge")], source="the command line"
                )
            if oracles:
                judged = oracles[0].judge(pairs)
                score = np.array([np.nan if j.score is None else j.score for j in judged])
                positive = np.array(
                    [np.nan if j.positive_score is None else j.positive_score for j in judged]
                )
                judge = oracles[0].info.spec
            else:
                score, positive, judge = table.score, table.positive_score, "the mined set's scores"
            outcome = soft_filter(score, positive, scale=args.soft_scale, judge=judge)
    written = write_filtered(mined, table, outcome, args.out)
    summary: dict[str, Any] = {
        "mined_set": str(mined.path),
        "format": mined.format,
        "out": str(args.out),
        **outcome.as_dict(),
        "write": written,
        "import": mined.report.as_dict(),
    }
    print(_format_summary(summary))
    if args.summary:
        write_json(args.summary, summary)
    return 0


def _format_summary(s: dict[str, Any]) -> str:
    lines = [
        f"{s['strategy']} filter of {s['mined_set']} ({s['format']}) -> {s['out']}",
        f"negatives: {s['negatives']:,}, kept {s['kept']:,}, dropped {s['dropped']:,} "
        f"({s['dropped_fraction']:.1%})",
    ]
    for reason, count in s["dropped_by"].items():
        lines.append(f"  dropped {count:,}: {reason}")
    if "weights" in s:
        w = s["weights"]
        lines.append(
            f"weights: mean {w['mean']:.3f}, {w['below_one']:,} below 1, {w['zero']:,} at 0"
        )
    write = s["write"]
    if "rows_in" in write:
        lines.append(f"rows: {write['rows_in']:,} in, {write['rows_out']:,} out")
        if write["collateral_negatives"]:
            lines.append(
                f"  {write['collateral_negatives']:,} kept negatives went with n-tuple rows that "
                "lost another negative"
            )
        if write["untouched_negatives"]:
            lines.append(
                f"  {write['untouched_negatives']:,} negatives matched no corpus text and were "
                "written unchanged"
            )
    return "\n".join(lines)
