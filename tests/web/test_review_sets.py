"""``web/review_sets.py`` in the daemon: the mined sets its runs name, reviewed over the API."""

from __future__ import annotations

import json
from pathlib import Path

import requests

from recallwatch.mining.audit import AuditConfig
from recallwatch.server import create_app
from recallwatch.store import Store
from recallwatch.synthetic.mined import simulate_mined_set
from recallwatch.web import WebSettings
from recallwatch.web.review import enable_review
from recallwatch.web.review_sets import ReviewSets, ReviewSettings, daemon_sets
from tests.helpers.browser import live_app
from tests.helpers.seed import add


def test_the_daemon_offers_each_mined_set_its_runs_name(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    sim = simulate_mined_set(num_queries=30, negatives_per_query=10, num_docs=1000, seed=2)
    run_dir = tmp_path / "runs" / "demo"
    corpus, mined, _ = sim.write(run_dir)
    store = Store.open(tmp_path / "rw.db")
    run = store.queue.ensure_run("demo", str(run_dir), 1.0)
    for step, fp in ((100, "fp-a"), (200, "fp-a")):
        add(
            store,
            run,
            step,
            fp=fp,
            mining_content=json.dumps({"mined_set": mined.name}),
            directory=str(run_dir),
            eval_key="k",
            now=float(step),
        )
    changed: list[str] = []
    settings = ReviewSettings.with_token(
        "tok", audit=AuditConfig(sample_size=20, seed=1), corpus=corpus, on_change=changed.append
    )
    sets = daemon_sets(store, settings)
    assert [(s.key, s.run, s.mined) for s in sets] == [("fp-a", "demo", mined)]
    app = create_app(
        store,
        CollectorRegistry(),
        readiness=lambda: {"ready": True},
        version="t",
        web=WebSettings(),
    )
    enable_review(app, ReviewSets(settings, lambda: daemon_sets(store, settings)))
    with live_app(app) as url:
        page = requests.get(f"{url}/review", timeout=10)  # one set: straight to it
        assert page.status_code == 200 and page.url.endswith("/review/fp-a")
        item = requests.get(f"{url}/review/fp-a/state?reviewer=ann", timeout=10).json()["item"]
        form = {
            "reviewer": "ann",
            "label": "unsure",
            **{k: item[k] for k in ("query_id", "doc_id")},
        }
        got = requests.post(
            f"{url}/review/fp-a/label",
            data=form,
            headers={"Origin": url, "X-Review-Token": "tok"},
            timeout=10,
        )
        assert got.status_code == 200 and got.json()["progress"]["done"] == 1
    assert changed == ["fp-a"] and len(store.reviews.labels("fp-a")) == 1
    store.close()
