"""Run one evaluation (a checkpoint on a held-out set), or one FN-rate audit, in a child process.

The daemon never evaluates in its own process: a child (``python -m recallwatch.daemon.runner``)
loads the held-out set, opens the encoder (importing torch only if the encoder needs it),
evaluates, and writes a small result file (means, timings, counts, compact per-query outcomes).
So a hung evaluation can be killed at its timeout, a crash (segfault, out of memory) is a counted
failure rather than the end of the daemon, and the daemon's memory stays that of a small web
service.

The false-negative audit of a mined set (``recallwatch fn-rate``'s ``run_audit``, with the options
of an ``AuditSpec``) runs the same way, so a judge model's torch never enters the daemon either.

The child exits by itself when its parent dies (``kill -9`` of the daemon), so no orphan keeps
evaluating.

``WarmChildren`` (``evaluation.warm_child``, the daemon's default) forks the children from a warm
parent instead (``daemon.zygote``), which imported numpy, faiss, torch and sentence-transformers
once: the same child, the same isolation, without the seconds of imports per evaluation. Either
way a child imports what its job needs before it starts (``zygote.PRELOADS``) and reports how long
that took from the request (``startup`` in its result file).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from recallwatch.daemon.zygote import WarmChild, ZygoteLost, Zygotes, preload
from recallwatch.errors import (
    AuditFailureReason,
    EvaluationError,
    EvaluationFailureReason,
    RecallwatchError,
)
from recallwatch.mining.audit_spec import AuditSpec
from recallwatch.records.precision import PrecisionReport
from recallwatch.store import FnBucket, FnEstimate

__all__ = [
    "AuditJob",
    "AuditRunner",
    "EvaluationError",
    "Interrupted",
    "Job",
    "Result",
    "Runner",
    "WarmChildren",
    "estimate_in_process",
    "estimate_isolated",
    "estimate_job",
    "evaluate_job",
    "run_in_process",
    "run_isolated",
]

#: Failure reasons (``EvaluationError.reason``) of the runner itself, typed by the one list of
#: reasons (``errors.EvaluationFailureReason``); the others are ``RecallwatchError.reason`` values.
TIMEOUT: Final[EvaluationFailureReason] = "timeout"
CRASHED: Final[EvaluationFailureReason] = "crashed"
INTERNAL: Final[EvaluationFailureReason] = "internal"
NOT_JUDGED: Final[AuditFailureReason] = "not_judged"
#: What a child forked by the warm parent runs (``_child``), by name: the zygote imports it there.
CHILD: Final = "recallwatch.daemon.runner:_child"


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
    #: The backend (``evaluation.backends``) by ``kind`` (default ``local``: in this process) and
    #: its options, e.g. ``{"kind": "ray", ...}`` (``evaluation.ray``).
    backend: dict[str, Any] = field(default_factory=dict)
    #: Document ids kept per query (``evaluation.stored_rankings``), at most the largest k.
    stored_rankings: int = 0
    #: The early pass: evaluate on a pool instead of the corpus (``evaluation.pool``), in this
    #: process whatever the backend: ``{"size": n, "seed": s, "per_query": c, "rankings":
    #: {query id: [doc ids, best first]}}``, the rankings stored with an earlier exact evaluation,
    #: from which the pool's candidates come (``evaluation.pool.top_candidates``).
    pool: dict[str, Any] | None = None


@dataclass(frozen=True)
class Result:
    """What an evaluation produced, small enough to store."""

    encoder: str
    metrics: dict[str, dict[int, float]]
    timings: dict[str, float]
    counts: dict[str, int]
    #: query id -> relevant doc id -> 1-based rank within the top max(k), 0 when not retrieved.
    outcomes: dict[str, dict[str, int]]
    #: The encoder's numeric precision (fp32, bf16, fp16); None for precomputed embeddings.
    precision: str | None = None
    #: query id -> its top ``Job.stored_rankings`` document ids, best first.
    rankings: dict[str, list[str]] = field(default_factory=dict)
    #: What the encoder says of its precision (asked, used, parity probe verdict, probe shift);
    #: None where the embedding source says nothing.
    precision_report: PrecisionReport | None = None


class Interrupted(Exception):  # noqa: N818 - a signal to re-queue, not an error
    """The evaluation was stopped by shutdown; it must be re-run."""


#: ``runner(job, timeout_seconds, cancel)`` returns a ``Result`` or raises one of the above.
Runner = Callable[[Job, float, threading.Event], Result]


def evaluate_job(job: Job) -> Result:
    """Evaluate in this process (what the child runs)."""
    from recallwatch.encoders import EncoderOptions
    from recallwatch.evaluation.backends import EvaluationRequest, backend_for

    enc = job.encoder
    request = EvaluationRequest(
        job.heldout,
        job.split,
        job.relevance_level,
        enc["spec"],
        job.checkpoint,
        EncoderOptions.model_validate({k: v for k, v in enc.items() if k != "spec"}),
        ks=job.ks,
        similarity=job.similarity,  # type: ignore[arg-type]
        shard_rows=job.shard_rows,
    )
    if job.pool is not None:
        ev, heldout = _pooled(request, job.pool)
    else:
        ev, heldout = backend_for(job.backend.get("kind", "local")).evaluate(request, job.backend)
    doc_position = heldout.doc_position
    outcomes: dict[str, dict[str, int]] = {}
    for qi, qid in enumerate(heldout.query_ids):
        ranked = ev.topk.positions[qi]
        ranks: dict[str, int] = {}
        for doc in heldout.relevant(qid):
            hits = (ranked == doc_position[doc]).nonzero()[0]
            ranks[doc] = int(hits[0]) + 1 if hits.size else 0
        outcomes[qid] = ranks
    # The local backend's held-out set has every corpus id; the Ray backend's holds only the
    # judged ones, so its evaluations keep no rankings (docs/holes.md).
    corpus_ids: list[str] | None = getattr(heldout, "corpus_ids", None)
    depth = min(job.stored_rankings, ev.topk.positions.shape[1]) if corpus_ids else 0
    rankings: dict[str, list[str]] = {}
    if corpus_ids and depth:
        for qi, qid in enumerate(heldout.query_ids):
            top = ev.topk.positions[qi, :depth].tolist()
            rankings[qid] = [corpus_ids[p] for p in top if p >= 0]
    return Result(
        encoder=ev.encoder,
        metrics=ev.metrics.means(),
        timings=dict(ev.timings),
        counts={
            "queries": ev.num_queries,
            "excluded_queries": ev.num_excluded_queries,
            "documents": ev.num_docs,
            "dimension": ev.dim,
        },
        outcomes=outcomes,
        precision=ev.precision,
        rankings=rankings,
        precision_report=ev.precision_report,
    )


def _pooled(request: Any, pool: dict[str, Any]) -> tuple[Any, Any]:
    """Evaluate on the pool: every judged document, the candidates (from the earlier exact
    evaluation's stored rankings, judged documents left out), a seeded fill."""
    from recallwatch.encoders import open_source
    from recallwatch.evaluation.pipeline import evaluate
    from recallwatch.evaluation.pool import (
        build_pool,
        judged_pool_positions,
        restrict,
        top_candidates,
    )
    from recallwatch.heldout.sets import load_heldout

    r = request
    heldout = load_heldout(r.heldout, r.split, r.relevance_level)
    position = heldout.doc_position
    judged = judged_pool_positions(heldout)
    size = int(pool["size"])
    ids = top_candidates(
        pool.get("rankings", {}),
        int(pool.get("per_query", 0)),
        size,
        {heldout.corpus_ids[p] for p in judged.tolist()},
    )
    positions = build_pool(
        heldout.num_docs,
        judged,
        [position[d] for d in ids if d in position],
        size,
        seed=int(pool.get("seed", 0)),
    )
    sub = restrict(heldout, positions)
    source = open_source(r.spec, r.checkpoint, r.encoder_options)
    ev = evaluate(sub, source, ks=r.ks, similarity=r.similarity, shard_rows=r.shard_rows)
    return ev, sub


def run_in_process(job: Job, timeout: float, cancel: threading.Event) -> Result:
    """Evaluate in the calling thread (tests, and tools that need no isolation); no timeout."""
    result: Result = _translated(evaluate_job, job)
    return result


def run_isolated(
    job: Job,
    timeout: float,
    cancel: threading.Event,
    *,
    python: str = sys.executable,
    env: dict[str, str] | None = None,
) -> Result:
    """Evaluate in a child process; kill it at ``timeout`` seconds or when ``cancel`` is set."""
    r, _ = _in_child("evaluate", asdict(job), timeout, cancel, python=python, env=env)
    return _result(r)


def _result(r: dict[str, Any]) -> Result:
    return Result(
        encoder=r["encoder"],
        metrics={m: {int(k): v for k, v in by_k.items()} for m, by_k in r["metrics"].items()},
        timings=r["timings"],
        counts=r["counts"],
        outcomes=r["outcomes"],
        precision=r.get("precision"),
        rankings=r.get("rankings", {}),
        precision_report=_report(r.get("precision_report")),
    )


def _report(doc: Any) -> PrecisionReport | None:
    """The child's precision report (``asdict`` wrote it as plain data)."""
    return None if doc is None else PrecisionReport.from_json(doc)


# -- the false-negative audit of a mined set -------------------------------------------------------


@dataclass(frozen=True)
class AuditJob:
    """An FN-rate audit of one mined set: where it is, and the audit's options.

    The spec's http options name where the judges' header values are, never the values (this job
    is written to a file): the audit process reads them from the environment it inherits.
    """

    mined_set: str
    corpus: str
    spec: AuditSpec
    #: ``range_min`` used when mining (sentence-transformers formats): added to each position.
    rank_offset: int = 0

    def as_json(self) -> dict[str, Any]:
        """Plain data, to cross the process boundary."""
        return {
            "mined_set": self.mined_set,
            "corpus": self.corpus,
            "spec": self.spec.model_dump(mode="json"),
            "rank_offset": self.rank_offset,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> AuditJob:
        """The job ``as_json`` wrote."""
        return cls(
            mined_set=doc["mined_set"],
            corpus=doc["corpus"],
            spec=AuditSpec.model_validate(doc["spec"]),
            rank_offset=doc["rank_offset"],
        )


#: ``audit_runner(job, timeout_seconds, cancel)``: an FN-rate audit, like ``Runner``.
AuditRunner = Callable[[AuditJob, float, threading.Event], FnEstimate]


def estimate_job(job: AuditJob) -> FnEstimate:
    """Run the audit in this process (what the child runs): sample, judge, estimate, recommend."""
    from recallwatch.mining.audit import run_audit
    from recallwatch.mining.corpus import load_corpus
    from recallwatch.mining.formats import read_mined
    from recallwatch.mining.oracles import open_oracles
    from recallwatch.mining.remine import POOL_FILE

    spec = job.spec
    corpus = load_corpus(job.corpus)
    mined = read_mined(job.mined_set, corpus, spec.import_options(rank_offset=job.rank_offset))
    oracle = open_oracles(spec.oracles, spec.oracle_options(), agree=spec.agree)
    # ``mine()`` records the candidate pool beside its mined set: the re-mining prescription.
    pool_path = Path(job.mined_set).with_name(POOL_FILE)
    pool = read_mined(pool_path, corpus) if pool_path.is_file() else None
    audit = run_audit(mined, corpus, oracle, spec.audit_config(), pool=pool)
    best = audit.rates.best
    if best is None:
        raise EvaluationError(NOT_JUDGED, "the oracle could judge none of the sampled negatives")
    ratio = audit.amplification.ratio
    return FnEstimate(
        oracle=audit.oracle.spec,
        sample_size=audit.rates.judged,
        false_negatives=audit.rates.false_negatives,
        estimate=best.estimate,
        lower=best.lower,
        upper=best.upper,
        random_estimate=(
            audit.amplification.random.estimate if audit.amplification.random else None
        ),
        amplification=(
            ratio.estimate if ratio is not None and math.isfinite(ratio.estimate) else None
        ),
        buckets=tuple(
            FnBucket(
                b.label, b.judged, b.false_negatives, b.rate.estimate, b.rate.lower, b.rate.upper
            )
            for b in audit.rates.buckets
            if b.rate is not None
        ),
        # The judge's label of each sampled pair: the review feed combines them with people's
        # labels (prediction-powered, ``daemon.review_ppi``) without judging again.
        details={**audit.as_dict(), "judged_sample": audit.judged_sample()},
    )


def estimate_in_process(job: AuditJob, timeout: float, cancel: threading.Event) -> FnEstimate:
    """Run the audit in the calling thread, with errors translated as ``run_in_process`` does."""
    estimate: FnEstimate = _translated(estimate_job, job)
    return estimate


def estimate_isolated(
    job: AuditJob,
    timeout: float,
    cancel: threading.Event,
    *,
    python: str = sys.executable,
    env: dict[str, str] | None = None,
) -> FnEstimate:
    """Run the audit in a child process (a judge model's torch stays out of the daemon)."""
    r, _ = _in_child("estimate", job.as_json(), timeout, cancel, python=python, env=env)
    return _estimate(r)


def _estimate(r: dict[str, Any]) -> FnEstimate:
    return FnEstimate(**{**r, "buckets": tuple(FnBucket(**b) for b in r["buckets"])})


class WarmChildren:
    """``run_isolated`` and ``estimate_isolated`` with children forked by a warm parent.

    ``run`` is a ``Runner``, ``estimate`` an ``AuditRunner``: same contract, same errors, same
    isolation (``daemon.zygote``). The zygote starts at the first job; ``close`` stops it.
    """

    def __init__(self, *, python: str = sys.executable, env: dict[str, str] | None = None) -> None:
        self.python = python
        self.env = env
        self.zygotes = Zygotes()
        #: ``startup`` of the last child: seconds from request to work, modules it imported.
        self.last_startup: dict[str, Any] = {}

    @property
    def restarts(self) -> int:
        """Warm parents that died and were replaced (``recallwatch_zygote_restarts_total``)."""
        return self.zygotes.restarts

    def run(self, job: Job, timeout: float, cancel: threading.Event) -> Result:
        """Evaluate in a child forked by the warm parent; ``run_isolated``'s contract."""
        r, self.last_startup = _in_child(
            "evaluate", asdict(job), timeout, cancel, python=self.python, env=self.env,
            zygotes=self.zygotes,
        )  # fmt: skip
        return _result(r)

    def estimate(self, job: AuditJob, timeout: float, cancel: threading.Event) -> FnEstimate:
        """Audit in a child forked by the warm parent; ``estimate_isolated``'s contract."""
        r, self.last_startup = _in_child(
            "estimate", job.as_json(), timeout, cancel, python=self.python, env=self.env,
            zygotes=self.zygotes,
        )  # fmt: skip
        return _estimate(r)

    def close(self) -> None:
        """Stop the warm parent(s), and any child still running."""
        self.zygotes.close()


# -- the child process ---------------------------------------------------------------------------


class _ColdChild:
    """A child started with ``python -m recallwatch.daemon.runner`` (``Popen``)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    def poll(self) -> int | None:
        return self.proc.poll()

    def kill(self) -> None:
        """Kill the child and whatever it started (tokenizer or data-loader workers)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def _cold(
    kind: str, job_file: Path, out_file: Path, python: str, env: dict[str, str] | None
) -> _ColdChild:
    return _ColdChild(
        subprocess.Popen(
            [python, "-m", "recallwatch.daemon.runner", kind, str(job_file), str(out_file)],
            stdin=subprocess.DEVNULL,
            env=env,
            # Its own session: a Ctrl-C on the daemon's terminal reaches the daemon only, which
            # then lets the evaluation finish within the grace period instead of losing it.
            start_new_session=True,
        )
    )


def _preloads(kind: str, payload: dict[str, Any]) -> list[str]:
    """The ``zygote.PRELOADS`` groups a job needs."""
    if kind == "estimate":  # a ``model:DIR`` judge loads it with sentence-transformers
        judges = [str(o) for o in payload.get("spec", {}).get("oracles", [])]
        return ["runner", "audit", *(["st"] if any(j.startswith("model:") for j in judges) else [])]
    from recallwatch.encoders.kinds import kind_for

    try:
        name = kind_for(payload["encoder"]["spec"]).name
    except Exception:  # the child reports a bad spec
        name = ""
    return ["runner", "evaluate", *(["st"] if name in ("st", "openvino") else [])]


def _watch(
    child: _ColdChild | WarmChild,
    kind: str,
    deadline: float,
    timeout: float,
    cancel: threading.Event,
    poll_seconds: float,
) -> None:
    """Wait for the child to exit; kill it at the deadline or on cancel."""
    try:
        while child.poll() is None:
            if cancel.is_set():
                child.kill()
                raise Interrupted("stopped by shutdown")
            if time.monotonic() >= deadline:
                child.kill()
                raise EvaluationError(TIMEOUT, f"the {kind} process took longer than {timeout:g} s")
            if isinstance(child, WarmChild):
                child.done.wait(poll_seconds)  # its end is reported: no need to poll for it
            else:
                cancel.wait(poll_seconds)
    except BaseException:
        with contextlib.suppress(ZygoteLost):
            if child.poll() is None:  # an unexpected exception in this loop
                child.kill()
        raise


def _in_child(
    kind: str,
    payload: dict[str, Any],
    timeout: float,
    cancel: threading.Event,
    *,
    python: str,
    env: dict[str, str] | None,
    zygotes: Zygotes | None = None,
    poll_seconds: float = 0.1,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The child's result and its ``startup`` (seconds from request to work, modules imported)."""
    what = {"evaluate": "evaluation", "estimate": "false-negative audit"}[kind]
    groups = _preloads(kind, payload)
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryDirectory(prefix=f"recallwatch-{kind}-") as tmp:
        job_file, out_file = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_file.write_text(
            json.dumps({"job": payload, "preload": groups, "requested_at": time.time()}),
            encoding="utf-8",
        )
        child: _ColdChild | WarmChild
        if zygotes is None:
            child = _cold(kind, job_file, out_file, python, env)
        else:
            warm = zygotes.safe(groups)  # the child itself imports the rest, as a cold one
            zygote = zygotes.get(python, env, warm)
            child = zygote.fork(CHILD, kind, str(job_file), str(out_file), warm)
        lost: str | None = None
        try:
            _watch(child, kind, deadline, timeout, cancel, poll_seconds)
        except ZygoteLost as exc:
            if zygotes is not None and isinstance(child, WarmChild) and child.refused:
                zygotes.refused(warm, child.refused)
                child = _cold(kind, job_file, out_file, python, env)
                _watch(child, kind, deadline, timeout, cancel, poll_seconds)
            elif cancel.is_set():  # the zygote was stopped with the daemon
                raise Interrupted("stopped by shutdown") from exc
            else:
                lost = str(exc)
        if not out_file.is_file():
            if lost is not None:
                raise EvaluationError(
                    CRASHED,
                    f"the {what} process was lost: {lost} (the next one starts a new warm parent)",
                )
            code = child.poll()
            assert code is not None
            how = (
                f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
            )
            hint = {
                -signal.SIGKILL: " (out of memory?)",
                # Precomputed float32 embeddings are memory-mapped: a file cut short while it
                # is read ends the process with SIGBUS.
                -signal.SIGBUS: " (eval_embeddings/corpus.npy truncated while it was read? "
                "Rewrite it whole, then `recallwatch serve --retry-failed`)",
            }.get(code, "")
            raise EvaluationError(CRASHED, f"the {what} process {how}{hint}")
        doc = json.loads(out_file.read_text(encoding="utf-8"))
    startup: dict[str, Any] = doc.get("startup", {})
    if not doc["ok"]:
        raise EvaluationError(doc["reason"], doc["message"])
    result: dict[str, Any] = doc["result"]
    return result, startup


def _translated(fn: Callable[[Any], Any], job: Any) -> Any:
    try:
        return fn(job)
    except EvaluationError:
        raise
    except RecallwatchError as exc:
        raise EvaluationError(exc.reason, str(exc)) from exc
    except Exception as exc:
        raise EvaluationError(INTERNAL, f"{type(exc).__name__}: {exc}") from exc


def _exit_with_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(70)


def _child(kind: str, job_file: str, out_file: str, *, warm: bool = False) -> int:
    from recallwatch.logs import configure

    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    configure(os.environ.get("RECALLWATCH_LOG_FORMAT", "human"), "WARNING")
    # Anything the encoder prints goes to stderr: stdout is not ours to share.
    os.dup2(2, 1)
    spec = json.loads(Path(job_file).read_text(encoding="utf-8"))
    imported = preload(spec["preload"])
    startup = {
        "seconds": time.time() - spec["requested_at"],
        "imported": imported,
        "warm": warm,
        "pid": os.getpid(),
    }
    payload = spec["job"]
    try:
        if kind == "estimate":
            r: Any = estimate_in_process(AuditJob.from_json(payload), 0.0, threading.Event())
        else:
            r = run_in_process(Job(**payload), 0.0, threading.Event())
        doc: dict[str, Any] = {"ok": True, "result": asdict(r)}
    except EvaluationError as exc:
        doc = {"ok": False, "reason": exc.reason, "message": exc.message}
    doc["startup"] = startup
    tmp = Path(out_file + ".tmp")
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    tmp.replace(out_file)
    return 0


if __name__ == "__main__":
    # One runner module, whatever imports it by name (the preloads).
    sys.modules.setdefault("recallwatch.daemon.runner", sys.modules["__main__"])
    sys.exit(_child(sys.argv[1], sys.argv[2], sys.argv[3]))
