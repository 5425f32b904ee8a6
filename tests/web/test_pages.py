"""The pages (``web/pages/``) in a real Chromium, over a real daemon's backfilled run.

The daemon evaluates six checkpoints with a mining change at step 400 and a regression alert
(``tests/helpers/history.py``); the pages must plot exactly the API's numbers, mark the mining
change and the alert at their steps, show lost queries' HTML as text, and load nothing from
outside 127.0.0.1. Screenshots go to ``artifacts/`` (git-ignored).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recallwatch.store import FnBucket, FnEstimate, Store
from tests.helpers.browser import Tab, live_app
from tests.helpers.history import PAYLOAD, History, backfilled, evaluations
from tests.helpers.processes import REPO
from tests.web.helpers import app_over

ARTIFACTS = REPO / "artifacts"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    with backfilled(tmp_path_factory.mktemp("history")) as h:
        yield h


def drawn(tab: Tab, url: str, chart: str) -> Any:
    """Open a page and wait until plotly has drawn ``chart``; return its data and layout."""
    tab.page.goto(url)
    tab.page.wait_for_selector(f"#{chart}[data-drawn='true'] .main-svg")
    return tab.page.evaluate(
        f"() => {{ const e = document.getElementById('{chart}');"
        " return {data: e.data, layout: e.layout}; }"
    )


def test_run_page_plots_the_apis_values_against_step(history: History, tab: Tab) -> None:
    with history.api() as api:
        items = evaluations(api)
        alerts = api.get("/api/v1/alerts").json()["alerts"]
    chart = drawn(tab, f"{history.daemon.url}/runs/demo", "run-chart")
    ARTIFACTS.mkdir(exist_ok=True)
    tab.page.screenshot(path=str(ARTIFACTS / "run-page.png"), full_page=True)
    traces = {(t["meta"]["metric"], t["meta"].get("k")): t for t in chart["data"]}
    for metric in ("recall", "ndcg"):
        for k in ("1", "10", "100"):
            t = traces[(metric, int(k))]
            assert t["x"] == [c["step"] for c in items] == [100, 200, 300, 400, 500, 600]
            assert t["y"] == [c["evaluations"][0]["metrics"][metric][k] for c in items]
            assert t["customdata"] == [c["name"] for c in items]
    # The regression is visible in the data itself: 400 is worse than 300.
    recall10 = traces[("recall", 10)]["y"]
    assert recall10[3] < recall10[2] - 0.05
    shapes = {s["name"]: s["x0"] for s in chart["layout"]["shapes"]}
    assert shapes["mining_change:checkpoint-400"] == 400
    # The alert is marked where it opened (checkpoint-400), even once 600 has resolved it.
    [alert] = alerts
    assert alert["status"] == "resolved" and alert["alert"]["step"] == 600
    assert shapes[f"alert:{alert['id']}"] == 400
    table = tab.page.locator("#checkpoints tbody tr")
    assert table.count() == 6
    assert tab.off_host() == [] and tab.errors == []


def test_checkpoint_page_shows_lost_queries_as_text(history: History, tab: Tab) -> None:
    with history.api() as api:
        [alert] = api.get("/api/v1/alerts").json()["alerts"]
    assert alert["alert"]["evidence"]["metric"]["after"]["estimate"] < 0.9
    title_before = "400"
    tab.page.goto(f"{history.daemon.url}/runs/demo/checkpoints/checkpoint-400")
    assert title_before in tab.page.title()
    lost = tab.page.locator("table.queries.lost td.qtext")
    assert lost.count() > 0
    assert all(t.startswith(PAYLOAD) for t in lost.all_inner_texts())
    assert tab.page.locator("table.queries img, td img").count() == 0
    assert "pwned" not in tab.page.title()
    # The same baseline and k as the alert: the same number of lost queries.
    evidence = alert["alert"]["evidence"]
    assert evidence["baseline"]["checkpoint"] in tab.page.locator("dl.facts").inner_text()
    assert int(tab.page.locator(".lost-count").first.inner_text()) == evidence["lost_count"]
    cells = tab.page.locator("table.metrics tbody tr").all_inner_texts()
    assert any(c.split("\t")[:2] == ["recall", "10"] for c in cells)
    # Metrics recomputable from per-query outcomes have their interval.
    per_query = [c for c in cells if c.split("\t")[0] in {"recall", "ndcg", "mrr", "success"}]
    assert per_query and all("[" in c for c in per_query)
    assert tab.off_host() == [] and tab.errors == []


def test_alert_page_shows_evidence_deliveries_and_is_linked(history: History, tab: Tab) -> None:
    with history.api() as api:
        item = api.get("/api/v1/alerts").json()["alerts"][-1]
    links = item["alert"]["links"]
    assert links["alert"] == f"http://recallwatch.test/alerts/{item['id']}"
    assert links["evaluation"] == "http://recallwatch.test/runs/demo/checkpoints/checkpoint-400"
    tab.page.goto(history.daemon.url + links["alert"].removeprefix("http://recallwatch.test"))
    assert "RecallRegressionAfterMiningChange" in tab.page.locator("dl.facts").inner_text()
    change = tab.page.locator("#metric-change tbody td").all_inner_texts()
    assert change[0] == "recall@10"
    assert tab.page.locator("#mining-diff").inner_text().count("range_min") == 1
    deliveries = tab.page.locator("#deliveries tbody tr").all_inner_texts()
    assert any("hook" in d and "delivered" in d for d in deliveries)
    assert tab.page.locator("td img").count() == 0 and "pwned" not in tab.page.title()
    tab.page.goto(f"{history.daemon.url}/alerts")
    assert tab.page.locator("table.alerts tbody tr").count() == 1  # the one alert
    tab.page.goto(f"{history.daemon.url}/runs")
    assert tab.page.locator("#runs tbody tr").first.inner_text().startswith("demo")
    assert tab.off_host() == [] and tab.errors == []


def test_fn_audit_page(small_store: Store, tab: Tab, tmp_path: Path) -> None:
    c = small_store.queue.checkpoint("demo", "checkpoint-300")
    assert c is not None
    buckets = (
        FnBucket("1-5", 100, 20, 0.2, 0.13, 0.29),
        FnBucket("6-20", 100, 8, 0.08, 0.04, 0.15),
    )
    rec = {
        "needed": True,
        "target": 0.05,
        "best": {
            "describe": "range_min=5",
            "dropped_fraction": 0.25,
            "projected": {"estimate": 0.04},
        },
        "options": [
            {
                "describe": "range_min=5",
                "dropped_fraction": 0.25,
                "projected": {"estimate": 0.04, "lower": 0.02, "upper": 0.07},
            }
        ],
    }
    est = FnEstimate("qrels", 200, 28, 0.14, 0.1, 0.19, 0.02, 7.0, buckets, {"recommendation": rec})
    small_store.results.record_fn_estimate(c.id, None, "h", est, 400.0)
    with live_app(app_over(small_store)) as url:
        chart = drawn(
            tab, f"{url}/runs/demo/checkpoints/checkpoint-300/false-negatives", "fn-chart"
        )
        assert chart["data"][0]["x"] == ["1-5", "6-20"]
        assert chart["data"][0]["y"] == [0.2, 0.08]
        assert "7.00×" in tab.page.locator(".amplification").inner_text()
        assert "range_min=5" in tab.page.locator(".recommendation").inner_text()
        rows = tab.page.locator("#fn-buckets tbody tr").all_inner_texts()
        assert rows[0].split("\t") == ["1-5", "100", "20", "0.2000", "[0.1300, 0.2900]"]
        # The run page's FN line comes from the same estimate.
        run = drawn(tab, f"{url}/runs/demo", "run-chart")
        [fn] = [t for t in run["data"] if t["meta"]["metric"] == "fn_rate"]
        assert fn["x"] == [300] and fn["y"] == [0.14]
    assert tab.off_host() == [] and tab.errors == []
