"""``recallwatch fn-rate``: how many mined negatives are really positives, and what to change."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from recallwatch.commands.common import positive_int, write_json
from recallwatch.errors import ConfigError
from recallwatch.mining.audit import AuditConfig, PairBuilder, draw, run_audit
from recallwatch.mining.audit_output import audit_json, format_audit, format_people
from recallwatch.mining.audit_spec import AuditSpec, cli_flag
from recallwatch.mining.corpus import Corpus, load_corpus
from recallwatch.mining.formats import FORMATS, read_mined
from recallwatch.mining.mined import MinedSet
from recallwatch.mining.oracles import OracleOptions, Pair, open_oracles, write_label_sheet
from recallwatch.mining.remine import POOL_FILE
from recallwatch.mining.sampling import RankBuckets
from recallwatch.stats import SPRTDesign

__all__ = [
    "add_mined_arguments",
    "add_oracle_arguments",
    "add_parser",
    "audit_spec",
    "oracle_options",
    "read_mined_from_args",
    "run",
]

log = logging.getLogger("recallwatch.fn_rate")
#: The defaults of the audit options (``AuditSpec``), shown and used by the flags below.
DEFAULT = AuditSpec()

EPILOG = """\
oracles (--oracle, repeat it for an ensemble where --agree M of them must agree):
  qrels:FILE             audit judgements (BEIR qrels TSV), dense for the queries they cover;
                         negatives of other queries are not sampled
  labels:FILE            human review labels, CSV or JSONL: query_id, doc_id,
                         label (relevant | not_relevant | unsure), reviewer, time
  model:DIR              a judge model directory: sentence-transformers bi-encoder or CrossEncoder
  cross-encoder:DIR, bi-encoder:DIR   the same with the kind forced
  proxy:DIR              the checkpoint under evaluation judges itself (label-free PROXY)
  http(s)://HOST/PATH    a judge endpoint; request/response contract in docs/fn-rate.md. Pass
                         credentials with --http-auth-env / --http-auth-file / --http-header-env,
                         not in the URL; the URL is shown and recorded with user:pass@ and the
                         query string redacted

mined sets: recallwatch JSONL, or sentence-transformers mine_hard_negatives output
  (triplet, n-tuple, n-tuple-scores, labeled-pair, labeled-list) as .jsonl, .csv or .parquet;
  texts are mapped back to corpus ids after whitespace normalisation.

what the numbers mean: a false negative is a mined negative the oracle judges relevant. The
overall rate is a Wilson 95% interval over a uniform sample; the stratified rate weights each
mining-rank bucket by its share of the negatives; amplification is the mined rate divided by the
rate among random corpus documents. The SPRT says whether the labels so far already decide
"rate <= 5%" against "rate >= 10%". The recommendation is the sentence-transformers filter
(range_min / relative_margin / absolute_margin) that drops the fewest negatives while the
projected rate's upper bound stays under --target.

examples:
  recallwatch fn-rate --mined mined.jsonl --corpus data/scifact --oracle qrels:audit.tsv
  recallwatch fn-rate --mined triplets.parquet --corpus data/corpus \\
      --oracle cross-encoder:models/judge --judge-threshold 0.5 --half-width 0.025 --json out.json
  recallwatch fn-rate --mined mined.jsonl --corpus data/c \\
      --oracle model:judge-a --oracle model:judge-b --agree 2
  recallwatch fn-rate --mined mined.jsonl --corpus data/c --export-sample review.csv
  recallwatch fn-rate --mined mined.jsonl --corpus data/c --oracle labels:review.csv
