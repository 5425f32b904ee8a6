"""What scrapes, pages and the API cost as the history grows: R runs × C evaluated checkpoints.

Seeds one store per size through the store's own API (each checkpoint: one evaluation of ~300
queries with their outcomes, stage timings, two regression verdicts; a mining change every 50
checkpoints, one false-negative estimate per mined set), serves it with a real
``recallwatch serve`` and prints, per size and as a growth ratio against the first size:

- the store's size (and per evaluation),
- ``/metrics``: the first scrape after start-up (it loads the aggregates once), the median of the
  next ones, its sample lines,
- ``/api/v1/runs``, the evaluations page (``limit=50``), one checkpoint's API detail, the run
  page ``/runs/<run>`` (median and bytes),
- idle CPU of the daemon over ``--idle-seconds`` with nothing asked of it (the polls of the run
  directories only), as the issue's table has it (its 1.22% at (100, 1,000) cannot include scrapes
  of 1.7 s every 15 s), the CPU one scrape costs, and the idle CPU with a scrape every 15 s.

Then it prints the issue's targets with their measured values: from (100, 100) to (100, 1,000)
``/metrics``, the evaluations page, the checkpoint detail and ``/api/v1/runs`` grow <= 1.5x and the
run page <= 10x; ``/metrics`` at (100, 1,000) <= 170 ms (10% of 1,702 ms); idle CPU at
(100, 1,000) <= the (1, 100) figure + 0.1 point.

Usage: PYTHONPATH=service .venv/bin/python bench/store_scale.py [--sizes 1x100,10x200,50x200]
       [--repeats 15] [--idle-seconds 60]

The issue's largest size, 100x1000, is not in the default sizes: pass it in ``--sizes``
(``1x100,10x200,50x200,100x100,100x1000``; it seeds in about a minute, 279 MB, on a loaded 2-core
machine). The seeded history has no alerts and one evaluation per checkpoint, so its store is
smaller than the issue's (498 MB): 2.8 KB per evaluation, most of it the compressed per-query
outcomes of ~300 queries.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from recallwatch.config import load_config
from recallwatch.daemon.evaluation import dataset_key
from recallwatch.store import FnEstimate, NewEvaluation, Store
from recallwatch.synthetic.heldout import write_heldout

QUERIES = 300
MINING_EVERY = 50


def seed(workdir: Path, runs: int, per_run: int) -> Path:
    """Write the config and seed its store; the config's path."""
    heldout = write_heldout(workdir / "heldout", num_docs=200, num_queries=20, seed=1)
    config: dict[str, Any] = {
        "store": {"path": str(workdir / "recallwatch.db")},
        "http": {"listen": "127.0.0.1:0"},
        "poll_interval_seconds": 5,
        "evaluation": {"encoder": "precomputed", "ks": [1, 10, 100]},
        "heldout": [{"name": "synth", "path": str(heldout.path)}],
        "runs": [
            {"name": f"run{r:03d}", "directory": str(workdir / "runs" / f"run{r:03d}")}
            for r in range(runs)
        ],
    }
    for run in config["runs"]:
        Path(run["directory"]).mkdir(parents=True)
    path = workdir / "recallwatch.yaml"
    path.write_text(yaml.safe_dump(config))
    loaded = load_config(path)
    store = Store.open(workdir / "recallwatch.db")
    store.db.query("PRAGMA synchronous = OFF")  # seeding, not the daemon: speed over safety
    outcomes = {f"q{q}": {f"d{q}": q % 120} for q in range(QUERIES)}
    metrics = {m: {1: 0.3, 10: 0.6, 100: 0.9} for m in ("recall", "ndcg", "mrr", "success")}
    timings = {"encode": 0.8, "search": 0.2, "metrics": 0.05}
    try:
        for run in loaded.runs:
            keys = {h.dataset: dataset_key(loaded, run, h) for h in loaded.heldout}
            eval_key = json.dumps(keys, sort_keys=True, separators=(",", ":"))
            run_id = store.queue.ensure_run(run.name, str(run.directory), 1.0)
            for step in range(1, per_run + 1):
                t = 1_000.0 + step * 60
                segment = (step - 1) // MINING_EVERY
                fp = hashlib.sha256(f"{run.name}/{segment}".encode()).hexdigest()
                cid = store.queue.add_checkpoint(
                    run_id,
                    name=f"checkpoint-{step}",
                    path=f"{run.directory}/checkpoint-{step}",
                    step=step,
                    eval_key=eval_key,
                    completed_at=t,
                    now=t,
                    mining_fingerprint=fp,
                    mining_content=json.dumps({"segment": segment}),
                )
                assert cid is not None
                store.results.record_evaluation(
                    NewEvaluation(
                        checkpoint_id=cid,
                        dataset="synth",
                        encoder="precomputed",
                        config_hash=keys["synth"],
                        started_at=t,
                        finished_at=t + 1,
                        metrics=metrics,
                        timings=timings,
                        counts={"queries": QUERIES},
                        outcomes=outcomes,
                    ),
                    run_id,
                )
                store.queue.set_state(cid, "evaluated", t + 2)
                for kind in ("same_mining", "previous_mining"):
                    store.ledger.record_verdict(
                        cid, dataset="synth", metric="recall", k=10, kind=kind, value=0.6,
                        baseline_value=0.6, p_value=0.5, regressed=False, now=t + 2,
                    )  # fmt: skip
                if (step - 1) % MINING_EVERY == 0:
                    store.results.record_fn_estimate(cid, fp, "fn1", _estimate(), t + 3)
    finally:
        store.close()
    return path


