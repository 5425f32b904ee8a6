"""A backfill reaches a real Prometheus checkpoint by checkpoint (issue 10).

``recallwatch serve`` backfills the six-checkpoint run of ``tests.helpers.history`` (all written
before it starts; 400 and 500 regress after a mining change, 600 recovers) while a real Prometheus
(Debian package ``prometheus``), started first, scrapes it every 2 s. Once Prometheus has the
first checkpoint, it is paused (SIGSTOP) until two more are evaluated, so that several checkpoints
are evaluated between two scrapes however fast the machine is. Prometheus' range query must hold
every step in order, each with the recall@10 the daemon computed for it and the regression verdict
it stored for it. Every wait is for a condition, bounded by a generous deadline.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from recallwatch.store import Store
from tests.helpers.history import STEPS, backfilled, evaluations
from tests.helpers.processes import REPO, free_port, stop_processes, wait_for
from tests.helpers.prometheus import PROMETHEUS, start_prometheus

SCRAPE_INTERVAL = "2s"
#: Query resolution of the range queries: finer than the scrape interval, so every scrape's
#: sample is the value at one query point at least.
RESOLUTION = 0.5
DEADLINE = 300.0
RECALL = 'recallwatch_recall_ratio{run="demo",dataset="synth",k="10"}'
REGRESSION = (
    "recallwatch_recall_regression"
    '{run="demo",dataset="synth",k="10",compare_with="previous_mining"}'
)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Any]:
    """Start Prometheus on a free loopback port, scraping a target every ``SCRAPE_INTERVAL``:
    its URL and process."""
    if not Path(PROMETHEUS).is_file():
        pytest.skip("Prometheus is not installed: apt-get install -y prometheus")
    procs: list[subprocess.Popen[bytes]] = []

    def start(target: str) -> tuple[str, subprocess.Popen[bytes]]:
        scrape = {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL}
        job = {"job_name": "recallwatch", "static_configs": [{"targets": [target]}]}
        return start_prometheus(tmp_path, {"global": scrape, "scrape_configs": [job]}, procs)

    yield start
    stop_processes(procs)


def instant(base: str, promql: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=10)
    result: list[dict[str, Any]] = r.json()["data"]["result"]
    return result


def range_points(base: str, promql: str, start: float, end: float) -> dict[float, float]:
    """Prometheus' range query of one series: evaluation time -> value."""
    r = httpx.get(
        f"{base}/api/v1/query_range",
        params={"query": promql, "start": start, "end": end, "step": RESOLUTION},
        timeout=30,
    )
    result = r.json()["data"]["result"]
    assert len(result) <= 1, result
    return {float(t): float(v) for t, v in result[0]["values"]} if result else {}


def xy_marker_query() -> str:
    """The shipped dashboard's mining-change marker on the recall-against-step panel, with its
    variables matching everything."""
    dashboard = json.loads((REPO / "dashboards" / "recallwatch.json").read_text())
    (panel,) = [p for p in dashboard["panels"] if p["type"] == "xychart"]
    (target,) = [t for t in panel["targets"] if t["legendFormat"] == "mining change"]
    return re.sub(r"\$\w+", ".*", target["expr"])


def samples(base: str, selector: str) -> list[tuple[float, float]]:
    """Every sample Prometheus stored for one series: (scrape time, value)."""
    result = instant(base, f"{selector}[1h]")
    assert len(result) == 1, result
    return [(float(t), float(v)) for t, v in result[0]["values"]]


def runs_of(values: list[float]) -> list[float]:
    """The values with consecutive repeats collapsed: the sequence of exported checkpoints."""
    return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]


