"""Benchmark: recallwatch's exact evaluation against faiss alone and sentence-transformers.

Synthetic normalised float32 embeddings (default 5,000 queries x 500,000 docs x 384 dims) are
written once as ``.npy`` files in the real ``eval_embeddings/`` layout. Each measurement runs in its
own subprocess so peak RSS is its own:

- recallwatch: ``evaluate()`` with the ``precomputed`` source, i.e. streaming the corpus file in
  shards (its default: 192 MiB each, the next read while this one is searched) + exact top-K +
  every metric at k = 1, 5, 10, 20, 100
- anchor (a): faiss ``IndexFlatIP`` top-K search alone on the same arrays (index built beforehand,
  only ``search`` timed)
- anchor (b): sentence-transformers' ``InformationRetrievalEvaluator.compute_all_metrics`` on the
  same precomputed embeddings (queries through a stub model that returns them; cosine only)

It prints ratios measured in this run (these machines are noisy; never compare bare times across
runs). recallwatch and anchor (a) are measured three times (``--rounds``), alternating; the fastest
of each counts, and each round's own ratio is printed too.
Targets: recallwatch <= 1.10x (a); (b) >= 3x recallwatch; peak RSS <= 0.5 x corpus bytes + 300 MB.
OPENBLAS_CORETYPE is left as the machine sets it (it affects both faiss measurements alike).

    python bench/eval_speed.py                     # full size (~5 minutes on 2 cores)
    python bench/eval_speed.py --docs 50000 --queries 1000 --skip-st   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
KS = (1, 5, 10, 20, 100)


def generate(workdir: Path, nq: int, nd: int, dim: int, seed: int = 0) -> Path:
    """Write corpus/queries/ids and qrels once; reuse them when the sizes match."""
    ckpt = workdir / f"q{nq}-d{nd}-dim{dim}"
    emb = ckpt / "eval_embeddings"
    if (ckpt / "done").is_file():
        return ckpt
    emb.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    corpus = np.lib.format.open_memmap(
        emb / "corpus.npy", mode="w+", dtype=np.float32, shape=(nd, dim)
    )
    for a in range(0, nd, 50_000):
        block = rng.standard_normal((min(50_000, nd - a), dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        corpus[a : a + len(block)] = block
    corpus.flush()
    rel = [rng.choice(nd, size=int(rng.integers(1, 4)), replace=False) for _ in range(nq)]
    queries = np.stack([corpus[r].mean(axis=0) for r in rel]) + 0.05 * rng.standard_normal(
        (nq, dim), dtype=np.float32
    )
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    np.save(emb / "queries.npy", queries.astype(np.float32))
    (emb / "corpus_ids.txt").write_text("\n".join(f"doc{i}" for i in range(nd)) + "\n")
    (emb / "query_ids.txt").write_text("\n".join(f"q{i}" for i in range(nq)) + "\n")
    qrels = {f"q{i}": {f"doc{int(j)}": 1 for j in r} for i, r in enumerate(rel)}
    (ckpt / "qrels.json").write_text(json.dumps(qrels))
    del corpus
    (ckpt / "done").write_text("ok")
    return ckpt


def peak_rss_mb() -> float:
    """Peak RSS of this process (VmHWM: getrusage's maxrss would include the parent's, since
    Linux keeps it across fork + exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker_recallwatch(ckpt: Path) -> dict[str, float]:
    from recallwatch.encoders.precomputed import PrecomputedSource
    from recallwatch.evaluation.pipeline import evaluate
    from recallwatch.heldout.sets import HeldoutSet

    qrels = json.loads((ckpt / "qrels.json").read_text())
    nd = len((ckpt / "eval_embeddings" / "corpus_ids.txt").read_text().split())
    doc_ids = [f"doc{i}" for i in range(nd)]
    heldout = HeldoutSet(
        name="bench",
        path=ckpt,
        split="test",
        relevance_level=1,
        corpus_ids=doc_ids,
        corpus_titles=[""] * nd,
        corpus_texts=[""] * nd,
        query_ids=list(qrels),
        query_texts=[""] * len(qrels),
        qrels=qrels,
    )
    rss_before = peak_rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    ev = evaluate(heldout, PrecomputedSource(ckpt), ks=KS, similarity="cosine")
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "seconds": secs,
        "cpu_seconds": cpu,
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_mb": rss_before,
        "recall@100": ev.mean("recall", 100),
        "ndcg@10": ev.mean("ndcg", 10),
        **{f"stage_{k}": v for k, v in ev.timings.items()},
    }


