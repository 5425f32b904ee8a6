"""Human labels drive a real ``recallwatch serve``: labelling on ``/review`` in a real Chromium
opens ``FalseNegativeRateHigh`` and undoing the labels resolves it, without a config edit or a
restart.

The daemon watches one run whose checkpoint names a simulated mined set; its only oracle is
``review`` (the people's labels). One daemon serves the module. A reviewer presses ``r`` on the
first items of the sample; the daemon re-estimates the set (debounced), stores the estimate
(source ``review``), ``/metrics`` exports it, and the alert opens with the human labels and the
SPRT's decision as its evidence, and is delivered to a webhook. ``Backspace`` takes the labels back
until one is left: the estimate, the metric and the alert follow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from recallwatch.synthetic.heldout import SyntheticSet
from recallwatch.synthetic.mined import simulate_mined_set
from tests.helpers.browser import Tab
from tests.helpers.processes import wait_for
from tests.helpers.receivers import OK, Receiver, always
from tests.helpers.runs import config_doc, fn_section, write_checkpoint, write_config
from tests.helpers.serve import Serve
from tests.web.helpers import wait_item, wait_progress

THRESHOLD, SAMPLE, SEED, RELEVANT = 0.3, 40, 3, 6
TOKEN_LOG = "review token (shown once; set RECALLWATCH_REVIEW_TOKEN to choose it): "
SHOTS = Path(__file__).resolve().parents[2] / "artifacts"  # git-ignored, as the other pages'


@dataclass
class Live:
    """The module's daemon and what the test needs of it."""

    daemon: Serve
    url: str
    token: str
    key: str
    receiver: Receiver


def _token(daemon: Serve) -> str | None:
    for doc in daemon.records():
        message = str(doc.get("message", ""))
        if message.startswith(TOKEN_LOG):
            return message[len(TOKEN_LOG) :]
    return None


def _offered(url: str) -> str | None:
    got = requests.get(f"{url}/review", timeout=10)
    path = got.url.split("/review/")
    return path[1] if got.ok and len(path) == 2 else None


def _evaluated(url: str) -> bool:
    got = requests.get(f"{url}/api/v1/runs/demo/checkpoints", timeout=10)
    return got.ok and any(c["state"] == "evaluated" for c in got.json()["items"])


@contextmanager
def serve_live(
    tmp: Path, synthetic: SyntheticSet, *, judge: bool, ready: Callable[[str], object]
) -> Iterator[Live]:
    """``recallwatch serve`` over one run with a simulated mined set, an FN rule to a webhook and
    the oracle ``review``, after the set's qrels as a judge with ``judge``; yielded once
    ``ready(url)`` holds."""
    run = tmp / "run"
    simulate_mined_set(num_queries=60, negatives_per_query=10, num_docs=1500, seed=4).write(run)
    write_checkpoint(run, 100, synthetic, mining={"mined_set": "mined.jsonl"})
    section = fn_section(run, sample_size=SAMPLE, seed=SEED, control_size=0)
    section["oracles"] = [*(section["oracles"] if judge else []), "review"]
    receiver = Receiver(always(OK)).start()
    (tmp / "hook-url").write_text(receiver.url + "/hook", encoding="utf-8")
    doc = config_doc(tmp, synthetic.path, run, false_negatives=section)
    doc["notifications"] = {
        "api_url": "http://recallwatch.test",
        "channels": [{"name": "hook", "type": "webhook", "url_file": str(tmp / "hook-url")}],
        "rules": [
            {
                "name": "fn",
                "type": "false_negative_rate",
                "threshold": THRESHOLD,
                "channels": ["hook"],
            }
        ],
    }
    daemon = Serve(write_config(tmp / "recallwatch.yaml", doc), tmp / "serve.log")
    try:
        url = daemon.start().url.rstrip("/")
        token = wait_for(lambda: _token(daemon), what="the review token in the daemon's log")
        key = wait_for(lambda: _offered(url), what="the run's mined set on /review")
        wait_for(lambda: ready(url), what="the daemon's first result")
        yield Live(daemon, url, token, key, receiver)
        assert daemon.stop() == 0
    finally:
        daemon.kill()
        receiver.stop()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, synthetic: SyntheticSet) -> Iterator[Live]:
    """``recallwatch serve`` with ``false_negatives.oracles: [review]`` and an FN rule."""
    tmp = tmp_path_factory.mktemp("live")
    with serve_live(tmp, synthetic, judge=False, ready=_evaluated) as live:
        yield live


