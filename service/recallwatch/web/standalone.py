"""The pages of one run rendered into one self-contained HTML file (``recallwatch report``): the run
page's chart and tables, every checkpoint's metrics and lost/gained queries, the run's alerts and
FN audits.

Stylesheet, plotly.js (from the installed ``plotly`` package) and the chart script are inlined, so
the file opens from disk with no network (plotly.js makes it about 5 MB).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from recallwatch import __version__
from recallwatch.errors import RecallwatchError
from recallwatch.heldout.texts import TextIndex
from recallwatch.store import Store
from recallwatch.views.alerts import alert_view
from recallwatch.views.checkpoints import checkpoint_detail
from recallwatch.views.comparison import checkpoint_view
from recallwatch.views.runs import run_history, run_names
from recallwatch.web.assets import asset
from recallwatch.web.charts import run_figure
from recallwatch.web.templates import render_string

__all__ = ["render_standalone"]


def render_standalone(
    store: Store, run: str, *, heldouts: Mapping[str, Path], generated_at: float
) -> str:
    """The pages of ``run`` as one self-contained HTML document (the ``recallwatch report``)."""
    names = run_names(store)
    if run not in names:
        known = ", ".join(sorted(names)) or "none"
        raise RecallwatchError(f"the store has no run named {run!r} (runs: {known})")
    history = run_history(store, run)
    texts = TextIndex()
    views = [
        checkpoint_view(store, texts, heldouts, checkpoint_detail(store, p.checkpoint), limit=10)
        for p in history.points
    ]
    alerts = [alert_view(store, r) for r in history.alerts]
    return render_string(
        "report.html",
        title=f"recallwatch report: {run}",
        standalone=True,
        inline_css=asset("web", "web.css").read_text(encoding="utf-8"),
        inline_js=[
            asset("vendor", "plotly.min.js").read_text(encoding="utf-8"),
            asset("web", "chart.js").read_text(encoding="utf-8"),
        ],
        history=history,
        chart=run_figure(history),
        views=views,
        alerts=alerts,
        generated_at=generated_at,
        version=__version__,
    )
