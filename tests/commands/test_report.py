"""``recallwatch report``: one self-contained HTML file of a run, opened from disk in Chromium.

The store is a real daemon's (``tests/helpers/history.py``: six checkpoints, a mining change and
a regression alert); the report is written while the daemon still serves (it reads the store
without its lock) and must open from ``file://`` with no network request at all.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.browser import Tab
from tests.helpers.history import PAYLOAD, STEPS, History, backfilled, evaluations
from tests.helpers.processes import REPO

ARTIFACTS = REPO / "artifacts"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    with backfilled(tmp_path_factory.mktemp("report")) as h:
        yield h


def report(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recallwatch.cli", "report", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


def test_report_opens_offline_with_every_checkpoint(
    history: History, tab: Tab, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    done = report("--config", str(history.config), "--run", "demo", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout
    with history.api() as api:
        items = evaluations(api)
    tab.page.goto(out.as_uri())
    tab.page.wait_for_selector("#run-chart[data-drawn='true'] .main-svg")
    ARTIFACTS.mkdir(exist_ok=True)
    tab.page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    # Nothing but the file itself (plotly.js and the data are inline).
    assert tab.requests == [out.as_uri()]
    assert tab.errors == []
    data: list[dict[str, Any]] = tab.page.evaluate(
        "() => document.getElementById('run-chart').data"
    )
    [recall10] = [t for t in data if t["meta"] == {"dataset": "synth", "metric": "recall", "k": 10}]
    assert recall10["x"] == list(STEPS)
    assert recall10["y"] == [c["evaluations"][0]["metrics"]["recall"]["10"] for c in items]
    rows = tab.page.locator("#checkpoints tbody tr")
    assert [rows.nth(i).get_attribute("data-step") for i in range(rows.count())] == [
        str(s) for s in STEPS
    ]
    for step in STEPS:
        assert tab.page.locator(f"section#ckpt-checkpoint-{step} table.metrics").count() == 1
    # The regression's lost queries, with their texts shown as text; the alert with its evidence.
    lost = tab.page.locator("section#ckpt-checkpoint-400 table.queries.lost td.qtext")
    assert lost.count() > 0 and lost.first.inner_text().startswith(PAYLOAD)
    assert tab.page.locator("td img").count() == 0 and "pwned" not in tab.page.title()
    assert tab.page.locator("section.alert #metric-change").count() == 1


def test_report_from_the_store_alone(history: History, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    done = report("--store", str(history.store), "--run", "demo", "--out", str(out))
    assert done.returncode == 0, done.stderr
    html = out.read_text(encoding="utf-8")
    assert all(f'id="ckpt-checkpoint-{s}"' in html for s in STEPS)
    assert "http://" not in html.replace("http://www.w3.org/", "").split("<script>")[0]


def test_report_errors_name_the_problem(history: History, tmp_path: Path) -> None:
    missing = report("--store", str(history.store), "--run", "nope", "--out", str(tmp_path / "x"))
    assert missing.returncode != 0 and "no run named 'nope'" in missing.stderr
    assert "demo" in missing.stderr
    absent = report("--store", str(tmp_path / "none.db"), "--run", "demo", "--out", "x.html")
    assert absent.returncode != 0 and "no store at" in absent.stderr
    assert not (tmp_path / "none.db").exists()
