"""The review page in a real Chromium: keyboard labelling, resume, live estimate, SPRT, security.

The app is the one ``recallwatch review`` serves (``commands.review.review_app``) over a mined set
with planted false negatives (half of them: the SPRT decides within a dozen labels) whose every
document carries ``<script>`` and ``<b>`` markup.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from recallwatch.cli import main
from recallwatch.commands.review import review_app
from recallwatch.mining.audit import AuditConfig
from recallwatch.synthetic.mined import simulate_mined_set
from tests.helpers.browser import Tab, live_app
from tests.web.helpers import (
    MINED_WORDS,
    estimate_of,
    estimate_shown,
    review_words_shown,
    wait_item,
    wait_progress,
)

SAMPLE, SEED, TOKEN = 40, 3, "s3cret-review-token"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@pytest.fixture
def review(tmp_path: Path) -> Iterator[dict[str, Any]]:
    sim = simulate_mined_set(
        num_queries=60,
        negatives_per_query=10,
        num_docs=2000,
        bucket_rates=(0.5, 0.5, 0.5, 0.5, 0.5, 0.5),
        seed=4,
    )
    corpus, mined, _ = sim.write(tmp_path / "set")
    lines = []
    for line in (corpus / "corpus.jsonl").read_text().splitlines():
        doc = json.loads(line)
        doc["text"] += " <script>window.pwned = 1</script> <b>bold</b>"
        lines.append(json.dumps(doc))
    (corpus / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    labels = tmp_path / "labels.csv"
    audit = AuditConfig(sample_size=SAMPLE, seed=SEED, control_size=0)
    app, store, _, key = review_app(
        mined, corpus, labels, audit, token=TOKEN, store_dir=tmp_path / "store"
    )
    with live_app(app) as url:
        yield {
            "url": url,
            "key": key,
            "sim": sim,
            "store": store,
            "labels": labels,
            "mined": mined,
            "corpus": corpus,
        }
    store.close()


def _api(r: dict[str, Any], reviewer: str = "ann") -> dict[str, Any]:
    got = requests.get(
        f"{r['url']}/review/{r['key']}/state", params={"reviewer": reviewer}, timeout=10
    )
    got.raise_for_status()
    return dict(got.json())


def test_review_with_the_keyboard_resume_estimate_and_sprt(
    review: dict[str, Any], tab: Tab
) -> None:
    page, sim = tab.page, review["sim"]
    page.goto(f"{review['url']}/review/{review['key']}#token={TOKEN}")
    page.fill("#reviewer", "ann")
    page.press("#reviewer", "Enter")  # commits the name (a change event) and leaves the field
    wait_progress(tab, 0)
    wait_item(tab, 1)  # the first render (before the name) shows progress but no item yet
    # A document's markup is shown as text and never runs.
    negative = page.text_content("#negative") or ""
    assert "<script>window.pwned = 1</script>" in negative and "<b>bold</b>" in negative
    assert page.evaluate("window.pwned") is None
    assert page.locator("#negative b").count() == 0
    statuses = []
    for i in range(12):
        query_id, doc_id = (page.text_content("#pair") or "").split(" / ")
        key = "r" if doc_id in sim.relevant[query_id] else "n"
        page.keyboard.press(key)
        wait_progress(tab, i + 1)
        statuses.append(page.text_content("#sprt"))
    assert statuses[0] == "keep going"
    assert statuses[-1].startswith("decided: too high after ")
    # Reload: the page resumes at the 13th item with the name remembered by the browser.
    page.reload()
    wait_progress(tab, 12)
    wait_item(tab, 13)
    assert page.input_value("#reviewer") == "ann"
    assert page.text_content("#position") == "13"
    # The estimate on the page is the API's.
    state = _api(review)
    assert estimate_shown(tab) == estimate_of(state)
    # A mined set's words (a held-out holes queue has its own: tests/daemon/test_holes.py).
    assert state["kind"] == "mined"
    shown = review_words_shown(tab)
    for words in MINED_WORDS:
        assert words in shown, words
    assert "displacing" not in shown and "hole" not in shown.lower()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "review.png"), full_page=True)
    # Backspace takes the last label back.
    page.keyboard.press("Backspace")
    wait_progress(tab, 11)
    assert not tab.errors and not tab.off_host()


def test_a_late_answer_never_overwrites_a_newer_one(review: dict[str, Any], tab: Tab) -> None:
    # The page asks for the state before the reviewer is named and again after: the first
    # answer (no item: nobody to review for) is held back until the second one has rendered.
    page, held = tab.page, []

    def hold_unnamed(route: Any) -> None:
        if route.request.url.endswith("/state?reviewer="):
            held.append(route)
        else:
            route.continue_()

    page.route("**/state?*", hold_unnamed)
    page.goto(f"{review['url']}/review/{review['key']}#token={TOKEN}")
    while not held:
        page.wait_for_timeout(50)  # until the first request is parked (a condition, no bound)
    page.fill("#reviewer", "ann")
    page.press("#reviewer", "Enter")
    wait_item(tab, 1)
    held[0].continue_()
    page.wait_for_function("() => window.recallwatchReview.answers.handled >= 2")
    assert page.is_visible("#item") and page.text_content("#position") == "1"
    assert " / " in (page.text_content("#pair") or "")
    assert not tab.errors


def test_a_write_without_the_token_is_refused_and_stores_nothing(review: dict[str, Any]) -> None:
    item = _api(review)["item"]
    form = {
        "reviewer": "eve",
        "label": "relevant",
        "query_id": item["query_id"],
        "doc_id": item["doc_id"],
    }
    url = f"{review['url']}/review/{review['key']}/label"
    origin = {"Origin": review["url"].rstrip("/")}
    for headers in (
        origin,
        {**origin, "X-Review-Token": "wrong"},
        {"X-Review-Token": TOKEN, "Origin": "http://evil.example"},
    ):
        got = requests.post(url, data=form, headers=headers, timeout=10)
        assert got.status_code == 403
    assert review["store"].reviews.labels(review["key"]) == []
    big = {**form, "pad": "x" * 70_000}
    assert (
        requests.post(
            url, data=big, headers={**origin, "X-Review-Token": TOKEN}, timeout=10
        ).status_code
        == 413
    )
    ok = requests.post(url, data=form, headers={**origin, "X-Review-Token": TOKEN}, timeout=10)
    assert ok.status_code == 200 and len(review["store"].reviews.labels(review["key"])) == 1


def test_the_label_file_reads_back_to_the_same_estimate(
    review: dict[str, Any], tmp_path: Path
) -> None:
    sim, url = review["sim"], f"{review['url']}/review/{review['key']}"
    headers = {"Origin": review["url"].rstrip("/"), "X-Review-Token": TOKEN}
    for reviewer, count in (("ann", 15), ("bob", 6)):
        for _ in range(count):
            item = _api(review, reviewer)["item"]
            truth = item["doc_id"] in sim.relevant[item["query_id"]]
            label = "relevant" if truth != (reviewer == "bob" and _ == 0) else "not_relevant"
            form = {
                "reviewer": reviewer,
                "label": label,
                "query_id": item["query_id"],
                "doc_id": item["doc_id"],
            }
            assert requests.post(f"{url}/label", data=form, headers=headers, timeout=10).ok
    state = _api(review)
    assert state["agreement"]["pairs"] == 6 and len(state["agreement"]["disagreements"]) == 1
    out = tmp_path / "fn.json"
    argv = [
        "fn-rate",
        "--mined",
        str(review["mined"]),
        "--corpus",
        str(review["corpus"]),
        "--oracle",
        f"labels:{review['labels']}",
        "--sample",
        str(SAMPLE),
        "--seed",
        str(SEED),
        "--control",
        "0",
        "--json",
        str(out),
    ]
    assert main(argv) == 0
    doc = json.loads(out.read_text())
    assert doc["rates"] == state["estimate"]["rates"]
    exported = requests.get(f"{url}/labels.csv", timeout=10).content
    assert exported == review["labels"].read_bytes()