def worker_faiss(ckpt: Path) -> dict[str, float]:
    import faiss

    emb = ckpt / "eval_embeddings"
    corpus = np.load(emb / "corpus.npy")
    queries = np.load(emb / "queries.npy")
    index = faiss.IndexFlatIP(corpus.shape[1])
    index.add(corpus)
    del corpus
    t0, c0 = time.perf_counter(), time.process_time()
    _, found = index.search(queries, max(KS))
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    # recall@100 of faiss' own ranking, to check recallwatch ranks the same documents.
    qrels = json.loads((ckpt / "qrels.json").read_text())
    query_ids = (emb / "query_ids.txt").read_text().split()
    recall = [
        len({f"doc{int(j)}" for j in row} & set(qrels[qid])) / len(qrels[qid])
        for qid, row in zip(query_ids, found, strict=True)
    ]
    return {
        "seconds": secs,
        "cpu_seconds": cpu,
        "peak_rss_mb": peak_rss_mb(),
        "recall@100": float(np.mean(recall)),
    }


def worker_st(ckpt: Path) -> dict[str, float]:
    import logging

    import torch
    from sentence_transformers.evaluation import InformationRetrievalEvaluator
    from sentence_transformers.util import cos_sim

    logging.disable(logging.WARNING)
    emb = ckpt / "eval_embeddings"
    qrels = json.loads((ckpt / "qrels.json").read_text())
    query_ids = (emb / "query_ids.txt").read_text().split()
    corpus_ids = (emb / "corpus_ids.txt").read_text().split()
    q = torch.from_numpy(np.load(emb / "queries.npy"))
    x = torch.from_numpy(np.load(emb / "corpus.npy"))

    class PrecomputedModel:
        """Stands in for a SentenceTransformer: returns the precomputed query embeddings."""

        def encode_query(self, sentences, **kwargs):  # type: ignore[no-untyped-def]
            return q[[int(s) for s in sentences]]

    evaluator = InformationRetrievalEvaluator(
        queries={qid: str(i) for i, qid in enumerate(query_ids)},
        corpus={cid: "" for cid in corpus_ids},
        relevant_docs={qid: set(d) for qid, d in qrels.items()},
        mrr_at_k=[1, 5, 10, 20, 100],
        ndcg_at_k=[1, 5, 10, 20, 100],
        accuracy_at_k=[1, 5, 10, 20, 100],
        precision_recall_at_k=[1, 5, 10, 20, 100],
        map_at_k=[1, 5, 10, 20, 100],
        score_functions={"cosine": cos_sim},
        write_csv=False,
    )
    t0 = time.perf_counter()
    out = evaluator.compute_all_metrics(PrecomputedModel(), corpus_embeddings=x)  # type: ignore[arg-type]
    secs = time.perf_counter() - t0
    return {
        "seconds": secs,
        "peak_rss_mb": peak_rss_mb(),
        "ndcg@10": float(out["cosine"]["ndcg@k"][10]),
    }


WORKERS = {"recallwatch": worker_recallwatch, "faiss": worker_faiss, "st": worker_st}


