"""Run one evaluation (a checkpoint on a held-out set) in a child process, with a timeout.

The daemon never evaluates in its own process: a child (``python -m recallwatch.runner``) loads the
held-out set, opens the encoder (importing torch only if the encoder needs it), evaluates, and
writes a small result file (means, timings, counts, compact per-query outcomes). So a hung
evaluation can be killed at its timeout, a crash (segfault, out of memory) is a counted failure
rather than the end of the daemon, and the daemon's memory stays that of a small web service.

The child exits by itself when its parent dies (``kill -9`` of the daemon), so no orphan keeps
evaluating.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "EvaluationError",
    "Interrupted",
    "Job",
    "Result",
    "Runner",
    "evaluate_job",
    "run_in_process",
    "run_isolated",
]

log = logging.getLogger(__name__)

#: Failure reasons of the runner itself; the others are ``RecallwatchError.reason`` values.
TIMEOUT, CRASHED, INTERNAL = "timeout", "crashed", "internal"


@dataclass(frozen=True)
class Job:
    """What to evaluate: plain data, so it crosses the process boundary as JSON."""

    checkpoint: str
    encoder: dict[str, Any]
    heldout: str
    split: str
    relevance_level: int
    ks: list[int]
    similarity: str
    shard_rows: int


@dataclass(frozen=True)
class Result:
    """What an evaluation produced, small enough to store."""

    encoder: str
    metrics: dict[str, dict[int, float]]
    timings: dict[str, float]
    counts: dict[str, int]
    #: query id -> relevant doc id -> 1-based rank within the top max(k), 0 when not retrieved.
    outcomes: dict[str, dict[str, int]]


class EvaluationError(Exception):
    """The evaluation failed; ``reason`` is bounded (a metric label), ``message`` is for people."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Interrupted(Exception):  # noqa: N818 - a signal to re-queue, not an error
    """The evaluation was stopped by shutdown; it must be re-run."""


#: ``runner(job, timeout_seconds, cancel)`` returns a ``Result`` or raises one of the above.
Runner = Callable[[Job, float, threading.Event], Result]


def evaluate_job(job: Job) -> Result:
    """Evaluate in this process (what the child runs)."""
    from recallwatch.encoders import EncoderOptions, open_source
    from recallwatch.evaluate import evaluate
    from recallwatch.heldout import load_heldout

    heldout = load_heldout(job.heldout, job.split, job.relevance_level)
    enc = job.encoder
    options = EncoderOptions(**{k: v for k, v in enc.items() if k != "spec"})
    source = open_source(enc["spec"], job.checkpoint, options)
    ev = evaluate(
        heldout,
        source,
        ks=job.ks,
        similarity=job.similarity,  # type: ignore[arg-type]
        shard_rows=job.shard_rows,
    )
    doc_position = {d: i for i, d in enumerate(heldout.corpus_ids)}
    outcomes: dict[str, dict[str, int]] = {}
    for qi, qid in enumerate(heldout.query_ids):
        ranked = ev.topk.positions[qi]
        ranks: dict[str, int] = {}
        for doc in heldout.relevant(qid):
            hits = (ranked == doc_position[doc]).nonzero()[0]
            ranks[doc] = int(hits[0]) + 1 if hits.size else 0
        outcomes[qid] = ranks
    return Result(
        encoder=source.name,
        metrics=ev.metrics.means(),
        timings=dict(ev.timings),
        counts={
            "queries": ev.num_queries,
            "excluded_queries": ev.num_excluded_queries,
            "documents": ev.num_docs,
            "dimension": ev.dim,
        },
        outcomes=outcomes,
    )


def run_in_process(job: Job, timeout: float, cancel: threading.Event) -> Result:
    """Evaluate in the calling thread (tests, and tools that need no isolation); no timeout."""
    from recallwatch.errors import RecallwatchError

    try:
        return evaluate_job(job)
    except RecallwatchError as exc:
        raise EvaluationError(exc.reason, str(exc)) from exc
    except Exception as exc:
        raise EvaluationError(INTERNAL, f"{type(exc).__name__}: {exc}") from exc


def run_isolated(
    job: Job,
    timeout: float,
    cancel: threading.Event,
    *,
    python: str = sys.executable,
    env: dict[str, str] | None = None,
    poll_seconds: float = 0.1,
) -> Result:
    """Evaluate in a child process; kill it at ``timeout`` seconds or when ``cancel`` is set."""
    with tempfile.TemporaryDirectory(prefix="recallwatch-eval-") as tmp:
        job_file, out_file = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_file.write_text(json.dumps(asdict(job)), encoding="utf-8")
        proc = subprocess.Popen(
            [python, "-m", "recallwatch.runner", str(job_file), str(out_file)],
            stdin=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + timeout
        try:
            while proc.poll() is None:
                if cancel.is_set():
                    proc.kill()
                    proc.wait()
                    raise Interrupted("stopped by shutdown")
                if time.monotonic() >= deadline:
                    proc.kill()
                    proc.wait()
                    raise EvaluationError(TIMEOUT, f"the evaluation took longer than {timeout:g} s")
                cancel.wait(poll_seconds)
        finally:
            if proc.poll() is None:  # an unexpected exception in this loop
                proc.kill()
                proc.wait()
        if not out_file.is_file():
            code = proc.returncode
            how = (
                f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
            )
            hint = " (out of memory?)" if code == -signal.SIGKILL else ""
            raise EvaluationError(CRASHED, f"the evaluation process {how}{hint}")
        doc = json.loads(out_file.read_text(encoding="utf-8"))
    if not doc["ok"]:
        raise EvaluationError(doc["reason"], doc["message"])
    r = doc["result"]
    return Result(
        encoder=r["encoder"],
        metrics={m: {int(k): v for k, v in by_k.items()} for m, by_k in r["metrics"].items()},
        timings=r["timings"],
        counts=r["counts"],
        outcomes=r["outcomes"],
    )


def _exit_with_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(70)


def _child(job_file: str, out_file: str) -> int:
    from recallwatch.logs import configure

    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    configure(os.environ.get("RECALLWATCH_LOG_FORMAT", "human"), "WARNING")
    # Anything the encoder prints goes to stderr: stdout is not ours to share.
    os.dup2(2, 1)
    job = Job(**json.loads(Path(job_file).read_text(encoding="utf-8")))
    try:
        r = run_in_process(job, 0.0, threading.Event())
        doc: dict[str, Any] = {"ok": True, "result": asdict(r)}
    except EvaluationError as exc:
        doc = {"ok": False, "reason": exc.reason, "message": exc.message}
    tmp = Path(out_file + ".tmp")
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    tmp.replace(out_file)
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1], sys.argv[2]))
