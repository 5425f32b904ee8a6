"""People correct a judge in a real ``recallwatch serve``: the estimate is prediction-powered.

The daemon's oracles are a judge (the simulated set's qrels, labelling the whole seeded sample)
and ``review``. The judge's audit alone is under the FN threshold; a reviewer in a real Chromium
labels the first items of the same sample relevant on ``/review``, and the daemon stores the
prediction-powered estimate (source ``ppi``): ``/metrics`` and the API follow it, the alert opens
with the human labels, the judge's agreement and the three estimates as its evidence, and the
audit and review pages mark PPI as the estimate used. Taking every label back brings the judge's
estimate back and resolves the alert.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from recallwatch.synthetic.heldout import SyntheticSet
from tests.helpers.browser import Tab
from tests.helpers.processes import wait_for
from tests.web.helpers import wait_item, wait_progress
from tests.web.test_review_live import (
    SHOTS,
    THRESHOLD,
    Live,
    _alerts,
    _checkpoint,
    _fn_metric,
    serve_live,
)

LABELS = 6


def _audited(url: str) -> dict[str, Any] | None:
    fn = _checkpoint(url)["false_negatives"]
    return fn if fn is not None and fn["source"] == "audit" else None


@pytest.fixture(scope="module")
def live_ppi(tmp_path_factory: pytest.TempPathFactory, synthetic: SyntheticSet) -> Iterator[Live]:
    """``recallwatch serve`` with ``oracles: [qrels:..., review]`` and an FN rule."""
    tmp = tmp_path_factory.mktemp("live-ppi")
    with serve_live(tmp, synthetic, judge=True, ready=_audited) as live:
        yield live


def _ppi_of(url: str, labels: int) -> dict[str, Any] | None:
    """The checkpoint's estimate once it is the prediction-powered one over ``labels`` labels."""
    fn = _checkpoint(url)["false_negatives"]
    if fn is None or fn["source"] != "ppi" or (fn["human_labels"] or {}).get("labels") != labels:
        return None
    return dict(fn)


def test_people_correct_the_judge_live_and_undo_brings_the_judge_back(
    live_ppi: Live, tab: Tab
) -> None:
    url = live_ppi.url
    judge = _checkpoint(url)["false_negatives"]
    assert judge["source"] == "audit" and judge["lower"] <= THRESHOLD
    assert _fn_metric(url)["lower"] == pytest.approx(judge["lower"])
    assert _alerts(url, "firing") == []

    page = tab.page
    page.goto(f"{url}/review/{live_ppi.key}#token={live_ppi.token}")
    wait_progress(tab, 0)
    page.fill("#reviewer", "ann")
    page.press("#reviewer", "Enter")
    for i in range(LABELS):
        wait_item(tab, i + 1)
        page.keyboard.press("r")
        wait_progress(tab, i + 1)

    fn = wait_for(lambda: _ppi_of(url, LABELS), what="the prediction-powered estimate")
    assert fn["oracle"] == f"{judge['oracle']} + review"
    people = fn["people"]
    assert people["used"] == "ppi"
    assert people["estimates"]["judge"]["estimate"] == pytest.approx(judge["estimate"])
    assert people["agreement"][0]["pairs"] == LABELS
    assert _fn_metric(url)["lower"] == pytest.approx(fn["lower"])
    assert fn["lower"] > THRESHOLD
    (alert,) = wait_for(lambda: _alerts(url, "firing"), what="FalseNegativeRateHigh to open")
    details = alert["alert"]["evidence"]["details"]
    assert details["source"] == "ppi" and details["used"] == "ppi"
    assert set(details["estimates"]) == {"ppi", "people", "judge"}
    assert "sensitivity" in details["agreement"] and "kappa" in details["agreement"]
    assert "prediction-powered" in alert["alert"]["summary"]

    # The review page and the audit page mark PPI as the estimate the daemon uses.
    SHOTS.mkdir(parents=True, exist_ok=True)
    view = tab.page.context.new_page()
    view.goto(f"{url}/review/{live_ppi.key}")
    assert "used" in (view.text_content('#fn-estimates tr[data-estimate="ppi"]') or "")
    view.screenshot(path=str(SHOTS / "live21-review-ppi.png"), full_page=True)
    view.goto(f"{url}/runs/demo/checkpoints/checkpoint-100/false-negatives")
    assert "prediction-powered (PPI++)" in (view.text_content("#fn-review") or "")
    assert "used" in (view.text_content('#fn-estimates tr[data-estimate="ppi"]') or "")
    assert "prediction-powered rate" in (view.text_content("#fn-used") or "")
    view.screenshot(path=str(SHOTS / "live21-audit-ppi.png"), full_page=True)
    view.close()

    # Take every label back: the judge's estimate returns (a new row) and the alert resolves.
    page.bring_to_front()
    for left in range(LABELS - 1, -1, -1):
        page.keyboard.press("Backspace")
        wait_progress(tab, left)
    (resolved,) = wait_for(
        lambda: _alerts(url, "resolved"), what="FalseNegativeRateHigh to resolve"
    )
    assert resolved["id"] == alert["id"]
    back = wait_for(lambda: _audited(url), what="the judge's estimate to come back")
    assert back["lower"] == pytest.approx(judge["lower"])
    assert _fn_metric(url)["lower"] == pytest.approx(judge["lower"])
    history = [h["source"] for h in _checkpoint(url)["false_negative_history"]]
    assert history[0] == "audit" and history[-1] == "audit" and "ppi" in history
    assert not tab.errors and not tab.off_host()
