"""Holes through a real daemon: a planted-holes run and a control run on one held-out set.

The held-out set had relevant judgements removed (``tests/helpers/holes.py``). Run ``planted``'s
post-change checkpoint ranks exactly those documents first; run ``control``'s loses recall for
real on other queries. The daemon (one for the module) evaluates both, stores the rankings, and
opens a regression alert for each; with ``holes`` configured (a labels file that knows the
removed judgements) each alert's evidence carries the hole audit. ``recallwatch holes`` audits
offline, accepts the relevant documents as a qrels version and re-scores the history under it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from recallwatch.evaluation.holes import rescore
from recallwatch.heldout.sets import load_heldout
from recallwatch.store import OverlayLabel, QrelsVersions, Store
from recallwatch.views.rescored import QrelsSource, Rescorer
from recallwatch.web.templates import fmt
from tests.helpers.browser import Tab
from tests.helpers.holes import Planted, write_labels, write_planted, write_run
from tests.helpers.processes import REPO, wait_for
from tests.helpers.receivers import OK, Receiver, always
from tests.helpers.runs import config_doc, write_config
from tests.helpers.serve import PYTHONPATH, Serve
from tests.web.helpers import HOLE_WORDS, MINED_ONLY, review_words_shown


@dataclass
class Scene:
    daemon: Serve
    config: Path
    store: Path
    scenario: Planted
    #: The alerts' documents as they were when sent (before any qrels version).
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.daemon.url, timeout=30)


def _alerts(api: httpx.Client) -> dict[str, dict[str, Any]]:
    items = api.get("/api/v1/alerts").json()["items"]
    out = {}
    for item in items:
        doc = item.get("alert", item)
        out[doc["run"]] = doc
    return out


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    tmp = tmp_path_factory.mktemp("holes")
    scenario, base, post = write_planted(tmp / "data", seed=11, planted=30, real=12)
    write_run(tmp / "planted", base, post)
    write_run(tmp / "control", base, tmp / "data" / "control")
    labels = write_labels(tmp / "holes.csv", scenario.removed)
    receiver = Receiver(always(OK)).start()
    doc = config_doc(tmp, scenario.path, tmp / "planted")
    doc["runs"] = [
        {"name": name, "directory": str(tmp / name), "settle_seconds": 0.3}
        for name in ("planted", "control")
    ]
    doc["evaluation"]["ks"] = [1, 10, 100]
    doc["holes"] = {"oracles": [f"labels:{labels}"], "max_pairs": 5000, "seed": 1}
    doc["notifications"] = {
        "api_url": "http://recallwatch.test",
        "channels": [{"name": "hook", "type": "webhook", "url_file": str(tmp / "hook-url")}],
        "rules": [
            {"name": "recall", "type": "recall_regression", "ks": [10], "channels": ["hook"]}
        ],
    }
    (tmp / "hook-url").write_text(receiver.url + "/hook", encoding="utf-8")
    config = write_config(tmp / "recallwatch.yaml", doc)
    daemon = Serve(config, tmp / "serve.log")
    try:
        daemon.start()
        s = Scene(daemon, config, Path(doc["store"]["path"]), scenario)
        with s.api() as api:
            wait_for(
                lambda: set(_alerts(api)) == {"planted", "control"},
                timeout=300,
                interval=0.5,
                what="a regression alert of each run",
            )
            s.sent = _alerts(api)
        yield s
    finally:
        daemon.kill()
        receiver.stop()


def _truth(scene: Scene, run: str) -> float:
    """recall@10 change of the run's last checkpoint against its first, with the full qrels."""
    store = Store.open(scene.store, exclusive=False)
    try:
        rows = {r.name: r for r in store.queue.checkpoints(run, states=["evaluated"])}
        ranked = []
        for name in ("checkpoint-100", "checkpoint-400"):
            [ev] = store.results.current_evaluations(rows[name].id)
            ranked.append(rescore(store.results.rankings(ev.id), scene.scenario.full_qrels, [10]))
    finally:
        store.close()
    before, after = (r.per_query("recall", 10) for r in ranked)
    return sum(after[q] - before[q] for q in before) / len(before)


