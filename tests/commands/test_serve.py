"""``recallwatch serve`` as a real process: checkpoints written over time, checked over HTTP and
scraped by a real Prometheus (Debian package ``prometheus``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from recallwatch.encoders import open_source
from recallwatch.evaluation.pipeline import evaluate
from recallwatch.heldout.sets import load_heldout
from recallwatch.synthetic.heldout import SyntheticSet
from tests.helpers.processes import REPO, stop_processes, wait_for
from tests.helpers.prometheus import PROMETHEUS, start_prometheus
from tests.helpers.runs import (
    config_doc,
    half_written,
    mark_complete,
    write_checkpoint,
    write_config,
)
from tests.helpers.serve import Serve

SETTLE = 0.3


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a Prometheus text exposition."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def checkpoint(api: httpx.Client, step: int) -> dict[str, Any] | None:
    """The API's view of ``checkpoint-<step>`` of run ``demo`` (None while unknown)."""
    r = api.get(f"/api/v1/runs/demo/evaluations/checkpoint-{step}")
    return r.json() if r.status_code == 200 else None


def evaluated(api: httpx.Client, step: int) -> dict[str, Any] | None:
    """The checkpoint once it is evaluated."""
    c = checkpoint(api, step)
    return c if c is not None and c["state"] == "evaluated" else None