"""


def _fraction(value: str) -> float:
    try:
        f = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not 0.0 < f < 1.0:
        raise argparse.ArgumentTypeError(f"expected a value between 0 and 1, got {f}")
    return f


def _non_negative_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {n}")
    return n


def _buckets(value: str) -> RankBuckets:
    try:
        return RankBuckets.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_mined_arguments(p: argparse.ArgumentParser, *, corpus_required: bool) -> None:
    """Arguments that say where the mined set and its corpus are and how to read them."""
    p.add_argument("--mined", required=True, type=Path, help="the mined set (.jsonl/.csv/.parquet)")
    p.add_argument(
        "--corpus",
        required=corpus_required,
        type=Path,
        help="BEIR directory with corpus.jsonl (and queries.jsonl for query texts)",
    )
    g = p.add_argument_group("mined-set format")
    g.add_argument("--format", choices=FORMATS, default=DEFAULT.format, help="default: detect")
    g.add_argument("--anchor-column", help="sentence-transformers anchor column (default: 1st)")
    g.add_argument("--positive-column", help="positive/document column (default: 2nd)")
    g.add_argument(
        "--rank-offset",
        type=_non_negative_int,
        default=0,
        help="range_min used when mining: added to imported negatives' positions (default 0)",
    )
    g.add_argument(
        "--positives-per-query",
        type=positive_int,
        default=1,
        help="labeled-pair with scores only: leading rows per query that are positives",
    )
    g.add_argument(
        "--allow-unmatched",
        action="store_true",
        default=DEFAULT.allow_unmatched,
        help="exclude (and count) texts that match no corpus document instead of failing",
    )


def add_oracle_arguments(p: argparse.ArgumentParser, *, required: bool) -> None:
    """Arguments that open the oracle(s)."""
    p.add_argument(
        "--oracle",
        action="append",
        default=[],
        required=required,
        metavar="SPEC",
        help="who judges: qrels:FILE, labels:FILE, model:DIR, proxy:DIR, http(s)://... "
        "(repeat for an ensemble)",
    )
    p.add_argument("--agree", type=positive_int, help="ensemble: judges that must agree (m of n)")
    g = p.add_argument_group("judges")
    g.add_argument(
        "--relevance-level",
        type=int,
        default=DEFAULT.relevance_level,
        help="qrels: min relevant grade",
    )
    g.add_argument(
        "--judge-relative-margin",
        type=float,
        default=None,
        help="model: FN when score(q,neg) >= score(q,pos) - |score(q,pos)| * M, i.e. (1-M) * "
        "score(q,pos) for a positive score; sign-safe, unlike sentence-transformers' "
        "relative_margin, for judges with negative scores (logits). Default 0.05 unless only "
        "--judge-threshold is given",
    )
    g.add_argument("--judge-threshold", type=float, default=None, help="model: FN when score >= T")
    g.add_argument(
        "--device", default=DEFAULT.device, help="torch device of judge models (default cpu)"
    )
    g.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT.batch_size,
        help="judge model batch size",
    )
    g.add_argument(
        "--http-timeout",
        type=float,
        default=DEFAULT.http_timeout_seconds,
        help="seconds per request",
    )
    g.add_argument("--http-retries", type=_non_negative_int, default=DEFAULT.http_retries)
    g.add_argument(
        "--http-batch-size",
        type=positive_int,
        default=DEFAULT.http_batch_size,
        help="pairs per request",
    )
    auth = g.add_mutually_exclusive_group()
    auth.add_argument(
        "--http-auth-env",
        metavar="ENVVAR",
        help="http: send the value of environment variable ENVVAR as the Authorization header "
        "(e.g. JUDGE_TOKEN='Bearer ...')",
    )
    auth.add_argument(
        "--http-auth-file",
        type=Path,
        metavar="PATH",
        help="http: send the content of PATH (stripped) as the Authorization header",
    )
    g.add_argument(
        "--http-header-env",
        action="append",
        default=[],
        metavar="NAME=ENVVAR",
        help="http: send header NAME with the value of environment variable ENVVAR (repeatable)",
    )


def audit_spec(args: argparse.Namespace) -> AuditSpec:
    """The audit options given on the command line (a command without a flag: its default)."""
    values = {}
    for field in AuditSpec.model_fields:
        dest = cli_flag(field).removeprefix("--").replace("-", "_")
        if hasattr(args, dest):
            value = getattr(args, dest)
            values[field] = list(value.edges) if isinstance(value, RankBuckets) else value
    try:
        return AuditSpec.model_validate(values)
    except ValidationError as exc:
        errors = [(cli_flag(str(e["loc"][0])) if e["loc"] else "", e["msg"]) for e in exc.errors()]
        raise ConfigError(errors, source="the command line") from None


def read_mined_from_args(args: argparse.Namespace, corpus: Corpus | None) -> MinedSet:
    """Read the mined set named by ``add_mined_arguments``' arguments."""
    return read_mined(
        args.mined,
        corpus,
        audit_spec(args).import_options(
            anchor_column=args.anchor_column,
            positive_column=args.positive_column,
            rank_offset=args.rank_offset,
            positives_per_query=args.positives_per_query,
        ),
    )


