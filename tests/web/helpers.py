"""A small store and the daemon's app over it, shared by the web tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from recallwatch.server import create_app
from recallwatch.store import Store
from recallwatch.web import WebSettings
from tests.helpers.seed import add, finished, record_evaluated


@pytest.fixture
def small_store(tmp_path: Path) -> Iterator[Store]:
    """A run ``demo`` with three evaluated checkpoints (steps 100, 200, 300)."""
    s = Store.open(tmp_path / "rw.db")
    run = s.queue.ensure_run("demo", "/runs/demo", 1.0)
    for i, step in enumerate((100, 200, 300)):
        cid = add(s, run, step, directory="/runs/demo", now=float(step))
        evaluation = replace(
            finished(cid),
            started_at=float(step),
            finished_at=float(step) + 2,
            metrics={"recall": {1: 0.5 + i / 10, 10: 0.9}, "ndcg": {10: 0.7 - i / 20}},
            timings={"search": 1.0},
            counts={"queries": 3},
            outcomes={"q1": {"d1": 1}, "q2": {"d2": 7 - i, "d3": 0}, "q3": {"d4": 0}},
        )
        record_evaluated(s, run, evaluation, at=float(step) + 3)
    yield s
    s.close()


def app_over(store: Store, settings: WebSettings | None = None) -> Any:
    """The daemon's FastAPI app over ``store`` (a ready daemon, a fresh metrics registry)."""
    return create_app(
        store,
        CollectorRegistry(),
        readiness=lambda: {"ready": True, "checks": {}},
        version="0.0.1",
        web=settings,
    )


# ------------------------------------------------------------------ the review page (review.js)


def wait_progress(tab: Any, done: int) -> None:
    """Wait until the review page's progress line starts with ``done`` labels."""
    tab.page.wait_for_function(
        "n => document.getElementById('progress').textContent.startsWith(n + ' of ')", arg=done
    )


def wait_item(tab: Any, position: int) -> None:
    """Wait until the review page shows the item at ``position`` (1-based) to the reviewer."""
    tab.page.wait_for_function(
        "n => !document.getElementById('item').hidden"
        " && document.getElementById('position').textContent === String(n)"
        " && document.getElementById('pair').textContent.includes(' / ')",
        arg=position,
    )


def pct(v: float) -> str:
    """A rate as the review page formats it."""
    return f"{100 * v:.1f}%"


def estimate_shown(tab: Any) -> tuple[str, list[list[str]], str]:
    """The review page's headline, per-bucket rows and SPRT status, as text."""
    rows = tab.page.eval_on_selector_all(
        "#buckets tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    return tab.page.text_content("#headline"), rows, tab.page.text_content("#sprt")


def estimate_of(state: dict[str, Any]) -> tuple[str, list[list[str]], str]:
    """What the review page should show for the review API's ``state`` (``estimate_shown``)."""
    head, est = state["estimate"]["headline"], state["estimate"]
    headline = (
        f"{pct(head['estimate'])} [{pct(head['lower'])}, {pct(head['upper'])}] from "
        f"{est['judged']} judged"
    )
    rows = [
        [
            b["bucket"],
            str(b["judged"]),
            str(b["false_negatives"]),
            pct(b["rate"]["estimate"]) if b["rate"] else "-",
            f"[{pct(b['rate']['lower'])}, {pct(b['rate']['upper'])}]" if b["rate"] else "-",
        ]
        for b in est["rates"]["buckets"]
        if b["population"]
    ]
    return headline, rows, est["status"]


#: The review page's own words for a mined set, and for a held-out holes queue (docs/holes.md).
MINED_WORDS = (
    "Mined negative",
    "relevant (false negative)",
    "False-negative rate",
    "mining rank",
    "labelled by you",
)
HOLE_WORDS = (
    "Unjudged document ranked above a lost positive",
    "Relevant document(s) of the query in the held-out qrels",
    "relevant to the query (a hole in the qrels)",
    "not relevant to the query",
    "Relevant share of the displacing documents",
    "checkpoint rank",
    "share relevant",
    "displacing documents labelled by you",
    "recallwatch holes audit --oracle labels:FILE",
)
#: Words of the mined-set review that a held-out queue's page must not say (lower case).
MINED_ONLY = ("mined negative", "false negative", "false-negative", "mining rank", "mined set")


def review_words_shown(tab: Any) -> str:
    """What the review page says: its visible text, the sentence shown once every item is
    labelled (hidden until then) and the buttons' key help (their titles)."""
    page = tab.page
    titles = page.eval_on_selector_all("[title]", "els => els.map(e => e.title)")
    return "\n".join([page.inner_text("body"), page.text_content("#done") or "", *titles])