def measure(kind: str, ckpt: Path) -> dict[str, float]:
    """Run one worker in a fresh interpreter and return what it measured."""
    done = subprocess.run(
        [sys.executable, __file__, "--worker", kind, "--checkpoint", str(ckpt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{done.stderr[-3000:]}")
    measured: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return measured


def verdict(ok: bool) -> str:
    """OK or MISSED."""
    return "OK" if ok else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queries", type=int, default=5_000)
    parser.add_argument("--docs", type=int, default=500_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--workdir", type=Path, default=HERE / "out")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds (the fastest of each counts)"
    )
    parser.add_argument(
        "--skip-st", action="store_true", help="skip the sentence-transformers anchor"
    )
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args.checkpoint)))
        return 0

    print(
        f"generating {args.queries} x {args.docs} x {args.dim} float32 in {args.workdir} ...",
        flush=True,
    )
    ckpt = generate(args.workdir, args.queries, args.docs, args.dim)
    corpus_mb = args.docs * args.dim * 4 / 2**20
    measure("faiss", ckpt)  # warm the page cache and the libraries once, untimed
    load_before = os.getloadavg()[0]
    runs: dict[str, list[dict[str, float]]] = {"faiss": [], "recallwatch": []}
    for rnd in range(args.rounds):
        for kind in ("faiss", "recallwatch"):
            runs[kind].append(measure(kind, ckpt))
            run = runs[kind][-1]
            line = f"  {kind:<12} {run['seconds']:.2f} s ({run['cpu_seconds']:.2f} CPU s)"
            print(line, flush=True)
        same = runs["recallwatch"][rnd]["seconds"] / runs["faiss"][rnd]["seconds"]
        print(f"  round {rnd + 1}: recallwatch / faiss {same:.3f}x", flush=True)
    rw = min(runs["recallwatch"], key=lambda r: r["seconds"])
    fa = min(runs["faiss"], key=lambda r: r["seconds"])
    rss = max(r["peak_rss_mb"] for r in runs["recallwatch"])
    rss_limit = 0.5 * corpus_mb + 300
    print()
    blas = os.environ.get("OPENBLAS_CORETYPE", "(unset)")
    print(
        f"corpus {corpus_mb:.0f} MiB; cores {os.cpu_count()}; OPENBLAS_CORETYPE={blas}; "
        f"load average {load_before:.1f} before the rounds, {os.getloadavg()[0]:.1f} after"
    )
    print(
        f"recallwatch stages: read {rw['stage_encode']:.2f} s, search {rw['stage_search']:.2f} s, "
        f"metrics {rw['stage_metrics']:.2f} s; recall@100 {rw['recall@100']:.4f} "
        f"(faiss alone {fa['recall@100']:.4f})"
    )
    ratio_a = rw["seconds"] / fa["seconds"]
    print(
        f"(a) recallwatch / faiss IndexFlatIP search alone: {ratio_a:.3f}x, fastest of "
        f"{args.rounds} alternating rounds each (target <= 1.10x) {verdict(ratio_a <= 1.10)}"
    )
    cpu_ratio = min(r["cpu_seconds"] for r in runs["recallwatch"]) / min(
        r["cpu_seconds"] for r in runs["faiss"]
    )
    print(
        f"    CPU seconds (all threads; less sensitive to other work on the machine, though "
        f"OpenMP spin-waiting inflates both under load), least of each: {cpu_ratio:.3f}x"
    )
    if not args.skip_st:
        st = measure("st", ckpt)
        ratio_b = st["seconds"] / rw["seconds"]
        print(f"  st           {st['seconds']:.2f} s", flush=True)
        print(
            f"ndcg@10: sentence-transformers {st['ndcg@10']:.4f}, recallwatch {rw['ndcg@10']:.4f}"
        )
        print(
            f"(b) sentence-transformers evaluator / recallwatch: {ratio_b:.2f}x slower "
            f"(target >= 3x) {verdict(ratio_b >= 3)}"
        )
    print(
        f"peak RSS recallwatch: {rss:.0f} MiB = {rss / corpus_mb:.3f} x corpus; limit "
        f"0.5 x corpus + 300 MiB = {rss_limit:.0f} MiB {verdict(rss <= rss_limit)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