def _fn_metric(url: str) -> dict[str, float]:
    """``recallwatch_false_negative_ratio`` of run ``demo`` by bound (empty: not exported)."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    return {
        s.labels["bound"]: s.value
        for family in text_string_to_metric_families(text)
        if family.name == "recallwatch_false_negative_ratio"
        for s in family.samples
        if s.labels.get("run") == "demo"
    }


def _alerts(url: str, status: str) -> list[dict[str, Any]]:
    got = requests.get(f"{url}/api/v1/alerts", params={"status": status}, timeout=10)
    got.raise_for_status()
    return [a for a in got.json()["items"] if a["alert"]["alertname"] == "FalseNegativeRateHigh"]


def _checkpoint(url: str) -> dict[str, Any]:
    got = requests.get(f"{url}/api/v1/runs/demo/checkpoints/checkpoint-100", timeout=10)
    got.raise_for_status()
    return dict(got.json())


def _estimate_of(url: str, judged: int) -> dict[str, Any] | None:
    """The checkpoint's estimate once it is made from ``judged`` labels."""
    fn = _checkpoint(url)["false_negatives"]
    return fn if fn is not None and fn["sample_size"] == judged else None


def _metric_under(url: str, threshold: float) -> dict[str, float] | None:
    """The exported FN ratio once its lower bound is under ``threshold``."""
    metric = _fn_metric(url)
    return metric if metric and metric["lower"] < threshold else None


def test_review_labels_open_and_undo_resolves_the_fn_alert_in_a_live_daemon(
    live: Live, tab: Tab
) -> None:
    url = live.url
    # Nobody has labelled: the daemon has no estimate, exports none and no alert is open.
    assert _fn_metric(url) == {}
    assert _alerts(url, "firing") == []

    page = tab.page
    page.goto(f"{url}/review/{live.key}#token={live.token}")
    wait_progress(tab, 0)
    page.fill("#reviewer", "ann")
    page.press("#reviewer", "Enter")
    for i in range(RELEVANT):
        wait_item(tab, i + 1)
        page.keyboard.press("r")
        wait_progress(tab, i + 1)

    # The alert opens by itself; its evidence names the human labels and the SPRT's decision.
    (alert,) = wait_for(lambda: _alerts(url, "firing"), what="FalseNegativeRateHigh to open")
    details = alert["alert"]["evidence"]["details"]
    assert details["source"] == "review"
    assert details["human_labels"]["reviewers"] == ["ann"]
    assert details["human_labels"]["relevant"] >= 1
    assert details["sprt_decision"] in ("too_high", None)
    assert "human review labels" in alert["alert"]["summary"]
    # ... and is delivered.
    wait_for(
        lambda: any(
            "human review labels" in r.body.decode(errors="replace")
            for r in live.receiver.received()
        ),
        what="the firing alert at the webhook",
    )
    # Once every label is in, the stored estimate is all six, decided by the SPRT.
    fn = wait_for(lambda: _estimate_of(url, RELEVANT), what="the estimate from all six labels")
    assert fn["source"] == "review" and fn["false_negatives"] == RELEVANT
    assert fn["sprt"]["decision"] == "too_high"
    high = _fn_metric(url)
    assert high["lower"] == pytest.approx(fn["lower"]) and high["lower"] > THRESHOLD
    page.wait_for_function("() => document.getElementById('sprt').textContent.includes('too high')")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "live21-review-labelled.png"), full_page=True)
    page_alert = tab.page.context.new_page()
    page_alert.goto(f"{url}/alerts/{alert['id']}")
    page_alert.screenshot(path=str(SHOTS / "live21-alert-evidence.png"), full_page=True)
    # The audit page says the people judged, how many and the SPRT's status.
    page_alert.goto(f"{url}/runs/demo/checkpoints/checkpoint-100/false-negatives")
    judged_by = page_alert.text_content("#fn-review") or ""
    assert f"{RELEVANT} labels ({RELEVANT} relevant" in judged_by and "ann" in judged_by
    assert "too high" in judged_by
    page_alert.screenshot(path=str(SHOTS / "live21-audit-page.png"), full_page=True)
    page_alert.close()

    # Undo all but one label: the estimate, the metric and the alert follow.
    page.bring_to_front()
    for left in range(RELEVANT - 1, 0, -1):
        page.keyboard.press("Backspace")
        wait_progress(tab, left)
    (resolved,) = wait_for(
        lambda: _alerts(url, "resolved"), what="FalseNegativeRateHigh to resolve"
    )
    assert resolved["id"] == alert["id"]
    assert _alerts(url, "firing") == []
    low = wait_for(
        lambda: _metric_under(url, THRESHOLD),
        what="the exported lower bound to fall under the threshold",
    )
    assert low["estimate"] <= high["estimate"]
    history = _checkpoint(url)["false_negative_history"]
    assert [h["source"] for h in history] == ["review"] * len(history)
    assert history[-1]["sample_size"] == 1 and len(history) >= 2
    assert not tab.errors and not tab.off_host()