def test_the_alert_fires_and_its_evidence_explains_the_planted_holes(scene: Scene) -> None:
    with scene.api() as api:
        alert = _alerts(api)["planted"]
    holes = alert["evidence"]["details"]["holes"]
    truth = _truth(scene, "planted")
    raw, adjusted = holes["raw"], holes["adjusted"]
    # Without the audit: a large significant drop (the alert fired on it).
    assert raw["estimate"] < truth < 0 and raw["upper"] < 0
    assert holes["relevant"] > 0 and holes["relevant_share"] > 0
    assert adjusted["lower"] <= truth <= adjusted["upper"], (holes["summary"], truth)
    assert "hole-adjusted" in alert["description"]
    # The alert is not downgraded; its texts say what the audit found.
    assert alert["status"] == "firing"
    if not holes["significant"]:
        assert "not significant once the held-out holes are counted" in alert["summary"]


def test_a_real_drop_is_not_explained_away(scene: Scene) -> None:
    with scene.api() as api:
        holes = _alerts(api)["control"]["evidence"]["details"]["holes"]
    assert holes["lost_queries"] > 0 and holes["relevant"] == 0
    assert holes["adjusted"]["estimate"] == holes["raw"]["estimate"] < 0
    assert holes["significant"] is True


def test_the_unjudged_share_is_in_the_api_and_on_the_pages(scene: Scene) -> None:
    with scene.api() as api:
        items = api.get("/api/v1/runs/planted/evaluations").json()["items"]
        shares = {
            c["name"]: e["metrics"]["unjudged"]["10"]
            for c in items
            for e in c["evaluations"]
            if e["status"] == "done"
        }
        page = api.get("/runs/planted/checkpoints/checkpoint-400").text
        run_page = api.get("/runs/planted").text
        metrics = api.get("/metrics").text
    # The post-change checkpoint ranks the holes: more unjudged documents in its top 10.
    assert shares["checkpoint-400"] > shares["checkpoint-100"] > 0
    assert "unjudged" in page and "unjudged" in run_page
    assert "recallwatch_unjudged_ratio{" in metrics


def _holes(scene: Scene, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recallwatch.cli", "holes", *args, "--config", str(scene.config)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": PYTHONPATH, "PATH": "/usr/bin:/bin"},
        timeout=300,
    )


