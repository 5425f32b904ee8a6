"""The FN audit page with a judge and people: the filter curve, PPI beside the rest, agreement.

A real audit of a simulated mined set (with scores) is judged by a real HTTP judge on loopback
that is right 92% of the time, and people's labels (the truth) cover the first 80 of the seeded
sample. Its result is stored as the daemon stores an audit (``details``: the audit's JSON), and
the page is read in Chromium: the curve has one line per filter family with the recommendation
as a starred point on it, the three estimates with the one used, and the agreement table equals
``judge_agreement``'s counts. The API carries the same curve and people section.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from recallwatch.mining.audit import AuditConfig, run_audit
from recallwatch.mining.corpus import load_corpus
from recallwatch.mining.formats import read_mined
from recallwatch.mining.oracles import HttpOracle, LabelsOracle, MemoryLabelStore, ReviewLabel
from recallwatch.mining.review import plan_review
from recallwatch.store import FnBucket, FnEstimate, Store
from recallwatch.synthetic.mined import simulate_mined_set
from recallwatch.web.review import enable_review
from recallwatch.web.review_sets import ReviewSet, ReviewSets, ReviewSettings
from tests.helpers.browser import Tab, live_app
from tests.helpers.judge import judge_server, reply
from tests.helpers.processes import REPO
from tests.helpers.seed import add
from tests.web.helpers import app_over
from tests.web.test_pages import drawn

ARTIFACTS = REPO / "artifacts"
CONFIG = AuditConfig(sample_size=400, control_size=0, seed=4, target=0.12)


def _wrong(qid: str, did: str) -> bool:
    """The judge's 8% of mistakes, fixed per pair."""
    return hashlib.sha256(f"{qid}/{did}".encode()).digest()[0] < 0.08 * 256


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, Any]]]:
    sim = simulate_mined_set(
        num_queries=200,
        negatives_per_query=20,
        num_docs=3000,
        bucket_rates=(0.4, 0.25, 0.08, 0.02, 0.01, 0.01),
        seed=21,
    )
    corpus_dir, mined_path, _ = sim.write(tmp_path_factory.mktemp("curve"))
    corpus = load_corpus(corpus_dir)
    mined = read_mined(mined_path, corpus)

    def judge(h: Any, body: dict[str, Any]) -> None:
        results = []
        for p in body["pairs"]:
            truth = p["doc_id"] in sim.relevant[p["query_id"]]
            relevant = truth != _wrong(p["query_id"], p["doc_id"])
            results.append({"id": p["id"], "label": "relevant" if relevant else "not_relevant"})
        reply(h, 200, {"results": results})

    plan = plan_review(mined, corpus, CONFIG)
    labels = [
        ReviewLabel(
            i.query_id,
            i.doc_id,
            "relevant" if i.doc_id in sim.relevant[i.query_id] else "not_relevant",
            "ann",
        )
        for i in plan.items[:80]
    ]
    people = LabelsOracle(MemoryLabelStore(labels), spec="labels:review")
    with judge_server(judge) as (url, _), requests.Session() as session:
        audit = run_audit(
            mined, corpus, HttpOracle(url, session=session, batch_size=100), CONFIG, people=people
        )
    yield audit, {**json.loads(json.dumps(audit.as_dict())), "_paths": (mined_path, corpus_dir)}


def test_the_audit_uses_ppi_and_the_judge_disagrees_as_planted(
    audited: tuple[Any, dict[str, Any]],
) -> None:
    audit, _ = audited
    people = audit.people
    assert people is not None and people.used == "ppi" and audit.headline == people.ppi
    [a] = people.agreement
    assert a.pairs == 80
    assert a.accuracy is not None and 0.8 <= a.accuracy <= 0.99  # 92% planted, 80 pairs
    ppi, alone = people.ppi, people.people_interval
    assert alone is not None and alone == people.ppi_people_only
    assert ppi is not None and ppi.upper - ppi.lower <= alone.upper - alone.lower