def test_serve_evaluates_each_complete_checkpoint_once_in_order(
    tmp_path: Path, synthetic: SyntheticSet, serve: type[Serve], request: pytest.FixtureRequest
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = write_config(tmp_path / "rw.yaml", config_doc(tmp_path, synthetic.path, run_dir))
    daemon = serve(config, tmp_path / "serve.log").start()
    api = httpx.Client(base_url=daemon.url, timeout=10)
    request.addfinalizer(api.close)

    write_checkpoint(run_dir, 100, synthetic, noise=0.5, mining={"range_min": 0})
    half = half_written(run_dir, 200, synthetic)
    write_checkpoint(run_dir, 300, synthetic, noise=0.8, mining={"range_min": 10})
    wait_for(lambda: evaluated(api, 300), what="checkpoint-300 evaluated")
    # Polls went by while checkpoint-200 was half-written: it is not even discovered.
    assert checkpoint(api, 200) is None
    assert evaluated(api, 100)

    # The trainer finishes checkpoint-200: the rest of its files, then the ready marker.
    write_checkpoint(run_dir, 200, synthetic, noise=0.65, complete=False)
    assert half.is_dir()
    completed_at = time.time()
    mark_complete(half, 200)
    c200 = wait_for(lambda: evaluated(api, 200), what="checkpoint-200 evaluated")

    found = {100: evaluated(api, 100), 200: c200, 300: evaluated(api, 300)}
    for step, c in found.items():
        assert c is not None
        done = [e for e in c["history"] if e["status"] == "done"]
        assert len(done) == 1, f"checkpoint-{step} evaluated {len(done)} times"
        assert c["attempts"] == 1
    finished = {step: c["evaluations"][0]["finished_at"] for step, c in found.items() if c}
    assert finished[100] < finished[300] < finished[200]
    assert c200["evaluations"][0]["started_at"] >= completed_at + SETTLE - 0.05

    # The exposed values are those `evaluate` computes on the latest checkpoint (by step).
    heldout = load_heldout(synthetic.path, "test")
    direct = {
        step: evaluate(
            heldout, open_source("precomputed", run_dir / f"checkpoint-{step}"), ks=(1, 10, 100)
        )
        for step in (200, 300)
    }
    # Nothing scraped yet: each scrape is served the next evaluated checkpoint in step order
    # (checkpoint-200 finished last), then the latest stays.
    texts = [api.get("/metrics").text for _ in range(3)]
    assert [sample(t, "recallwatch_checkpoint_step", run="demo") for t in texts] == [100, 200, 300]
    text = texts[-1]
    labels = {"run": "demo", "dataset": "synth"}
    for k in (1, 10, 100):
        for metric in ("recall", "success", "mrr", "ndcg"):
            got = sample(text, f"recallwatch_{metric}_ratio", k=str(k), **labels)
            assert got == pytest.approx(direct[300].mean(metric, k), abs=1e-12)
    assert sample(text, "recallwatch_checkpoint_step", run="demo") == 300
    assert sample(text, "recallwatch_checkpoint_info", run="demo", checkpoint="checkpoint-300") == 1
    assert "checkpoint-100" not in text and "checkpoint-200" not in text
    assert sample(text, "recallwatch_evaluations_total", run="demo") == 3
    assert sample(text, "recallwatch_checkpoints_pending", run="demo") == 0
    assert sample(text, "recallwatch_evaluation_duration_seconds_count", stage="search") == 3
    c300 = found[300]
    assert c300 is not None
    assert sample(text, "recallwatch_mining_change_timestamp_seconds", run="demo") == pytest.approx(
        c300["completed_at"]
    )
    # The API has the same numbers for an older checkpoint, and a per-query summary.
    e200 = c200["evaluations"][0]
    assert e200["metrics"]["recall"]["10"] == pytest.approx(
        direct[200].mean("recall", 10), abs=1e-12
    )
    assert e200["outcome_summary"]["queries"] == heldout.num_queries

    # OpenMetrics when asked for it; and the exposition passes promtool's lint.
    om = api.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.endswith("# EOF\n")
    promtool = shutil.which("promtool")
    if promtool:
        check = subprocess.run(
            [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
        )
        assert check.returncode == 0, check.stdout + check.stderr

    # One log line per evaluation, with run, checkpoint, step, duration and headline metrics.
    lines = [r for r in daemon.records() if r["message"] == "evaluated"]
    assert [r["checkpoint"] for r in lines] == [
        "checkpoint-100",
        "checkpoint-300",
        "checkpoint-200",
    ]
    assert all({"run", "step", "duration_seconds", "recall@10"} <= r.keys() for r in lines)

    assert daemon.stop() == 0
    assert daemon.records()[-1]["message"] == "stopped"


def test_restart_reexports_from_the_store_without_reevaluating(
    tmp_path: Path, synthetic: SyntheticSet, serve: type[Serve], request: pytest.FixtureRequest
) -> None:
    run_dir = tmp_path / "run"
    write_checkpoint(run_dir, 1, synthetic)
    write_checkpoint(run_dir, 2, synthetic)
    config = write_config(tmp_path / "rw.yaml", config_doc(tmp_path, synthetic.path, run_dir))
    first = serve(config, tmp_path / "first.log").start()
    with httpx.Client(base_url=first.url, timeout=10) as api:
        wait_for(lambda: evaluated(api, 2), what="backfill")
        api.get("/metrics")  # served checkpoint-1; the next scrape, the latest
        before = api.get("/metrics").text
    assert sample(before, "recallwatch_checkpoint_step", run="demo") == 2
    assert first.stop() == 0

    second = serve(config, tmp_path / "second.log").start()
    api = httpx.Client(base_url=second.url, timeout=10)
    request.addfinalizer(api.close)
    after = api.get("/metrics").text
    # The restart starts at the latest checkpoint: what was evaluated before it is not replayed.
    assert sample(after, "recallwatch_checkpoint_step", run="demo") == 2
    for name in ("recallwatch_recall_ratio", "recallwatch_evaluations_total"):
        labels = {"run": "demo"} if name.endswith("total") else {"run": "demo", "k": "10"}
        assert sample(after, name, **labels) == sample(before, name, **labels)
    wait_for(lambda: api.get("/readyz").status_code == 200, what="ready")
    assert not [r for r in second.records() if r["message"] == "evaluated"]


def test_serve_demo_backfills_then_follows_the_simulated_trainer(tmp_path: Path) -> None:
    log = tmp_path / "demo.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "recallwatch.cli",
                "serve",
                "--demo",
                str(tmp_path / "demo"),
                "--demo-interval",
                "0.1",
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
            ],
            stdout=fh,
            stderr=fh,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    try:

        def url() -> str | None:
            for line in log.read_text().splitlines():
                if line.startswith("{") and (u := json.loads(line).get("url")):
                    return str(u)
            return None

        with httpx.Client(base_url=wait_for(url, what="the demo daemon"), timeout=10) as api:
            run = wait_for(
                lambda: (r := api.get("/api/v1/runs").json()[0])["latest_step"] == 12000 and r,
                timeout=90,
                what="the twelfth demo checkpoint",
            )
            assert run["checkpoints"]["evaluated"] == 12
            page = api.get("/api/v1/runs/demo/evaluations", params={"limit": 12}).json()
            recall = {
                c["step"]: c["evaluations"][0]["metrics"]["recall"]["10"] for c in page["items"]
            }
            assert recall[6000] - recall[7000] > 0.05  # the mining change costs recall
            assert len({c["mining_fingerprint"] for c in page["items"]}) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Any]:
    """Start Prometheus on a free loopback port scraping the given target every second."""
    if not Path(PROMETHEUS).is_file():
        pytest.skip("Prometheus is not installed: apt-get install -y prometheus")
    procs: list[subprocess.Popen[bytes]] = []

    def start(target: str, **scrape: Any) -> str:
        glob = {"scrape_interval": "1s", "scrape_timeout": "1s"}
        job = {"job_name": "recallwatch", "static_configs": [{"targets": [target]}], **scrape}
        url, _ = start_prometheus(tmp_path, {"global": glob, "scrape_configs": [job]}, procs)
        return url

    yield start
    stop_processes(procs)


