"""The HTTP API (in process, through FastAPI's test client)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from html import escape
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from recallwatch.api import outcome_summary
from recallwatch.metrics.collector import RecallwatchCollector
from recallwatch.records.precision import PrecisionReport, ProbeShift
from recallwatch.server import HttpServer, create_app
from recallwatch.store import Store
from tests.helpers.processes import wait_for
from tests.helpers.seed import add, finished, record_evaluated


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "rw.db")
    run = s.queue.ensure_run("demo", "/runs/demo", 1.0)
    for step in range(1, 8):
        cid = add(s, run, step, directory="/runs/demo", completed_at=step, now=step)
        evaluation = replace(
            finished(cid),
            started_at=10.0 * step,
            finished_at=10.0 * step + 2,
            metrics={"recall": {1: 0.5, 10: 0.9}},
            timings={"search": 1.0},
            counts={"queries": 3},
            outcomes={"q1": {"d1": 1}, "q2": {"d2": 7, "d3": 0}, "q3": {"d4": 0}},
        )
        record_evaluated(s, run, evaluation, at=10.0 * step + 3)
    yield s
    s.close()


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    registry = CollectorRegistry()
    registry.register(RecallwatchCollector(store, version="0.0.1"))
    ready: dict[str, Any] = {"ready": True, "checks": {}}
    app = create_app(store, registry, readiness=lambda: ready, version="0.0.1")
    with TestClient(app) as c:
        c.ready = ready  # type: ignore[attr-defined]
        yield c


def test_runs(client: TestClient) -> None:
    [run] = client.get("/api/v1/runs").json()
    assert run["name"] == "demo"
    assert run["latest_checkpoint"] == "checkpoint-7" and run["latest_step"] == 7
    assert run["checkpoints"]["evaluated"] == 7
    assert run["last_successful_evaluation_at"] == 72.0


def test_evaluations_are_paged_newest_first(client: TestClient) -> None:
    seen, offset = [], 0
    while offset is not None:
        page = client.get(
            "/api/v1/runs/demo/evaluations", params={"limit": 3, "offset": offset}
        ).json()
        assert page["total"] == 7
        seen += [c["name"] for c in page["items"]]
        offset = page["next_offset"]
    assert seen == [f"checkpoint-{s}" for s in range(7, 0, -1)]
    first = client.get("/api/v1/runs/demo/evaluations", params={"limit": 1}).json()["items"][0]
    assert first["evaluations"][0]["metrics"]["recall"]["10"] == 0.9
    assert first["evaluations"][0]["duration_seconds"] == 2.0
    assert (
        client.get("/api/v1/runs/demo/evaluations", params={"state": "failed"}).json()["total"] == 0
    )
    assert client.get("/api/v1/runs/demo/evaluations", params={"limit": 0}).status_code == 422
    # An offset past SQLite's integers is a 422, not a 500 (found by the schema fuzzer).
    huge = {"offset": 2**70}
    assert client.get("/api/v1/runs/demo/evaluations", params=huge).status_code == 422
    assert client.get("/api/v1/alerts", params=huge).status_code == 422


def test_one_checkpoint_with_outcomes(client: TestClient) -> None:
    doc = client.get("/api/v1/runs/demo/evaluations/checkpoint-3").json()
    assert doc["step"] == 3 and doc["state"] == "evaluated"
    summary = doc["evaluations"][0]["outcome_summary"]
    assert summary["queries"] == 3
    assert summary["queries_with_relevant_in_top_k"] == {"1": 1, "10": 2}
    assert summary["first_queries_without_relevant"] == ["q3"]
    assert doc["evaluations"][0]["per_query"] is None
    full = client.get("/api/v1/runs/demo/evaluations/checkpoint-3", params={"per_query": True})
    assert full.json()["evaluations"][0]["per_query"]["q2"] == {"d2": 7, "d3": 0}


def test_not_found(client: TestClient) -> None:
    assert client.get("/api/v1/runs/nope/evaluations").status_code == 404
    r = client.get("/api/v1/runs/demo/evaluations/checkpoint-99")
    assert r.status_code == 404 and "checkpoint-99" in r.json()["detail"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/runs/demo/{noun}", {}),
        ("/api/v1/runs/demo/{noun}", {"limit": 2, "offset": 3, "state": "evaluated"}),
        ("/api/v1/runs/demo/{noun}/checkpoint-3", {}),
        ("/api/v1/runs/demo/{noun}/checkpoint-3", {"per_query": True}),
        ("/api/v1/runs/demo/{noun}/checkpoint-99", {}),
        ("/api/v1/runs/nope/{noun}", {}),
        ("/api/v1/runs/demo/{noun}", {"limit": 0}),
    ],
)
def test_the_evaluations_paths_answer_as_the_checkpoints_paths(
    client: TestClient, path: str, params: dict[str, Any]
) -> None:
    """``/checkpoints`` is the noun of the pages; the older ``/evaluations`` paths are aliases."""
    new = client.get(path.format(noun="checkpoints"), params=params)
    old = client.get(path.format(noun="evaluations"), params=params)
    assert (new.status_code, new.json()) == (old.status_code, old.json())
    operations = client.get("/openapi.json").json()["paths"]
    assert operations["/api/v1/runs/{run}/evaluations"]["get"]["deprecated"] is True
    assert "deprecated" not in operations["/api/v1/runs/{run}/checkpoints"]["get"]


def test_health_readiness_metrics_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    client.ready["ready"] = False  # type: ignore[attr-defined]
    assert client.get("/readyz").status_code == 503
    text = client.get("/metrics")
    assert text.headers["content-type"].startswith("text/plain")
    assert 'recallwatch_recall_ratio{dataset="synth",k="10",run="demo"} 0.9' in text.text
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/runs", "/api/v1/runs/{run}/evaluations", "/readyz"} <= paths.keys()


def test_outcome_summary_counts_pairs_and_queries() -> None:
    s = outcome_summary({"a": {"x": 1, "y": 20}, "b": {"z": 0}}, [1, 10, 100])
    assert s["relevant_in_top_k"] == {"1": 1, "10": 1, "100": 2}
    assert s["queries_with_relevant_in_top_k"] == {"1": 1, "10": 1, "100": 1}
    assert s["queries_without_relevant_in_top_max_k"] == 1


def test_an_audit_retry_shows_its_failure_and_audit_only(store: Store, client: TestClient) -> None:
    row = store.queue.checkpoint("demo", "checkpoint-7")
    assert row is not None
    store.results.record_fn_audit_failure(
        row.id, 1, fingerprint="A", config_hash="h", reason="timeout", message="slow", now=99.0
    )
    store.queue.requeue_failed_audits(1, "h", 100.0)
    doc = client.get("/api/v1/runs/demo/evaluations/checkpoint-7").json()
    assert (doc["state"], doc["audit_only"], doc["reason"]) == ("discovered", True, None)
    assert doc["false_negative_audit_failure"] == {
        "reason": "timeout",
        "message": "slow",
        "failed_at": 99.0,
    }
    assert doc["evaluations"][0]["metrics"] == {"recall": {"1": 0.5, "10": 0.9}}
    page = client.get("/api/v1/runs/demo/evaluations", params={"limit": 2}).json()
    assert [c["audit_only"] for c in page["items"]] == [True, False]


def test_healthz_fails_when_the_scheduler_is_dead(client: TestClient) -> None:
    client.ready["checks"] = {"store": True, "scheduler": True}  # type: ignore[attr-defined]
    assert client.get("/healthz").status_code == 200
    client.ready["checks"]["scheduler"] = False  # type: ignore[attr-defined]
    r = client.get("/healthz")
    assert r.status_code == 503 and r.json() == {"status": "scheduler not running"}
    # Readiness is another question: a dead scheduler fails liveness even while "ready".
    assert client.get("/readyz").status_code == 200


def test_metrics_come_gzipped_when_asked(client: TestClient) -> None:
    r = client.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip"
    # httpx decodes the body; it is the full exposition.
    assert 'recallwatch_recall_ratio{dataset="synth",k="10",run="demo"} 0.9' in r.text
    plain = client.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert "recallwatch_recall_ratio" in plain.text


def test_metrics_filter_by_name(client: TestClient) -> None:
    r = client.get(
        "/metrics",
        params=[("name[]", "recallwatch_checkpoint_step"), ("name[]", "recallwatch_ready")],
    )
    samples = {line for line in r.text.splitlines() if not line.startswith("#")}
    assert samples == {'recallwatch_checkpoint_step{run="demo"} 7.0', "recallwatch_ready 1.0"}
    om = client.get(
        "/metrics",
        params={"name[]": "recallwatch_evaluations_total"},
        headers={"Accept": "application/openmetrics-text; version=1.0.0"},
    )
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert 'recallwatch_evaluations_total{run="demo"} 7.0' in om.text
    assert "recallwatch_recall_ratio" not in om.text and om.text.endswith("# EOF\n")


def test_openapi_declares_the_404_of_every_path_with_a_parameter(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    with_parameters = [p for p in paths if "{" in p]
    # A run's checkpoints and one checkpoint (``/checkpoints``, and their ``/evaluations``
    # aliases), one alert.
    assert len(with_parameters) == 5
    for path in with_parameters:
        answers = paths[path]["get"]["responses"]
        assert answers["404"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/NotFound"
        }
    assert "503" in paths["/healthz"]["get"]["responses"]
    assert "503" in paths["/readyz"]["get"]["responses"]


def test_the_real_server_answers_with_a_date_and_stops(store: Store) -> None:
    """uvicorn with the once-a-second tick (idle cost): the Date header is set, a stop ends it."""
    ready = {"ready": True, "checks": {"scheduler": True}}
    app = create_app(store, CollectorRegistry(), readiness=lambda: ready, version="1")
    server = HttpServer(app, "127.0.0.1", 0)
    server.start()
    try:

        def answer() -> httpx.Response | None:
            try:
                return httpx.get(f"{server.url}/healthz", timeout=5)
            except httpx.TransportError:
                return None

        r = wait_for(answer, what="the server to answer")
        assert r.status_code == 200 and r.headers["date"].endswith("GMT")
    finally:
        server.stop()
    assert not server._thread.is_alive()


def test_the_encoders_precision_is_shown_with_each_evaluation(
    store: Store, client: TestClient
) -> None:
    run = store.queue.ensure_run("st-run", "/runs/st", 1.0)
    cid = add(store, run, 1, directory="/runs/st", completed_at=1.0, now=1.0)
    evaluation = replace(
        finished(cid),
        encoder="st",
        started_at=1.0,
        finished_at=2.0,
        metrics={"recall": {10: 0.8}},
        timings={},
        counts={},
        outcomes={"q1": {"d1": 1}},
        precision="bf16",
        precision_report=REPORT.as_json(),
    )
    record_evaluated(store, run, evaluation, at=3.0)
    page = client.get("/api/v1/runs/st-run/evaluations").json()
    assert page["items"][0]["evaluations"][0]["precision"] == "bf16"
    doc = client.get("/api/v1/runs/st-run/evaluations/checkpoint-1").json()
    assert doc["evaluations"][0]["precision"] == "bf16"
    assert doc["history"][0]["precision"] == "bf16"
    # The parity probe's verdict and its probe shift, as stored, and in one line.
    for shown in (page["items"][0]["evaluations"][0], doc["evaluations"][0], doc["history"][0]):
        assert shown["precision_report"] == REPORT.as_json()
        assert shown["precision_summary"] == REPORT.describe()
    html = client.get("/runs/st-run/checkpoints/checkpoint-1").text
    assert escape(REPORT.describe()) in html
    metrics = client.get("/metrics").text
    labels = 'dataset="synth",precision="bf16",probe="passed",run="st-run"'
    assert f"recallwatch_encode_precision_info{{{labels}}} 1.0" in metrics
    assert 'recallwatch_precision_probe_shift_ratio{dataset="synth",k="10",metric="recall"' in (
        metrics
    )
    # Precomputed embeddings have no precision of recallwatch's; evaluations stored before the
    # reports have none either (null, and no line on the page).
    old = client.get("/api/v1/runs/demo/evaluations/checkpoint-1").json()
    assert old["evaluations"][0]["precision"] is None
    assert old["evaluations"][0]["precision_report"] is None
    assert "Encoded in" not in client.get("/runs/demo/checkpoints/checkpoint-1").text


REPORT = PrecisionReport(
    requested="auto",
    used="bf16",
    verdict="passed",
    candidate="bf16",
    texts=32,
    min_cosine=0.999979,
    threshold=0.999,
    shift=ProbeShift(8, 48, 10, 1.0, 0.875, 0.9, 0.85, flips=1, reordered=2),
)
