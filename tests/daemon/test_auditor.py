"""The FN auditor: one audit per mined set, exported; failed audits counted and retried; HTTP
judge secrets never shown; the audit's identity (config hash) and its job."""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from recallwatch.config import FalseNegativeConfig
from recallwatch.daemon import Daemon
from recallwatch.daemon.auditor import audit_job, config_hash, redact_specs
from recallwatch.daemon.runner import (
    AuditJob,
    Job,
    Result,
    estimate_in_process,
    estimate_isolated,
    run_in_process,
)
from recallwatch.metrics.collector import RecallwatchCollector
from recallwatch.mining.audit_spec import AuditSpec
from recallwatch.server import create_app
from recallwatch.store import FnEstimate, Store
from recallwatch.synthetic.heldout import SyntheticSet
from recallwatch.synthetic.mined import simulate_mined_set
from tests.daemon.helpers import Clock, daemon, make_config, poll_until_idle, states
from tests.helpers.processes import REPO
from tests.helpers.runs import fn_section, write_checkpoint

TOKEN = "Bearer s3cr3t-judge-token"
URL_SECRET = "urlsecret42"


def collected(store: Store) -> CollectorRegistry:
    """A registry over the store, as ``/metrics`` serves it."""
    registry = CollectorRegistry()
    registry.register(RecallwatchCollector(store, version="test"))
    return registry


def fn_ratio(registry: CollectorRegistry) -> float | None:
    """The exported FN rate estimate of run ``demo``."""
    return registry.get_sample_value(
        "recallwatch_false_negative_ratio", {"run": "demo", "bound": "estimate"}
    )


def simulated(run: Path) -> None:
    """A simulated mined set with dense audit qrels under ``run`` (corpus, mined.jsonl)."""
    simulate_mined_set(num_queries=120, negatives_per_query=10, num_docs=1500, seed=2).write(run)