def test_the_offline_audit_accepts_a_qrels_version_and_rescores_the_history(
    scene: Scene,
) -> None:
    labels = scene.config.parent / "holes.csv"
    done = _holes(
        scene,
        "audit",
        "--run",
        "planted",
        "--checkpoint",
        "checkpoint-400",
        "--oracle",
        f"labels:{labels}",
        "--max-pairs",
        "5000",
        "--json",
        "--accept",
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["baseline"] == "checkpoint-300" and out["qrels_version"] == 0
    assert out["audit"]["relevant"] > 0 and out["accepted_version"] == 1
    rescored = _holes(scene, "rescore", "--run", "planted", "--json")
    assert rescored.returncode == 0, rescored.stderr
    doc = json.loads(rescored.stdout)
    assert doc["qrels_version"] == 1
    points = {p["checkpoint"]: p for p in doc["checkpoints"]}
    last = points["checkpoint-400"]
    # Under the accepted version the post-change checkpoint's recall is higher than stored
    # (the holes it found now count), and the stored numbers are unchanged.
    assert last["rescored"] > last["stored"]
    with scene.api() as api:
        items = api.get("/api/v1/runs/planted/evaluations").json()["items"]
    stored = [e for c in items if c["name"] == "checkpoint-400" for e in c["evaluations"]]
    assert stored[0]["metrics"]["recall"]["10"] == last["stored"]


def test_pages_and_api_show_stored_and_rescored_values_and_the_alert_keeps_its_numbers(
    scene: Scene, tab: Tab
) -> None:
    store = Store.open(scene.store, exclusive=False)
    try:
        if store.qrels.latest("synth") == 0:  # this test alone: accept the removed judgements
            labels = [OverlayLabel(q, d, 1, "test") for q, d in scene.scenario.removed]
            store.qrels.add("synth", labels, note="test", now=0.0)
        version = store.qrels.latest("synth")
        qrels = QrelsVersions.apply(
            load_heldout(scene.scenario.path).qrels, store.qrels.overlay("synth", version)
        )
        rows = {r.name: r for r in store.queue.checkpoints("planted", states=["evaluated"])}
        expected = {}
        for name in sorted(rows, key=lambda n: rows[n].step or 0):  # checkpoint-400 last
            [ev] = store.results.current_evaluations(rows[name].id)
            r = rescore(store.results.rankings(ev.id), qrels, [1, 10])
            expected[name] = (ev.metrics["recall"][10], r.metrics.mean("recall", 10))
        # The view computes the same, once per (evaluation, version).
        rescorer = Rescorer(store, {"synth": QrelsSource(scene.scenario.path)})
        first = rescorer.evaluation(ev)
        assert first is not None and first.version == version
        assert first.value("recall", 10) == expected["checkpoint-400"][1]
        assert rescorer.evaluation(ev) is first
        assert first.value("recall", 100) is None and "20 documents" in first.why("recall", 100)
    finally:
        store.close()
    stored, rescored = expected["checkpoint-400"]
    assert rescored > stored  # the accepted holes now count
    with scene.api() as api:
        doc = api.get("/api/v1/runs/planted/checkpoints/checkpoint-400").json()
        page = api.get("/runs/planted/checkpoints/checkpoint-400").text
        run_page = api.get("/runs/planted").text
        alert = _alerts(api)["planted"]
        alert_page = api.get(f"/alerts/{alert['id']}").text
    [e] = doc["evaluations"]
    assert e["metrics"]["recall"]["10"] == stored
    assert e["rescored"]["version"] == version
    assert e["rescored"]["metrics"]["recall"]["10"] == rescored
    assert e["rescored"]["metrics"]["recall"]["100"] is None and e["rescored"]["why"]["recall"]
    assert f"qrels v{version}" in page and fmt(stored) in page and fmt(rescored) in page
    assert f"(v{version} {fmt(rescored)})" in run_page and fmt(stored) in run_page
    # The alert keeps the numbers it was sent with and shows the re-scored change beside them.
    assert alert["evidence"]["metric"] == scene.sent["planted"]["evidence"]["metric"]
    sent = alert["evidence"]
    before = expected[sent["baseline"]["checkpoint"]][1]
    after = expected[alert["checkpoint"]][1]
    assert 'id="rescored-change"' in alert_page
    assert f"{fmt(before)} → {fmt(after)} ({fmt(after - before)})" in alert_page
    assert fmt(alert["evidence"]["metric"]["after"]["estimate"]) in alert_page
    tab.page.goto(f"{scene.daemon.url}/runs/planted/checkpoints/checkpoint-400")
    tab.page.wait_for_selector("th.rescored")
    (REPO / "artifacts").mkdir(exist_ok=True)
    tab.page.screenshot(path=str(REPO / "artifacts" / "holes-rescored.png"), full_page=True)
    assert tab.errors == [] and tab.off_host() == []


def test_the_pages_show_the_unjudged_share_and_the_hole_evidence_in_a_browser(
    scene: Scene, tab: Tab
) -> None:
    artifacts = REPO / "artifacts"
    artifacts.mkdir(exist_ok=True)
    with scene.api() as api:
        alert = _alerts(api)["planted"]
    tab.page.goto(f"{scene.daemon.url}/runs/planted/checkpoints/checkpoint-400")
    tab.page.wait_for_selector("text=unjudged")
    tab.page.screenshot(path=str(artifacts / "holes-checkpoint.png"), full_page=True)
    tab.page.goto(f"{scene.daemon.url}/alerts/{alert['id']}")
    tab.page.wait_for_selector("text=hole-adjusted")
    body = tab.page.inner_text("body")
    assert "relevant_share" in body and "displacing" in body
    tab.page.screenshot(path=str(artifacts / "holes-alert.png"), full_page=True)
    assert tab.errors == [] and tab.off_host() == []


def _review_token(scene: Scene) -> str:
    for doc in scene.daemon.records():
        message = doc.get("message", "")
        if message.startswith("review token"):
            return str(message.rsplit(": ", 1)[1])
    raise AssertionError("the daemon logged no review token")


def test_the_held_out_queue_is_labelled_in_a_browser_and_read_by_the_audit(
    scene: Scene, tab: Tab
) -> None:
    key = "holes-synth--planted--checkpoint-400"
    page = tab.page
    page.goto(f"{scene.daemon.url}/review")
    assert key in page.content()
    page.goto(f"{scene.daemon.url}/review/{key}#token={_review_token(scene)}")
    page.fill("#reviewer", "ann")
    page.press("#reviewer", "Enter")
    removed = set(scene.scenario.removed)
    labelled: dict[tuple[str, str], str] = {}
    for i in range(4):
        page.wait_for_function(
            "n => !document.getElementById('item').hidden"
            " && document.getElementById('position').textContent === String(n)"
            " && document.getElementById('pair').textContent.includes(' / ')",
            arg=i + 1,
        )
        query_id, doc_id = (page.text_content("#pair") or "").split(" / ")
        relevant = (query_id, doc_id) in removed
        labelled[(query_id, doc_id)] = "relevant" if relevant else "not_relevant"
        page.keyboard.press("r" if relevant else "n")
        page.wait_for_function(
            "n => document.getElementById('progress').textContent.startsWith(n + ' of ')",
            arg=i + 1,
        )
    # The page speaks of displacing documents of a held-out query, not of mined negatives; the
    # review API's state says which kind of set it is.
    shown = review_words_shown(tab)
    for words in HOLE_WORDS:
        assert words in shown, words
    for words in MINED_ONLY:
        assert words not in shown.lower(), words
    done = "Every displacing document of the queue is labelled by you."
    assert page.text_content("#done") == done
    assert (page.text_content("#headline") or "").endswith(" from 4 judged displacing documents")
    assert page.text_content("#buckets thead") == (
        "checkpoint rankjudgedrelevantshare relevant95% interval"
    )
    with scene.api() as api:
        state = api.get(f"/review/{key}/state", params={"reviewer": "ann"}).json()
    assert state["kind"] == "holes" and state["progress"]["done"] == 4
    assert state["estimate"]["status"].startswith("n/a: no target rate for a held-out queue")
    assert page.text_content("#sprt") == state["estimate"]["status"]
    (REPO / "artifacts").mkdir(exist_ok=True)
    page.screenshot(path=str(REPO / "artifacts" / "review-holes.png"), full_page=True)
    assert tab.errors == [] and tab.off_host() == []
    page.goto(f"{scene.daemon.url}/review")
    row = page.locator(f"#review-sets tr:has(a[href$='/review/{key}'])")
    assert row.get_attribute("data-kind") == "holes"
    assert "held-out holes queue" in (row.inner_text() or "")
    # The labels are mirrored to a CSV that the offline audit reads as a labels: oracle.
    mirror = scene.store.parent / "reviews" / f"{key}.csv"
    wait_for(mirror.is_file, timeout=30, what="the review mirror")
    done = _holes(
        scene,
        "audit",
        "--run",
        "planted",
        "--checkpoint",
        "checkpoint-400",
        "--baseline",
        "checkpoint-300",
        "--version",
        "0",
        "--oracle",
        f"labels:{mirror}",
        "--max-pairs",
        "5000",
        "--seed",
        "1",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    audit = json.loads(done.stdout)["audit"]
    assert audit["judged"] == len(labelled)
    assert audit["relevant"] == sum(v == "relevant" for v in labelled.values())
