"""recallwatch's openvino encoder against sentence-transformers fp32 on the full SciFact test set.

Encodes the 300 test queries and all 5,183 documents with ``OpenVINOEncoder`` (``--precision``,
default ``auto``: bf16 where the CPU has it and the parity probe passes) and with
sentence-transformers' own fp32 ``encode`` (the anchor of the numbers), then evaluates both with
the same exact search and prints recall@k and nDCG@k side by side with their deltas.
Target: |delta| <= 0.005 at recall@10 and nDCG@10.

    python bench/openvino_parity.py      # ~10 minutes on 2 busy cores
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "service"))

from encode_speed import DEFAULT_SCIFACT, ArraySource, minilm_dir  # noqa: E402

KS = (1, 10, 100)
TOLERANCE = 0.005


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scifact", type=Path, default=DEFAULT_SCIFACT)
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument(
        "--reference-cache",
        type=Path,
        default=None,
        help="the tests' cached fp32 embeddings (.pytest_cache/d/scifact-minilm-*): skips the "
        "anchor's encoding (they are recallwatch's st encoder in fp32, sentence-transformers' "
        "own numbers)",
    )
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    from recallwatch.encoders.base import TextEncoderSource
    from recallwatch.encoders.openvino import OpenVINOEncoder
    from recallwatch.evaluation.pipeline import evaluate
    from recallwatch.heldout.sets import load_heldout

    heldout = load_heldout(args.scifact, "test")
    model = minilm_dir()
    t0 = time.perf_counter()
    if args.reference_cache is not None:
        c = args.reference_cache
        qids = (c / "query_ids.txt").read_text().split("\n")
        dids = (c / "corpus_ids.txt").read_text().split("\n")
        qa = np.load(c / "queries.npy")[[qids.index(q) for q in heldout.query_ids]]
        row = {d: i for i, d in enumerate(dids)}
        xa = np.load(c / "corpus.npy")[[row[d] for d in heldout.corpus_ids]]
    else:
        st = SentenceTransformer(str(model), device="cpu", local_files_only=True)
        qa = st.encode(heldout.query_texts, batch_size=args.batch_size)
        xa = st.encode(heldout.corpus_texts, batch_size=args.batch_size)
    t_st = time.perf_counter() - t0
    enc = OpenVINOEncoder(model, precision=args.precision, batch_size=args.batch_size)
    source = TextEncoderSource(enc)
    t0 = time.perf_counter()
    qb = source.queries(heldout)
    xb = np.concatenate([s.embeddings for s in source.corpus_shards(heldout, 1 << 30)])
    t_ov = time.perf_counter() - t0
    ref = evaluate(heldout, ArraySource("st-fp32", qa, xa), ks=KS)
    got = evaluate(heldout, ArraySource("openvino", qb, xb), ks=KS)
    print(
        f"SciFact test {heldout.num_queries} queries, {heldout.num_docs} docs; openvino "
        f"precision {enc.precision} ({enc.parity.describe() if enc.parity else 'no probe'})"
    )
    print(
        f"encode seconds (load average {os.getloadavg()[0]:.1f}): st fp32 {t_st:.1f}, "
        f"openvino {t_ov:.1f}"
    )
    worst = 0.0
    for metric in ("recall", "ndcg"):
        for k in KS:
            a, b = ref.mean(metric, k), got.mean(metric, k)
            if k == 10:
                worst = max(worst, abs(b - a))
            print(f"{metric}@{k:<4} st fp32 {a:.4f}  openvino {b:.4f}  delta {b - a:+.4f}")
    print(
        f"largest |delta| at k=10: {worst:.4f} (target <= {TOLERANCE}) "
        f"{'OK' if worst <= TOLERANCE else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
