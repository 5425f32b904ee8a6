"""A backfill reaches a real Prometheus checkpoint by checkpoint (issue 10).

``recallwatch serve`` backfills the six-checkpoint run of ``tests.helpers.history`` (all written
before it starts; 400 and 500 regress after a mining change, 600 recovers) while a real Prometheus
(Debian package ``prometheus``) scrapes it every 2 s. Prometheus starts only once three
checkpoints are evaluated, so that several wait for the first scrape. Prometheus' range query must
hold every step in order, each with the recall@10 the daemon computed for it and the regression
verdict it stored for it. Every wait is for a condition, bounded by a generous deadline.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from recallwatch.store import Store
from tests.daemon.helpers import free_port, stop_processes, wait_for
from tests.helpers.history import STEPS, backfilled, evaluations

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
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
    """Start Prometheus on a free loopback port, scraping a target every ``SCRAPE_INTERVAL``."""
    if not Path(PROMETHEUS).is_file():
        pytest.skip("Prometheus is not installed: apt-get install -y prometheus")
    procs: list[subprocess.Popen[bytes]] = []

    def start(target: str) -> str:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        scrape = {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL}
        job = {"job_name": "recallwatch", "static_configs": [{"targets": [target]}]}
        config.write_text(yaml.safe_dump({"global": scrape, "scrape_configs": [job]}))
        with (tmp_path / "prometheus.log").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [
                        PROMETHEUS,
                        f"--config.file={config}",
                        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                        f"--web.listen-address=127.0.0.1:{port}",
                        "--log.level=warn",
                    ],
                    stdout=log,
                    stderr=log,
                )
            )
        return f"http://127.0.0.1:{port}"

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


def runs_of(values: list[float]) -> list[float]:
    """The values with consecutive repeats collapsed: the sequence of exported checkpoints."""
    return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]


def test_every_checkpoint_of_a_backfill_reaches_prometheus_in_step_order(
    tmp_path: Path, prometheus: Any
) -> None:
    with backfilled(tmp_path, wait=False) as history, history.api() as api:

        def evaluated() -> list[dict[str, Any]]:
            return [c for c in evaluations(api) if c["state"] == "evaluated"]

        wait_for(lambda: len(evaluated()) >= 3, timeout=DEADLINE, interval=0.2, what="3 evaluated")
        started = time.time()
        base = prometheus(history.daemon.url.removeprefix("http://"))
        # Prometheus reaches the latest checkpoint only after it was served every earlier one.
        wait_for(
            lambda: (
                [float(r["value"][1]) for r in instant(base, "recallwatch_checkpoint_step")]
                == [600.0]
            ),
            timeout=DEADLINE,
            interval=0.5,
            what="Prometheus to scrape checkpoint-600",
        )
        done = {c["step"]: c for c in evaluated()}
        assert sorted(done) == list(STEPS)

        def ranges() -> dict[str, dict[float, float]] | None:
            """The range queries up to now, once their last point has checkpoint-600."""
            end = time.time()
            series = {
                "step": range_points(base, 'recallwatch_checkpoint_step{run="demo"}', started, end),
                "recall": range_points(base, RECALL, started, end),
                "regression": range_points(base, REGRESSION, started, end),
                "up": range_points(base, 'up{job="recallwatch"}', started, end),
            }
            return series if series["step"][max(series["step"])] == 600.0 else None

        got = wait_for(ranges, timeout=DEADLINE, interval=0.5, what="the range up to 600")
        steps, recall, regression, up = (got[k] for k in ("step", "recall", "regression", "up"))
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

    # The first scrape came after three checkpoints were evaluated: a real backlog.
    first_scrape = min(t for t, v in up.items() if v == 1.0)
    finished = sorted(c["evaluations"][0]["finished_at"] for c in done.values())
    assert sum(f < first_scrape for f in finished) >= 3
    # Every step, in step order, each exported for at least one scrape.
    times = sorted(steps)
    assert runs_of([steps[t] for t in times]) == [float(s) for s in STEPS]
    # At each point, the recall@10 the daemon computed for the checkpoint then exported ...
    for t in times:
        expected = done[int(steps[t])]["evaluations"][0]["metrics"]["recall"]["10"]
        assert recall[t] == pytest.approx(expected, abs=1e-12), (t, steps[t])
    # ... and the regression verdict it stored for it: the regressed checkpoints reached
    # Prometheus although a recovered one followed (one per scrape, none skipped).
    flagged = {int(steps[t]) for t in times if regression.get(t) == 1.0}
    print(
        "DEBUG",
        [(t - times[0], steps[t], recall[t], regression.get(t)) for t in times][::2],
        stored,
        first_scrape - started,
        [f - first_scrape for f in finished],
    )
    assert flagged == {s for s, v in stored.items() if True in v}
    assert flagged >= {400}
    for t in times:
        verdicts = stored[int(steps[t])]
        assert (regression.get(t) is None) == (not verdicts), (t, steps[t])