def test_a_failed_audit_is_counted_retried_on_the_next_checkpoint_and_still_exported(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
    run = tmp_path / "run"
    simulated(run)
    (run / "mined.jsonl").rename(run / "first.jsonl")
    write_checkpoint(run, 1, synthetic, mining={"mined_set": "first.jsonl"})
    config = make_config(tmp_path, synthetic, false_negatives=fn_section(run, sample_size=200))
    d = daemon(config, store, fn_runner=estimate_in_process)
    poll_until_idle(d)
    registry = collected(store)
    first = fn_ratio(registry)
    assert first is not None

    # A new mined set whose audit fails (its file is not there yet: a judge outage alike).
    second = {"mined_set": "second.jsonl", "range_min": 0}
    write_checkpoint(run, 2, synthetic, mining=second)
    poll_until_idle(d)
    row = store.queue.checkpoint("demo", "checkpoint-2")
    assert row is not None and row.state == "evaluated"
    failure = store.results.fn_audit_failure(row.id)
    assert failure is not None and "mined set not found" in failure.message
    reason = failure.reason
    assert (
        registry.get_sample_value(
            "recallwatch_false_negative_audit_failures_total", {"run": "demo", "reason": reason}
        )
        == 1
    )
    # The series stay, at the run's newest estimate, so alerts on them do not resolve.
    assert fn_ratio(registry) == first
    assert (
        registry.get_sample_value(
            "recallwatch_false_negative_bucket_ratio", {"run": "demo", "rank_bucket": "1"}
        )
        is not None
    )

    # The next checkpoint of the same mined set audits it again, and this time it works.
    (run / "first.jsonl").rename(run / "second.jsonl")
    (run / "first.jsonl").write_text((run / "second.jsonl").read_text(encoding="utf-8"))
    write_checkpoint(run, 3, synthetic, mining=second)
    poll_until_idle(d)
    third = store.queue.checkpoint("demo", "checkpoint-3")
    assert third is not None and store.results.fn_estimate(third.id) is not None
    assert fn_ratio(registry) == store.results.fn_estimate(third.id).estimate  # type: ignore[union-attr]
    # Checkpoint 2 trained on that set: its estimate is now the set's.
    assert store.views.exported_fn_estimate(row) == store.results.fn_estimate(third.id)
    # Counted once, and the count survives a restart (it is in the store).
    store.close()
    reopened = Store.open(tmp_path / "state" / "rw.db")
    try:
        assert (
            collected(reopened).get_sample_value(
                "recallwatch_false_negative_audit_failures_total", {"run": "demo", "reason": reason}
            )
            == 1
        )
    finally:
        reopened.close()


def test_retry_failed_re_audits_without_re_evaluating(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
    run = tmp_path / "run"
    simulated(run)
    (run / "mined.jsonl").rename(run / "later.jsonl")
    write_checkpoint(run, 1, synthetic, mining={"mined_set": "mined.jsonl"})
    config = make_config(
        tmp_path,
        synthetic,
        false_negatives=fn_section(run, sample_size=200),
        evaluation={"policy": "latest_only"},
    )
    poll_until_idle(daemon(config, store, fn_runner=estimate_in_process))
    row = store.queue.checkpoint("demo", "checkpoint-1")
    assert row is not None and store.results.fn_audit_failure(row.id) is not None
    assert store.views.exported_fn_estimate(row) is None  # no estimate anywhere to fall back on

    (run / "later.jsonl").rename(run / "mined.jsonl")  # the operator fixes the cause
    poll_until_idle(daemon(config, store, fn_runner=estimate_in_process))
    assert store.results.fn_estimate(row.id) is None  # not retried by itself
    shutil.rmtree(run / "checkpoint-1")  # rotated away meanwhile: the audit does not need it
    write_checkpoint(run, 2, synthetic)  # a newer checkpoint (no mining metadata) is queued
    evaluations: list[str] = []

    def runner(job: Job, timeout: float, cancel: threading.Event) -> Result:
        evaluations.append(Path(job.checkpoint).name)
        return run_in_process(job, timeout, cancel)

    d = Daemon(config, store, runner=runner, fn_runner=estimate_in_process, clock=Clock(1e10))
    d.prepare(retry_failed=True)
    poll_until_idle(d)
    done = store.queue.checkpoint_by_id(row.id)
    # Neither superseded (latest_only) nor skipped as deleted: only the audit re-ran.
    assert done.state == "evaluated" and store.results.fn_estimate(row.id) is not None
    assert evaluations == ["checkpoint-2"]
    assert len(store.results.evaluations(row.id)) == 1


def test_each_new_mined_set_is_audited_once_and_exported(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
    run = tmp_path / "run"
    truth = simulate_mined_set(num_queries=300, negatives_per_query=20, num_docs=4000, seed=1)
    truth.write(run)  # run/corpus, run/mined.jsonl, run/audit.tsv
    mining = {"mined_set": "mined.jsonl", "range_min": 0}
    for step in (1, 2):
        write_checkpoint(run, step, synthetic, mining=mining)
    write_checkpoint(run, 3, synthetic, mining={"range_min": 0})  # names no mined set
    jobs: list[AuditJob] = []

    def audit(job: AuditJob, timeout: float, cancel: threading.Event) -> FnEstimate:
        jobs.append(job)
        return estimate_isolated(job, timeout, cancel)

    config = make_config(
        tmp_path, synthetic, false_negatives=fn_section(run, sample_size=400, seed=3)
    )
    poll_until_idle(daemon(config, store, fn_runner=audit))
    assert len(jobs) == 1 and jobs[0].mined_set == str(run / "mined.jsonl")
    ids = {c.name: c.id for c in store.queue.checkpoints("demo")}
    est = store.results.fn_estimate(ids["checkpoint-2"])
    assert est is not None and est == store.results.fn_estimate(ids["checkpoint-1"])
    assert store.results.fn_estimate(ids["checkpoint-3"]) is None
    assert est.lower <= truth.true_rate <= est.upper
    assert est.sample_size == 400 and est.oracle.startswith("qrels:")
    assert [b.rank_bucket for b in est.buckets][:3] == ["1", "2-3", "4-10"]
    assert est.amplification is not None and est.amplification > 1
    assert "recommendation" in est.details
    assert store.views.stage_histograms([1e9])["false_negatives"][1] == 1
    assert set(states(store).values()) == {"evaluated"}


def test_a_failing_audit_is_logged_and_the_checkpoint_still_evaluated(
    tmp_path: Path, synthetic: SyntheticSet, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run"
    write_checkpoint(run, 1, synthetic, mining={"mined_set": "missing.jsonl"})
    (run / "corpus").mkdir()
    (run / "corpus" / "corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\n')
    config = make_config(tmp_path, synthetic, false_negatives=fn_section(run))
    with caplog.at_level(logging.INFO, logger="recallwatch.daemon"):
        poll_until_idle(daemon(config, store, fn_runner=estimate_in_process))
    assert "false-negative estimate failed" in caplog.text and "mined set not found" in caplog.text
    assert states(store) == {"checkpoint-1": "evaluated"}


def test_without_a_false_negatives_section_nothing_is_audited(
    tmp_path: Path, synthetic: SyntheticSet, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    write_checkpoint(tmp_path / "run", 1, synthetic, mining={"mined_set": "m.jsonl"})

    def audit(job: AuditJob, timeout: float, cancel: threading.Event) -> FnEstimate:
        raise AssertionError("not configured: never called")

    with caplog.at_level(logging.INFO, logger="recallwatch.daemon"):
        poll_until_idle(daemon(make_config(tmp_path, synthetic), store, fn_runner=audit))
    assert "false-negative estimation is off" in caplog.text
    assert states(store) == {"checkpoint-1": "evaluated"}


class Judge:
    """A real HTTP judge on loopback that wants a bearer token; ``down`` answers 503."""

    def __init__(self) -> None:
        self.down = True
        self.seen_auth: list[str | None] = []
        self.requests = 0
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                judge.seen_auth.append(self.headers.get("Authorization"))
                judge.requests += 1
                if judge.down:
                    self._send(503, {"error": "judge warming up"})
                elif self.headers.get("Authorization") != TOKEN:
                    self._send(401, {"error": "unauthorized"})
                else:
                    results = [
                        {"id": p["id"], "label": "relevant" if i % 8 == 0 else "not_relevant"}
                        for i, p in enumerate(body["pairs"])
                    ]
                    self._send(200, {"results": results})

            def _send(self, status: int, doc: dict[str, Any]) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/judge?key={URL_SECRET}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def judge() -> Iterator[Judge]:
    j = Judge()
    yield j
    j.close()


def test_http_judge_token_reaches_the_judge_and_is_shown_nowhere(
    tmp_path: Path,
    synthetic: SyntheticSet,
    store: Store,
    judge: Judge,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("JUDGE_TOKEN", TOKEN)
    run = tmp_path / "run"
    simulated(run)
    mining = {"mined_set": "mined.jsonl"}
    write_checkpoint(run, 1, synthetic, mining=mining)
    section = {
        "corpus": str(run / "corpus"),
        "oracles": [judge.url],
        "sample_size": 64,
        "control_size": 0,
        "http_auth_env": "JUDGE_TOKEN",
        "http_retries": 0,
        "http_batch_size": 32,
    }
    config = make_config(tmp_path, synthetic, false_negatives=section)
    # A real audit process, which resolves the token from the environment it inherits.
    fn_runner = functools.partial(estimate_isolated, env={**os.environ, "PYTHONPATH": str(REPO)})
    with caplog.at_level(logging.DEBUG):
        d = daemon(config, store, fn_runner=fn_runner)
        poll_until_idle(d)  # the judge is down: the audit fails
        failed = store.queue.checkpoint("demo", "checkpoint-1")
        assert failed is not None and store.results.fn_audit_failure(failed.id) is not None
        judge.down = False
        write_checkpoint(run, 2, synthetic, mining=mining)
        poll_until_idle(d)
    row = store.queue.checkpoint("demo", "checkpoint-2")
    assert row is not None
    est = store.results.fn_estimate(row.id)
    assert est is not None and est.sample_size == 64 and est.false_negatives > 0
    assert judge.requests > 0 and judge.seen_auth[-1] == TOKEN

    app = create_app(store, collected(store), readiness=lambda: {"ready": True}, version="t")
    with TestClient(app) as client:
        served = [
            client.get(path).text
            for path in (
                "/metrics",
                "/api/v1/runs",
                "/api/v1/runs/demo/evaluations",
                "/api/v1/runs/demo/evaluations/checkpoint-1",
                "/api/v1/runs/demo/evaluations/checkpoint-2",
            )
        ]
    assert "127.0.0.1" in served[4]  # the oracle is shown, redacted
    conn = sqlite3.connect(tmp_path / "state" / "rw.db")
    rows = "\n".join(conn.iterdump())
    conn.close()
    logs = caplog.text + "\n".join(str(r.__dict__) for r in caplog.records)
    out, err = capfd.readouterr()  # the audit processes' own output too
    for where, text in {
        "logs": logs + out + err,
        "api": "\n".join(served),
        "store": rows,
    }.items():
        for secret in (TOKEN, "s3cr3t", URL_SECRET):
            assert secret not in text, f"{secret!r} in the {where}"


def test_the_config_hash_is_the_audits_identity_and_unchanged_by_the_restructure() -> None:
    def section(**extra: Any) -> FalseNegativeConfig:
        doc = {"corpus": "/data/corpus", "oracles": ["qrels:/data/audit.tsv"], **extra}
        return FalseNegativeConfig.model_validate(doc)

    # Pinned: a changed hash would audit every mined set again after an upgrade.
    assert config_hash(section()) == "940fe38bae9d0b04"
    # How a judge is reached is not part of it; what it judges is.
    assert config_hash(section(http_retries=0, http_timeout_seconds=5)) == "940fe38bae9d0b04"
    assert config_hash(section(sample_size=64)) != "940fe38bae9d0b04"


def test_the_audit_job_carries_the_sections_options_and_the_sets_rank_offset() -> None:
    config = FalseNegativeConfig.model_validate(
        {"corpus": "/data/corpus", "oracles": ["qrels:/data/audit.tsv"], "seed": 7}
    )
    job = audit_job(config, Path("/runs/a/mined.jsonl"), {"range_min": 10})
    assert type(job.spec) is AuditSpec and job.spec == AuditSpec.of(config)
    assert job.spec.seed == 7 and job.spec.oracles == ["qrels:/data/audit.tsv"]
    assert (job.mined_set, job.corpus, job.rank_offset) == (
        "/runs/a/mined.jsonl",
        "/data/corpus",
        10,
    )
    assert audit_job(config, Path("m"), {"range_min": True}).rank_offset == 0  # not a number
    # What crosses the process boundary comes back the same.
    assert AuditJob.from_json(json.loads(json.dumps(job.as_json()))) == job


def test_redact_specs_hides_url_credentials_in_plain_and_json_text() -> None:
    url = "https://user:pw@judge.example/v1?key=abc"
    text = json.dumps({"oracle": url}) + " " + url
    shown = redact_specs(text, ["qrels:/x", url])
    assert "pw" not in shown and "abc" not in shown and "judge.example" in shown
