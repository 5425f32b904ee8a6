"""The plotly figures (``web/charts.py``): points, marks and the FN axis."""

from __future__ import annotations

import json

from recallwatch.store import Store
from recallwatch.views.runs import run_history
from recallwatch.web.charts import run_figure


def test_run_figure_plots_each_metric_at_k_against_step(small_store: Store) -> None:
    figure = run_figure(run_history(small_store, "demo"))
    by_name = {t["name"]: t for t in figure["data"]}
    assert set(by_name) == {"ndcg@10", "recall@1", "recall@10"}
    assert by_name["recall@1"]["x"] == [100, 200, 300]
    assert by_name["recall@1"]["y"] == [0.5, 0.6, 0.7]
    assert by_name["recall@1"]["customdata"] == [
        "checkpoint-100",
        "checkpoint-200",
        "checkpoint-300",
    ]
    assert figure["layout"]["shapes"] == []  # no mining change, no alert
    assert "yaxis2" not in figure["layout"]  # no FN estimate
    json.dumps(figure, allow_nan=False)  # plain JSON for the page
