"""``/review`` inside a real ``recallwatch serve`` process, in a real Chromium.

The daemon watches one run whose checkpoint names a simulated mined set in its mining metadata
(``false_negatives.mined_set_key``); ``/review`` offers that set. The write token is the one the
daemon generates and logs once at start-up. A reviewer labels a few items with the keyboard; the
labels are read back over the review API (state and ``labels.jsonl``), and the estimate the page
shows equals the API's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests

from recallwatch.synthetic.heldout import SyntheticSet
from recallwatch.synthetic.mined import simulate_mined_set
from tests.helpers.browser import Tab
from tests.helpers.processes import wait_for
from tests.helpers.runs import config_doc, fn_section, write_checkpoint, write_config
from tests.helpers.serve import Serve
from tests.web.helpers import estimate_of, estimate_shown, wait_item, wait_progress

LABELLED, SAMPLE, SEED = 5, 40, 3
TOKEN_LOG = "review token (shown once; set RECALLWATCH_REVIEW_TOKEN to choose it): "


def _token(daemon: Serve) -> str | None:
    """The review token the daemon logged at start-up."""
    for doc in daemon.records():
        message = str(doc.get("message", ""))
        if message.startswith(TOKEN_LOG):
            return message[len(TOKEN_LOG) :]
    return None


def _offered(url: str) -> str | None:
    """The key of the one mined set ``/review`` offers (it redirects straight to it)."""
    got = requests.get(f"{url}/review", timeout=10)
    path = got.url.split("/review/")
    return path[1] if got.ok and len(path) == 2 else None


def test_review_in_a_real_serve_process(
    tmp_path: Path, synthetic: SyntheticSet, serve: type[Serve], tab: Tab
) -> None:
    run = tmp_path / "run"
    sim = simulate_mined_set(num_queries=60, negatives_per_query=10, num_docs=1500, seed=4)
    sim.write(run)
    write_checkpoint(run, 100, synthetic, mining={"mined_set": "mined.jsonl"})
    doc = config_doc(
        tmp_path,
        synthetic.path,
        run,
        false_negatives=fn_section(run, sample_size=SAMPLE, seed=SEED, control_size=0),
    )
    daemon = serve(write_config(tmp_path / "recallwatch.yaml", doc), tmp_path / "serve.log")
    url = daemon.start().url.rstrip("/")
    token = wait_for(lambda: _token(daemon), what="the review token in the daemon's log")
    key = wait_for(lambda: _offered(url), what="the run's mined set on /review")

    page = tab.page
    page.goto(f"{url}/review/{key}#token={token}")
    # The first render (no reviewer yet) draws the set's sample in the daemon; naming the
    # reviewer before it answers races two loads, and review.js shows whichever answers last.
    wait_progress(tab, 0)
    page.fill("#reviewer", "ann")
    page.press("#reviewer", "Enter")
    expected: dict[tuple[str, str], str] = {}
    for i in range(LABELLED):
        wait_item(tab, i + 1)
        query_id, doc_id = (page.text_content("#pair") or "").split(" / ")
        relevant = doc_id in sim.relevant[query_id]
        page.keyboard.press("r" if relevant else "n")
        expected[(query_id, doc_id)] = "relevant" if relevant else "not_relevant"
        wait_progress(tab, i + 1)

    # The labels are stored: the API's progress, and its export of what the store holds.
    def state() -> dict[str, Any]:
        got = requests.get(f"{url}/review/{key}/state", params={"reviewer": "ann"}, timeout=10)
        got.raise_for_status()
        return dict(got.json())

    assert state()["progress"]["done"] == LABELLED
    exported = requests.get(f"{url}/review/{key}/labels.jsonl", timeout=10)
    exported.raise_for_status()
    rows = [json.loads(line) for line in exported.text.splitlines() if line.strip()]
    assert {(r["query_id"], r["doc_id"]): r["label"] for r in rows} == expected
    assert {r["reviewer"] for r in rows} == {"ann"}
    # The page's live estimate is the API's.
    wait_item(tab, LABELLED + 1)
    assert estimate_shown(tab) == estimate_of(state())
    assert not tab.errors and not tab.off_host()
    assert daemon.stop() == 0