def test_every_checkpoint_of_a_backfill_reaches_prometheus_in_step_order(
    tmp_path: Path, prometheus: Any
) -> None:
    port = free_port()
    started = time.time()
    base, proc = prometheus(f"127.0.0.1:{port}")  # scraping before the daemon is up
    listen = {"listen": f"127.0.0.1:{port}"}
    with backfilled(tmp_path, wait=False, http=listen) as history, history.api() as api:

        def evaluated() -> list[dict[str, Any]]:
            return [c for c in evaluations(api) if c["state"] == "evaluated"]

        def exported() -> list[float]:
            return [float(r["value"][1]) for r in instant(base, "recallwatch_checkpoint_step")]

        wait_for(exported, timeout=DEADLINE, interval=0.2, what="Prometheus to have a step")
        # A scrape that comes late: two more checkpoints are evaluated before the next one.
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            # The next scrape serves the step after the last one exported; for two later ones
            # to be waiting then, three more than were done at the stop must finish first.
            backlog = min(len(STEPS), len(evaluated()) + 3)
            wait_for(
                lambda: len(evaluated()) >= backlog,
                timeout=DEADLINE,
                interval=0.2,
                what=f"{backlog} done",
            )
        finally:
            os.kill(proc.pid, signal.SIGCONT)

        def ranges() -> dict[str, dict[float, float]] | None:
            """The range queries up to now, once their last point has checkpoint-600."""
            end = time.time()
            series = {
                "step": range_points(base, 'recallwatch_checkpoint_step{run="demo"}', started, end),
                "recall": range_points(base, RECALL, started, end),
                "regression": range_points(base, REGRESSION, started, end),
                "marker": range_points(base, xy_marker_query(), started, end),
            }
            last = series["step"][max(series["step"])] if series["step"] else None
            return series if last == 600.0 else None

        got = wait_for(ranges, timeout=DEADLINE, interval=0.5, what="the range up to step 600")
        steps, recall, regression = got["step"], got["recall"], got["regression"]
        marker = got["marker"]
        scraped = samples(base, 'recallwatch_checkpoint_step{run="demo"}')
        done = {c["step"]: c for c in evaluated()}
        assert sorted(done) == list(STEPS)
    store = Store.open(history.store, exclusive=False)
    try:
        stored: dict[int, set[bool]] = {}
        for step, c in done.items():
            row = store.queue.checkpoint("demo", c["name"])
            assert row is not None
            stored[step] = {
                v.regressed
                for v in store.ledger.verdicts(row.id)
                if (v.dataset, v.metric, v.k, v.kind) == ("synth", "recall", 10, "previous_mining")
            }
    finally:
        store.close()

    # Several checkpoints were evaluated between two scrapes: when a scrape was served a step, at
    # least two later ones had finished already (the backlog the old exporter lost).
    finished = {s: c["evaluations"][0]["finished_at"] for s, c in done.items()}
    waiting = [sum(finished[s] < t for s in STEPS if s > step) for t, step in scraped]
    assert max(waiting) >= 2, (scraped, finished)
    times = sorted(steps)
    # Every step, in step order, each exported for at least one scrape.
    assert runs_of([steps[t] for t in times]) == [float(s) for s in STEPS]
    # At each point, the recall@10 the daemon computed for the checkpoint then exported ...
    for t in times:
        expected = done[int(steps[t])]["evaluations"][0]["metrics"]["recall"]["10"]
        assert recall[t] == pytest.approx(expected, abs=1e-12), (t, steps[t])
    # ... and the regression verdict it stored for it: the regressed checkpoints reached
    # Prometheus although a recovered one followed (one per scrape, none skipped).
    flagged = {int(steps[t]) for t in times if regression.get(t) == 1.0}
    assert flagged == {s for s, v in stored.items() if True in v}
    assert flagged >= {400}
    for t in times:
        verdicts = stored[int(steps[t])]
        assert (regression.get(t) is None) == (not verdicts), (t, steps[t])
    # The dashboard marks the mining change at the step of the first checkpoint mined with B.
    assert {steps[t] for t in marker} == {400.0}
    assert set(marker.values()) == {1.0}
