"""A Ray cluster that cannot be reached: the evaluation fails fast as ``cluster_unavailable``,
counted and shown by the API, is retried at the next poll, and the daemon keeps serving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from recallwatch.synthetic.heldout import SyntheticSet
from tests.helpers.processes import free_port, wait_for
from tests.helpers.runs import config_doc, write_checkpoint, write_config
from tests.helpers.serve import Serve

pytest.importorskip("ray")


def unavailable_failures(api: httpx.Client) -> float:
    """``recallwatch_evaluation_failures_total{reason="cluster_unavailable"}`` of run ``demo``."""
    for family in text_string_to_metric_families(api.get("/metrics").text):
        for s in family.samples:
            if s.name == "recallwatch_evaluation_failures_total" and s.labels == {
                "run": "demo",
                "reason": "cluster_unavailable",
            }:
                return s.value
    return 0.0


def failed_evaluation(api: httpx.Client) -> dict[str, Any] | None:
    """The checkpoint's API document while it is failed, with its failed evaluation."""
    c = api.get("/api/v1/runs/demo/evaluations/checkpoint-1").json()
    return c if c.get("state") == "failed" and c["evaluations"] else None


def test_an_unreachable_cluster_is_counted_shown_retried_and_the_daemon_serves(
    tmp_path: Path, synthetic: SyntheticSet, serve: type[Serve]
) -> None:
    run_dir = tmp_path / "run"
    write_checkpoint(run_dir, 1, synthetic)
    closed = free_port()  # nothing listens there
    doc = config_doc(
        tmp_path,
        synthetic.path,
        run_dir,
        evaluation={
            "backend": "ray",
            "ray": {"address": f"127.0.0.1:{closed}", "connect_timeout_seconds": 2},
        },
        poll_interval_seconds=0.5,
    )
    daemon = serve(write_config(tmp_path / "rw.yaml", doc), tmp_path / "serve.log").start()
    with httpx.Client(base_url=daemon.url, timeout=10) as api:
        failed = wait_for(lambda: failed_evaluation(api), timeout=120, what="the failure")
        assert failed["reason"] == "cluster_unavailable"
        shown = failed["evaluations"][-1]
        assert shown["status"] == "failed" and shown["reason"] == "cluster_unavailable"
        assert f"127.0.0.1:{closed}" in shown["message"]
        # Retried at the next polls: the count grows, one failure per attempt.
        wait_for(lambda: unavailable_failures(api) >= 2, timeout=120, what="a second attempt")
        attempts = api.get("/api/v1/runs/demo/evaluations/checkpoint-1").json()["attempts"]
        assert attempts >= 2
        # And the daemon keeps serving.
        assert api.get("/healthz").status_code == 200
        assert api.get("/api/v1/runs").status_code == 200
    assert daemon.proc is not None and daemon.proc.poll() is None
    assert any(
        r.get("reason") == "cluster_unavailable" or "retrying at the next poll" in r["message"]
        for r in daemon.records()
    )