def _estimate() -> FnEstimate:
    return FnEstimate(
        oracle="bench", sample_size=200, false_negatives=20, estimate=0.1, lower=0.07,
        upper=0.14, random_estimate=0.02, amplification=5.0, buckets=(), details={},
    )  # fmt: skip


def start(config: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``recallwatch serve`` on the config; the process and its URL."""
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "recallwatch.cli", "serve", "--config", str(config),
             "--log-format", "json"],
            stdout=fh, stderr=fh,
        )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the daemon exited:\n{log.read_text()}")
        for line in log.read_text().splitlines():
            if line.startswith("{") and (url := json.loads(line).get("url")):
                return proc, str(url)
        time.sleep(0.05)
    raise SystemExit("the daemon did not start in 120 s")


def timed(client: httpx.Client, path: str, repeats: int) -> tuple[float, int]:
    """Median milliseconds of ``repeats`` GETs of ``path``, and the body's bytes."""
    times, size = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
        size = len(r.content)
    return statistics.median(times), size


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(runs: int, per_run: int, repeats: int, idle: float) -> dict[str, float]:
    """Seed, serve and measure one size."""
    with tempfile.TemporaryDirectory(prefix="rw-scale-") as tmp:
        workdir = Path(tmp)
        t0 = time.monotonic()
        config = seed(workdir, runs, per_run)
        seeded_s = time.monotonic() - t0
        db = workdir / "recallwatch.db"
        size = sum(p.stat().st_size for p in workdir.glob("recallwatch.db*") if p.is_file())
        proc, url = start(config, workdir / "serve.log")
        try:
            with httpx.Client(base_url=url, timeout=120) as client:
                t1 = time.perf_counter()
                first = client.get("/metrics")
                first_ms = (time.perf_counter() - t1) * 1000
                lines = [x for x in first.text.splitlines() if x and not x.startswith("#")]
                metrics_ms, _ = timed(client, "/metrics", repeats)
                runs_ms, _ = timed(client, "/api/v1/runs", repeats)
                page_ms, page_b = timed(client, "/api/v1/runs/run000/checkpoints?limit=50", repeats)
                detail_ms, detail_b = timed(
                    client, f"/api/v1/runs/run000/checkpoints/checkpoint-{per_run}", repeats
                )
                run_ms, run_b = timed(client, "/runs/run000", max(3, repeats // 3))
                before = cpu_seconds(proc.pid)
                for _ in range(repeats):
                    client.get("/metrics")
                scrape_cpu = (cpu_seconds(proc.pid) - before) / repeats
                time.sleep(2)
                before, started = cpu_seconds(proc.pid), time.monotonic()
                time.sleep(idle)
                cpu = (cpu_seconds(proc.pid) - before) / (time.monotonic() - started)
                before, started = cpu_seconds(proc.pid), time.monotonic()
                while time.monotonic() - started < idle:
                    client.get("/metrics")
                    time.sleep(min(15.0, max(0.0, idle - (time.monotonic() - started))))
                scraped = (cpu_seconds(proc.pid) - before) / (time.monotonic() - started)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        assert db.exists()
    return {
        "seed s": seeded_s,
        "store MB": size / 1e6,
        "KB per evaluation": size / 1e3 / (runs * per_run),
        "/metrics first ms": first_ms,
        "/metrics ms": metrics_ms,
        "/metrics samples": float(len(lines)),
        "/api/v1/runs ms": runs_ms,
        "evaluations page ms": page_ms,
        "evaluations page KB": page_b / 1e3,
        "checkpoint detail ms": detail_ms,
        "checkpoint detail KB": detail_b / 1e3,
        "/runs/<run> ms": run_ms,
        "/runs/<run> KB": run_b / 1e3,
        "idle CPU %": cpu * 100,
        "CPU per scrape ms": scrape_cpu * 1000,
        "idle CPU, scraped every 15 s %": scraped * 100,
    }


def main() -> int:
    """Measure every size and print the table with growth ratios against the first."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1x100,10x200,50x200", help="RxC,RxC,...")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    results = []
    for runs, per_run in sizes:
        print(f"# seeding and serving ({runs}, {per_run}) ...", file=sys.stderr, flush=True)
        results.append(measure(runs, per_run, args.repeats, args.idle_seconds))
    head = ["figure", *(f"({r}, {c})" for r, c in sizes)]
    print(" | ".join(head))
    for name in results[0]:
        base = results[0][name]
        cells = [
            f"{res[name]:.3g}" + ("" if i == 0 or not base else f" ({res[name] / base:.2f}x)")
            for i, res in enumerate(results)
        ]
        print(" | ".join([name, *cells]))
    by_size = dict(zip(sizes, results, strict=True))
    ok = True
    if (100, 100) in by_size and (100, 1000) in by_size:
        small, large = by_size[(100, 100)], by_size[(100, 1000)]
        for name, limit in (
            ("/metrics ms", 1.5),
            ("evaluations page ms", 1.5),
            ("checkpoint detail ms", 1.5),
            ("/api/v1/runs ms", 1.5),
            ("/runs/<run> ms", 10.0),
        ):
            ratio = large[name] / small[name]
            ok &= ratio <= limit
            print(f"target: {name} (100, 100) -> (100, 1000): {ratio:.2f}x (<= {limit:g}x)")
        metrics = large["/metrics ms"]
        ok &= metrics <= 170.2
        print(
            f"target: /metrics at (100, 1000): {metrics:.1f} ms, {metrics / 1702:.3f} of 1,702 ms"
        )
    if (1, 100) in by_size and (100, 1000) in by_size:
        base, top = by_size[(1, 100)]["idle CPU %"], by_size[(100, 1000)]["idle CPU %"]
        ok &= top <= base + 0.1
        print(
            f"target: idle CPU at (100, 1000) {top:.3f}% against (1, 100) {base:.3f}%: "
            f"{top - base:+.3f} point (<= +0.1)"
        )
    print("all targets met" if ok else "TARGET MISSED")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
