"""The live OpenAPI document against what the API answers: a schema fuzzer (schemathesis) sends
generated requests to every operation of a real server over a small store and finds nothing.

Every response must be declared (status code, content type, body schema): the 404 of an unknown
run, checkpoint or alert, the 422 of a bad parameter, the 503 of an unhealthy daemon.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from prometheus_client import CollectorRegistry

from recallwatch.metrics.collector import RecallwatchCollector
from recallwatch.server import HttpServer, create_app
from recallwatch.store import AlertWrite, NewMessage, Store
from tests.helpers.alerts import T0, regression_alert
from tests.helpers.processes import wait_for
from tests.helpers.seed import add, finished, record_evaluated

#: Generated requests per operation: enough to reach every parameter's edge cases, bounded.
EXAMPLES = 25


def small_store(path: Path) -> Store:
    """Two runs, evaluated, failed and queued checkpoints, a firing and a resolved alert."""
    store = Store.open(path)
    run = store.queue.ensure_run("demo", "/runs/demo", 1.0)
    store.queue.ensure_run("idle", "/runs/idle", 1.0)
    for step in (1, 2, 3):
        cid = add(
            store,
            run,
            step,
            fp="a" * 64,
            mining_content='{"range_min": 0}',
            directory="/runs/demo",
            now=float(step),
        )
        if step == 3:
            continue  # queued
        evaluation = replace(
            finished(cid),
            started_at=10.0 * step,
            finished_at=10.0 * step + 2,
            metrics={"recall": {1: 0.5, 10: 0.9}},
            timings={"search": 1.0},
            outcomes={"q1": {"d1": 1}, "q2": {"d2": 0}},
        )
        record_evaluated(store, run, evaluation, at=10.0 * step + 3)
    firing = regression_alert()
    resolved = replace(regression_alert(status="resolved"), id="al_resolved")
    store.ledger.apply_alerts(
        [
            AlertWrite(firing, "firing", opened_at=T0, notified_at=T0, repeats=0),
            AlertWrite(resolved, "resolved", opened_at=T0 - 9, notified_at=T0, repeats=1),
        ],
        [NewMessage("m1", firing.id, "hook", "r", "firing", b"{}", T0)],
    )
    return store


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real HTTP server (uvicorn on a loopback port) over the small store."""
    store = small_store(tmp_path_factory.mktemp("schema") / "rw.db")
    registry = CollectorRegistry()
    registry.register(RecallwatchCollector(store, version="t"))

    def readiness() -> dict[str, Any]:
        checks = {"store": store.ping(), "scheduler": True, "recent_poll": True}
        return {
            "ready": all(checks.values()),
            "checks": checks,
            "last_poll_at": 1.0,
            "last_poll_error": None,
            "evaluating": 0,
        }

    server = HttpServer(
        create_app(store, registry, readiness=readiness, version="t"), "127.0.0.1", 0
    )
    server.start()
    try:

        def answers() -> bool:
            try:
                return httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(answers, what="the server to answer")
        yield server.url
    finally:
        server.stop()
        store.close()


def test_every_answer_is_the_one_the_openapi_document_declares(live: str) -> None:
    schema = schemathesis.openapi.from_url(f"{live}/openapi.json")
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,  # the same examples on every run: a failure is reproducible
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Any) -> None:
            case.call_and_validate()

        fuzz()
        tested.append(operation.label)
    # Every operation of the API was fuzzed (/metrics is not part of the document), the
    # ``/evaluations`` aliases of the two checkpoint operations included.
    assert len(tested) == 10, tested