def test_fn_audit_page_shows_the_curve_and_the_judge_against_people(
    small_store: Store, tab: Tab, audited: tuple[Any, dict[str, Any]]
) -> None:
    audit, details = audited
    c = small_store.queue.checkpoint("demo", "checkpoint-300")
    assert c is not None
    head = audit.headline
    est = FnEstimate(
        audit.oracle.spec,
        audit.rates.judged,
        audit.rates.false_negatives,
        head.estimate,
        head.lower,
        head.upper,
        buckets=tuple(
            FnBucket(b.label, b.judged, b.false_negatives, *_iv(b.rate))
            for b in audit.rates.buckets
            if b.rate is not None
        ),
        details={k: v for k, v in details.items() if k != "_paths"},
    )
    small_store.results.record_fn_estimate(c.id, None, "h", est, 400.0)
    with live_app(app_over(small_store)) as url:
        chart = drawn(
            tab, f"{url}/runs/demo/checkpoints/checkpoint-300/false-negatives", "fn-curve"
        )
        lines = {t["meta"]["family"] for t in chart["data"] if "recommended" not in t["meta"]}
        assert lines == {"range_min", "absolute_margin", "relative_margin"}
        best = audit.recommendation.best
        stars = [t for t in chart["data"] if t["meta"].get("recommended")]
        assert best is not None and best.family in lines  # this set needs a margin filter
        if stars:
            [star] = stars
            assert star["x"] == [best.dropped_fraction]
            assert star["y"] == [best.projected.estimate]
        used = tab.page.locator("#fn-estimates tr[data-estimate='ppi']").inner_text()
        assert "used" in used
        assert "prediction-powered" in tab.page.locator("#fn-used").inner_text()
        cells = tab.page.locator("#fn-agreement tbody tr").first.inner_text().split("\t")
        a = audit.people.agreement[0]
        assert cells[1] == str(a.pairs)
        assert [int(x) for x in cells[6:10]] == [
            a.true_positive,
            a.false_negative,
            a.false_positive,
            a.true_negative,
        ]
        ARTIFACTS.mkdir(exist_ok=True)
        tab.page.screenshot(path=str(ARTIFACTS / "fn-audit-curve.png"), full_page=True)
        api = requests.get(f"{url}/api/v1/runs/demo/checkpoints/checkpoint-300", timeout=10)
        fn = api.json()["false_negatives"]
        assert fn["filter_curve"] == details["curve"]
        assert fn["people"]["used"] == "ppi"
        assert fn["people"]["agreement"][0]["pairs"] == 80
        listed = requests.get(f"{url}/api/v1/runs/demo/checkpoints", timeout=10).json()
        [item] = [i for i in listed["items"] if i["name"] == "checkpoint-300"]
        assert item["false_negatives"]["people"]["used"] == "ppi"
        assert item["false_negatives"]["filter_curve"] is None  # listings stay small
    assert tab.off_host() == [] and tab.errors == []


def _iv(iv: Any) -> tuple[float, float, float]:
    return iv.estimate, iv.lower, iv.upper


def test_fn_rate_json_has_the_curve(tmp_path: Path, audited: tuple[Any, dict[str, Any]]) -> None:
    _, details = audited
    curve = details["curve"]
    for points in curve["families"].values():
        assert all(0.0 <= p["dropped_fraction"] <= 1.0 for p in points)
        assert all(0.0 <= p["percentile"] <= 100.0 for p in points)
    rec = details["recommendation"]["best"]
    if rec is not None and curve["recommended"] is not None:
        family = curve["recommended"]["family"]
        [point] = [
            p
            for p in curve["families"][family]
            if p["threshold"] == curve["recommended"]["threshold"]
        ]
        assert point["projected"] == rec["projected"]
        assert point["dropped_fraction"] == rec["dropped_fraction"]


def test_review_page_shows_the_daemons_curve_and_agreement(
    small_store: Store, tab: Tab, audited: tuple[Any, dict[str, Any]]
) -> None:
    """The review page of a daemon's mined set shows its latest audit's curve and agreement."""
    audit, details = audited
    mined_path, corpus_dir = details["_paths"]
    run = small_store.queue.ensure_run("demo", "/runs/demo", 1.0)
    cid = add(small_store, run, 400, fp="fp-curve", directory="/runs/demo", now=400.0)
    stored = {k: v for k, v in details.items() if k != "_paths"}
    head = audit.headline
    est = FnEstimate(
        audit.oracle.spec, 400, 40, head.estimate, head.lower, head.upper, details=stored
    )
    small_store.results.record_fn_estimate(cid, "fp-curve", "h", est, 401.0)
    app = app_over(small_store)
    settings = ReviewSettings.with_token("tok", audit=CONFIG)
    listing = [ReviewSet("fp-curve", "demo: mined.jsonl", mined_path, corpus_dir, "demo")]
    enable_review(app, ReviewSets(settings, lambda: listing))
    with live_app(app) as url:
        chart = drawn(tab, f"{url}/review/fp-curve", "fn-curve")
        assert {t["meta"]["family"] for t in chart["data"]} >= {"range_min", "relative_margin"}
        row = tab.page.locator("#fn-agreement tbody tr").first.inner_text().split("\t")
        assert row[1] == "80"
        assert "used" in tab.page.locator("#fn-estimates tr[data-estimate='ppi']").inner_text()
    assert tab.off_host() == [] and tab.errors == []
