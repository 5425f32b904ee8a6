"""The self-contained HTML report of one run: the run page's chart and tables, every checkpoint's
metrics and lost/gained queries, the run's alerts and FN audits, in one file.

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
from recallwatch.web.assets import asset
from recallwatch.web.charts import run_figure
from recallwatch.web.data import checkpoint_view, run_history
from recallwatch.web.templates import render_string

__all__ = ["render_report"]


def render_report(
    store: Store, run: str, *, heldouts: Mapping[str, Path], generated_at: float
) -> str:
    """The report of ``run`` as one HTML document."""
    if run not in {r.name for r in store.views.runs()}:
        known = ", ".join(sorted(r.name for r in store.views.runs())) or "none"
        raise RecallwatchError(f"the store has no run named {run!r} (runs: {known})")
    history = run_history(store, run)
    texts = TextIndex()
    views = [
        checkpoint_view(store, texts, heldouts, p.checkpoint, limit=10) for p in history.points
    ]
    alerts = [(r, r.alert.as_dict(), store.outbox.deliveries(r.alert.id)) for r in history.alerts]
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