def oracle_options(args: argparse.Namespace) -> OracleOptions:
    """Build oracle options from parsed arguments."""
    try:
        return audit_spec(args).oracle_options()
    except ValueError as exc:  # the judge rule
        raise ConfigError(
            [("--judge-relative-margin", str(exc))], source="the command line"
        ) from exc


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``fn-rate`` subcommand."""
    p = sub.add_parser(
        "fn-rate",
        help="estimate the false-negative rate of a mined set",
        description="Sample the negatives of a mined set, have an oracle judge them, and report "
        "the false-negative rate with intervals, per rank bucket, its amplification, an SPRT "
        "decision and the smallest filter that fixes it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_mined_arguments(p, corpus_required=True)
    add_oracle_arguments(p, required=False)
    g = p.add_argument_group("sampling")
    size = g.add_mutually_exclusive_group()
    size.add_argument("--sample", type=positive_int, help="negatives to judge (default 400)")
    size.add_argument(
        "--half-width", type=_fraction, help="size the sample for this interval half-width"
    )
    g.add_argument(
        "--assumed-rate",
        type=_fraction,
        default=0.5,
        help="rate assumed for --half-width (0.5: worst case; default 0.5)",
    )
    g.add_argument("--sampling", choices=("uniform", "stratified"), default=DEFAULT.sampling)
    g.add_argument("--allocation", choices=("proportional", "equal"), default="proportional")
    g.add_argument("--min-per-bucket", type=_non_negative_int, default=20)
    g.add_argument(
        "--buckets",
        type=_buckets,
        default=RankBuckets(tuple(DEFAULT.rank_buckets)),
        help="upper rank of each bucket (default 1,3,10,30,100: 1, 2-3, 4-10, 11-30, 31-100, >100)",
    )
    g.add_argument(
        "--control",
        type=_non_negative_int,
        default=DEFAULT.control_size,
        help="random corpus negatives to judge for the amplification (default: the sample size; "
        "0 disables)",
    )
    g.add_argument("--seed", type=int, default=DEFAULT.seed)
    g = p.add_argument_group("decision")
    g.add_argument(
        "--target", type=_fraction, default=DEFAULT.target, help="acceptable FN rate (0.05)"
    )
    g.add_argument(
        "--criterion",
        choices=("upper", "estimate"),
        default="upper",
        help="recommend on the projected upper bound (default) or the point estimate",
    )
    g.add_argument("--sprt-h0", type=_fraction, default=0.05, help="SPRT acceptable rate (0.05)")
    g.add_argument("--sprt-h1", type=_fraction, default=0.10, help="SPRT too-high rate (0.10)")
    g.add_argument("--alpha", type=_fraction, default=0.05, help="SPRT type I error (0.05)")
    g.add_argument("--beta", type=_fraction, default=0.05, help="SPRT type II error (0.05)")
    p.add_argument(
        "--people",
        metavar="SPEC",
        help="people's labels of part of the sample (e.g. labels:review.csv): the judge's, the "
        "people's and the prediction-powered (PPI++) rates side by side, the judge's agreement "
        "with people, and the headline from PPI",
    )
    p.add_argument("--json", dest="json_out", help="write the full result as JSON ('-': stdout)")
    p.add_argument(
        "--export-sample",
        type=Path,
        help="write the drawn sample (mined and control) as a CSV sheet for reviewers; without "
        "--oracle nothing is judged",
    )
    p.set_defaults(func=run)


def _config(args: argparse.Namespace) -> AuditConfig:
    try:
        sprt = SPRTDesign(args.sprt_h0, args.sprt_h1, args.alpha, args.beta)
    except ValueError as exc:
        raise ConfigError([("--sprt-h0/--sprt-h1", str(exc))], source="the command line") from exc
    return audit_spec(args).audit_config(
        assumed_rate=args.assumed_rate,
        allocation=args.allocation,
        min_per_bucket=args.min_per_bucket,
        criterion=args.criterion,
        sprt=sprt,
    )


def run(args: argparse.Namespace) -> int:
    """Run the audit and print the table."""
    config = _config(args)
    if not args.oracle and args.export_sample is None:
        raise ConfigError(
            [("--oracle", "give an oracle, or --export-sample to write a sheet for reviewers")],
            source="the command line",
        )
    corpus = load_corpus(args.corpus)
    mined = read_mined_from_args(args, corpus)
    log.info(
        "read %d queries, %d negatives (%s)",
        mined.report.queries,
        mined.report.negatives,
        mined.format,
    )
    oracle = (
        open_oracles(args.oracle, oracle_options(args), agree=args.agree) if args.oracle else None
    )
    if args.export_sample is not None:
        drawn = draw(mined, corpus, oracle, config)
        builder = PairBuilder(mined, corpus)
        rows: list[tuple[str, Pair, int | None]] = [
            ("mined", pair, int(drawn.table.rank[r]))
            for pair, r in zip(
                builder.rows(drawn.table, drawn.sample.rows), drawn.sample.rows, strict=True
            )
        ]
        rows += [
            ("control", builder.pair(int(q), corpus.doc_ids[int(d)]), None)
            for q, d in zip(drawn.control.query_index, drawn.control.doc_position, strict=True)
        ]
        write_label_sheet(args.export_sample, rows)
        print(
            f"wrote {len(rows)} pairs to {args.export_sample} ({drawn.sample.rows.size} mined, "
            f"{drawn.control.query_index.size} control); fill in 'label' and run "
            f"--oracle labels:{args.export_sample} with the same --seed and size",
            file=sys.stderr,
        )
        if oracle is None:
            return 0
    assert oracle is not None
    people = None if args.people is None else open_oracles([args.people], oracle_options(args))
    # ``mine()`` records the candidate pool beside its mined set: the re-mining prescription.
    pool_path = Path(mined.path).with_name(POOL_FILE)
    pool = read_mined(pool_path, corpus) if pool_path.is_file() else None
    audit = run_audit(mined, corpus, oracle, config, people=people, pool=pool)
    print(format_audit(audit, mined))
    if audit.people is not None:
        print(format_people(audit.people))
    if args.json_out:
        write_json(args.json_out, audit_json(audit, mined))
        if args.json_out != "-":
            print(f"wrote {args.json_out}", file=sys.stderr)
    return 0