def test_prometheus_scrapes_recall(
    tmp_path: Path, synthetic: SyntheticSet, serve: type[Serve], prometheus: Any
) -> None:
    run_dir = tmp_path / "run"
    write_checkpoint(run_dir, 500, synthetic, noise=0.6)
    config = write_config(tmp_path / "rw.yaml", config_doc(tmp_path, synthetic.path, run_dir))
    daemon = serve(config, tmp_path / "serve.log").start()
    with httpx.Client(base_url=daemon.url, timeout=10) as api:
        wait_for(lambda: api.get("/api/v1/runs").json()[0]["latest_step"] == 500, what="evaluation")
        own = api.get("/api/v1/runs/demo/evaluations/checkpoint-500").json()
    expected = own["evaluations"][0]["metrics"]["recall"]["10"]

    base = prometheus(daemon.url.removeprefix("http://"))

    def queried() -> list[dict[str, Any]] | None:
        r = httpx.get(
            f"{base}/api/v1/query", params={"query": "recallwatch_recall_ratio"}, timeout=5
        )
        result: list[dict[str, Any]] = r.json()["data"]["result"]
        return result or None

    result = wait_for(queried, timeout=60, interval=0.5, what="Prometheus to scrape the daemon")
    by_k = {r["metric"]["k"]: float(r["value"][1]) for r in result}
    assert by_k["10"] == pytest.approx(expected)
    assert {r["metric"]["run"] for r in result} == {"demo"}
    assert {r["metric"]["dataset"] for r in result} == {"synth"}
    # The scrape itself is healthy (up == 1) and the info metric came through OpenMetrics.
    up = httpx.get(f"{base}/api/v1/query", params={"query": "up"}, timeout=5).json()
    assert up["data"]["result"][0]["value"][1] == "1"
    info = httpx.get(
        f"{base}/api/v1/query", params={"query": "recallwatch_checkpoint_info"}, timeout=5
    ).json()["data"]["result"]
    assert info[0]["metric"]["checkpoint"] == "checkpoint-500"


def test_tokens_guard_the_api_and_metrics_and_prometheus_scrapes_with_its_bearer(
    tmp_path: Path,
    synthetic: SyntheticSet,
    serve: type[Serve],
    prometheus: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RW_TEST_WEB_TOKEN", "pages-token")
    (tmp_path / "scrape-token").write_text("scrape-token\n")
    run_dir = tmp_path / "run"
    write_checkpoint(run_dir, 500, synthetic, noise=0.6)
    doc = config_doc(
        tmp_path,
        synthetic.path,
        run_dir,
        http={
            "web_token_env": "RW_TEST_WEB_TOKEN",
            "metrics_token_file": str(tmp_path / "scrape-token"),
        },
    )
    daemon = serve(write_config(tmp_path / "rw.yaml", doc), tmp_path / "serve.log").start()
    with httpx.Client(base_url=daemon.url, timeout=10) as anon:
        for path, status in [("/api/v1/runs", 401), ("/metrics", 401), ("/runs", 401)]:
            answer = anon.get(path)
            assert answer.status_code == status, path
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert "default-src 'self'" in answer.headers["content-security-policy"]
        assert anon.get("/healthz").status_code == 200
        assert anon.get("/readyz").status_code in (200, 503)  # open, ready or not
    pages = {"Authorization": "Bearer pages-token"}
    with httpx.Client(base_url=daemon.url, timeout=10, headers=pages) as api:
        wait_for(lambda: api.get("/api/v1/runs").json()[0]["latest_step"] == 500, what="evaluation")
        assert api.get("/metrics").status_code == 401  # the pages' token is not the scrape token
    # Prometheus' own ``authorization`` scrape setting, as docs/daemon.md shows it.
    base = prometheus(
        daemon.url.removeprefix("http://"),
        authorization={"type": "Bearer", "credentials_file": str(tmp_path / "scrape-token")},
    )

    def scraped() -> list[dict[str, Any]] | None:
        r = httpx.get(
            f"{base}/api/v1/query", params={"query": "recallwatch_recall_ratio"}, timeout=5
        )
        result: list[dict[str, Any]] = r.json()["data"]["result"]
        return result or None

    result = wait_for(scraped, timeout=60, interval=0.5, what="Prometheus to scrape the daemon")
    assert {r["metric"]["run"] for r in result} == {"demo"}
