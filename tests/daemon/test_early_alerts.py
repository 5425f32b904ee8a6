"""The early warning through the alert channels, in a real daemon with a real HTTP receiver on
loopback standing in for a webhook, Slack and Alertmanager (one daemon for the module).

The story, in order: two undamaged checkpoints (no early alert); a damaged checkpoint-3 whose
exact pass is held (failpoint ``hold-exact``): its early alert reaches every channel while no
exact evaluation exists; the daemon restarts during the hold (the alert is not sent again); the
checkpoint is rewritten undamaged before its exact pass runs, so the exact evaluation clears the
warning: a follow-up on every channel (Alertmanager: ``endsAt``). Then a damaged checkpoint-4:
early alert while held, confirmed by the exact pass, and the regression alert notes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from recallwatch import failpoints
from recallwatch.notify.slack import escape
from recallwatch.synthetic.heldout import SyntheticSet
from tests.helpers.browser import Tab
from tests.helpers.processes import REPO, wait_for
from tests.helpers.receivers import OK, Received, Receiver, always
from tests.helpers.runs import config_doc, write_checkpoint, write_config
from tests.helpers.serve import Serve

API_URL = "http://recallwatch.test"
#: The mining configuration of checkpoints 1-3, and the change that comes with checkpoint-4.
MINING_A = {"range_min": 10, "mined_set": "a.jsonl"}
MINING_B = {"range_min": 0, "mined_set": "b.jsonl"}
NAME = "RecallEarlyWarning"


@dataclass
class Scene:
    """What the module's daemon did, observed at each step."""

    daemon: Serve
    hook: Receiver
    #: Requests received when checkpoint-2 (undamaged) was decided.
    quiet: list[Received] = field(default_factory=list)
    #: checkpoint-3 and checkpoint-4 as the API showed them while their exact pass was held.
    held: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The web page of checkpoint-4's early alert, at the end.
    page: httpx.Response | None = None
    #: Early verdicts (``GET /api/v1/early``) by checkpoint, at the end.
    early: dict[str, dict[str, Any]] = field(default_factory=dict)


def _early_on(api: httpx.Client, checkpoint: str) -> dict[str, Any] | None:
    items = api.get("/api/v1/early", params={"run": "demo"}).json()["items"]
    return next((v for v in items if v["checkpoint"] == checkpoint), None)


def _checkpoint(api: httpx.Client, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = api.get(f"/api/v1/runs/demo/checkpoints/{name}").json()
    return doc


# -- what the receiver got, per channel -----------------------------------------------------------


def hooks(hook: Receiver, kind: str, checkpoint: str, alertname: str = NAME) -> list[Any]:
    """Webhook bodies of ``kind`` (``alert.firing`` ...) of ``alertname`` about a checkpoint.

    A resolved alert names the checkpoint that resolved it: the same one here.
    """
    return [
        doc
        for r in hook.received()
        if r.path == "/hook"
        and (doc := r.json())["type"] == kind
        and doc["data"]["alertname"] == alertname
        and doc["data"]["checkpoint"] == checkpoint
    ]


def _early_id(hook: Receiver, checkpoint: str) -> str | None:
    """The id of the early alert about a checkpoint (from its webhook message)."""
    firing = hooks(hook, "alert.firing", checkpoint)
    return firing[0]["data"]["id"] if firing else None


def slacks(hook: Receiver, checkpoint: str) -> list[dict[str, Any]]:
    """Slack bodies of the early alert about a checkpoint, in order (its id is in the context)."""
    aid = _early_id(hook, checkpoint)
    return [
        doc
        for r in hook.received()
        if r.path == "/slack" and aid is not None and aid in str((doc := r.json())["blocks"])
    ]


def ams(hook: Receiver, checkpoint: str) -> list[dict[str, Any]]:
    """Alertmanager alerts of the early alert about a checkpoint, in order."""
    aid = _early_id(hook, checkpoint)
    return [
        a
        for r in hook.received()
        if r.path == "/am/api/v2/alerts"
        for a in r.json()
        if a["annotations"]["alert_id"] == aid
    ]


def _resolved(summary: str) -> bool:
    return summary.startswith("RESOLVED:") or "] RESOLVED:" in summary


def _everywhere(hook: Receiver, kind: str, checkpoint: str) -> bool:
    """Whether the early alert's ``kind`` (firing, resolved) reached every channel."""
    done = kind == "resolved"
    slack = [s for s in slacks(hook, checkpoint) if _resolved(s["text"]) == done]
    am = [a for a in ams(hook, checkpoint) if _resolved(a["annotations"]["summary"]) == done]
    return bool(hooks(hook, f"alert.{kind}", checkpoint) and slack and am)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory, synthetic: SyntheticSet) -> Iterator[Scene]:
    tmp = tmp_path_factory.mktemp("early-alerts")
    gate, run_dir = tmp / "hold-exact", tmp / "run"
    hook = Receiver(always(OK)).start()
    (tmp / "hook-url").write_text(f"{hook.url}/hook", encoding="utf-8")
    (tmp / "slack-url").write_text(f"{hook.url}/slack", encoding="utf-8")
    notifications = {
        "api_url": API_URL,
        "channels": [
            {"name": "hook", "type": "webhook", "url_file": str(tmp / "hook-url")},
            {"name": "slack", "type": "slack", "webhook_url_file": str(tmp / "slack-url")},
            # Re-sends kept out of the test's time: each alert reaches it once per event.
            {
                "name": "am",
                "type": "alertmanager",
                "url": f"{hook.url}/am",
                "resend_interval_seconds": 3600,
            },
        ],
        "rules": [
            {"name": "early", "type": "early_warning", "channels": ["hook", "slack", "am"]},
            {"name": "recall", "type": "recall_regression", "channels": ["hook"]},
        ],
    }
    # A pool of 30% of the 600 documents (on by corpus size for the test); a restart stops the
    # held exact pass at once (re-queued, the early verdict kept).
    evaluation = {
        "early": {"min_corpus_docs": 0, "pool_fraction": 0.3},
        "shutdown_grace_seconds": 0,
    }
    doc = config_doc(
        tmp, synthetic.path, run_dir, evaluation=evaluation, notifications=notifications
    )
    config = write_config(tmp / "rw.yaml", doc)
    daemon = Serve(config, tmp / "serve.log")
    scene = Scene(daemon, hook)
    with pytest.MonkeyPatch.context() as env:
        env.setenv(failpoints.ENV, failpoints.HOLD_EXACT)
        env.setenv(failpoints.FILE_ENV, str(gate))
        try:
            daemon.start()
            api = lambda: httpx.Client(base_url=daemon.url, timeout=10)  # noqa: E731
            with api() as c:
                write_checkpoint(run_dir, 1, synthetic, noise=0.6, mining=MINING_A)
                write_checkpoint(run_dir, 2, synthetic, noise=0.6, mining=MINING_A)
                wait_for(
                    lambda: (v := _early_on(c, "checkpoint-2")) and v["exact"] is not None,
                    timeout=120,
                    what="checkpoint-2's exact pass",
                )
                wait_for(
                    lambda: _checkpoint(c, "checkpoint-2")["state"] == "evaluated",
                    what="checkpoint-2 decided",
                )
                scene.quiet = hook.received()

                gate.write_text("")
                write_checkpoint(run_dir, 3, synthetic, noise=1.5, mining=MINING_A)  # damaged
                _held(scene, c, hook, "checkpoint-3")
                # The trainer rewrites checkpoint-3 undamaged before its exact pass runs.
                write_checkpoint(run_dir, 3, synthetic, noise=0.6, mining=MINING_A)
            daemon.stop()
            daemon.start()  # the exact pass is held again after the restart
            with api() as c:
                wait_for(
                    lambda: _checkpoint(c, "checkpoint-3")["state"] == "evaluating",
                    what="checkpoint-3 evaluating again after the restart",
                )
                gate.unlink()
                wait_for(
                    lambda: _everywhere(hook, "resolved", "checkpoint-3"),
                    timeout=120,
                    what="the follow-up of checkpoint-3 on every channel",
                )

                gate.write_text("")
                write_checkpoint(run_dir, 4, synthetic, noise=1.5, mining=MINING_B)  # damaged
                _held(scene, c, hook, "checkpoint-4")
                gate.unlink()
                wait_for(
                    lambda: (
                        _everywhere(hook, "resolved", "checkpoint-4")
                        and hooks(hook, "alert.firing", "checkpoint-4", _regression(hook))
                    ),
                    timeout=120,
                    what="checkpoint-4's follow-up and regression alert",
                )
                aid = _early_id(hook, "checkpoint-4")
                scene.page = c.get(f"/alerts/{aid}")
                scene.early = {
                    name: v
                    for name in ("checkpoint-2", "checkpoint-3", "checkpoint-4")
                    if (v := _early_on(c, name)) is not None
                }
            yield scene
        finally:
            daemon.kill()
            hook.stop()


def _regression(hook: Receiver) -> str:
    """The regression alert's name (its kind decides it): the one firing alert not early."""
    names = {
        doc["data"]["alertname"]
        for r in hook.received()
        if r.path == "/hook" and (doc := r.json())["data"]["rule_type"] == "recall_regression"
    }
    return next(iter(names), "RecallRegression")


def _held(scene: Scene, api: httpx.Client, hook: Receiver, checkpoint: str) -> None:
    """Wait for the early alert on every channel while the exact pass is held; record the API."""
    wait_for(
        lambda: _everywhere(hook, "firing", checkpoint),
        timeout=120,
        what=f"{checkpoint}'s early alert on every channel",
    )
    scene.held[checkpoint] = {
        "checkpoint": _checkpoint(api, checkpoint),
        "early": _early_on(api, checkpoint),
    }


# -- the tests ------------------------------------------------------------------------------------


def test_an_undamaged_checkpoint_sends_no_early_alert(scene: Scene) -> None:
    assert scene.early["checkpoint-2"]["state"] == "passed"
    assert scene.quiet == []  # nothing at all was sent for checkpoints 1 and 2


def test_the_early_alert_reaches_every_channel_while_the_exact_pass_is_held(
    scene: Scene,
) -> None:
    for name in ("checkpoint-3", "checkpoint-4"):
        held = scene.held[name]
        assert held["checkpoint"]["state"] == "evaluating"
        assert held["checkpoint"]["evaluations"] == []  # no exact evaluation yet
        v = held["early"]
        assert v["state"] == "warning"
        text = (
            f"early: recall@10 <= {v['upper_bound']:.2f} on a pool of {v['pool_docs']:,} "
            f"documents against {v['baseline']:.2f} exact at checkpoint-{int(name[-1]) - 1}; "
            "confirming with the exact evaluation…"
        )
        [firing] = hooks(scene.hook, "alert.firing", name)
        alert = firing["data"]
        assert alert["description"] == text
        assert alert["severity"] == "warning" and alert["key"]["rule"] == "early"
        assert alert["links"]["evaluation"] == f"{API_URL}/runs/demo/checkpoints/{name}"
        [am] = [a for a in ams(scene.hook, name) if not _resolved(a["annotations"]["summary"])]
        assert am["annotations"]["description"] == text
        assert am["labels"]["severity"] == "warning"
        assert am["annotations"]["evaluation_url"] == alert["links"]["evaluation"]
        [slack] = [s for s in slacks(scene.hook, name) if not _resolved(s["text"])]
        assert escape(text) in str(slack["blocks"])  # mrkdwn-escaped


def test_the_exact_pass_clears_the_warning_with_a_follow_up_after_a_restart(
    scene: Scene,
) -> None:
    v = scene.early["checkpoint-3"]
    assert v["state"] == "cleared" and not v["exact_regressed"]
    follow_up = (
        "early warning for checkpoint-3 cleared by the exact evaluation: "
        f"recall@10 {v['exact']:.2f}"
    )
    # Sent once per channel although the daemon restarted during the exact pass.
    [firing] = hooks(scene.hook, "alert.firing", "checkpoint-3")
    [resolved] = hooks(scene.hook, "alert.resolved", "checkpoint-3")
    assert resolved["data"]["id"] == firing["data"]["id"]
    assert resolved["data"]["summary"] == f"RESOLVED: {follow_up}"
    ams_3 = ams(scene.hook, "checkpoint-3")
    assert len(ams_3) == 2
    ended = ams_3[-1]
    assert ended["annotations"]["summary"] == f"RESOLVED: {follow_up}"
    assert ended["endsAt"] == resolved["data"]["resolved_at"]
    slack_3 = slacks(scene.hook, "checkpoint-3")
    assert len(slack_3) == 2 and escape(follow_up) in slack_3[-1]["text"]


def test_a_confirmed_warning_hands_over_to_the_regression_alert(scene: Scene) -> None:
    v = scene.early["checkpoint-4"]
    assert v["state"] == "confirmed" and v["exact_regressed"]
    [firing] = hooks(scene.hook, "alert.firing", "checkpoint-4")
    [resolved] = hooks(scene.hook, "alert.resolved", "checkpoint-4")
    assert resolved["data"]["summary"] == (
        "RESOLVED: early warning for checkpoint-4 confirmed by the exact evaluation: "
        f"recall@10 {v['exact']:.2f}"
    )
    [regression] = hooks(scene.hook, "alert.firing", "checkpoint-4", _regression(scene.hook))
    details = regression["data"]["evidence"]["details"]["early_warning"]
    warned_at = firing["data"]["evidence"]["details"]["warned_at"]
    assert details["note"].startswith(f"early warning at {warned_at} confirmed")
    assert f"Early warning at {warned_at} confirmed" in regression["data"]["description"]


def test_the_alert_page_shows_the_early_alert_and_its_follow_up(scene: Scene) -> None:
    assert scene.page is not None and scene.page.status_code == 200
    text = scene.page.text
    assert NAME in text and "confirmed by the exact evaluation" in text


def test_the_checkpoint_and_alert_pages_show_the_early_verdict_in_a_browser(
    scene: Scene, tab: Tab
) -> None:
    """Checkpoint-4's page shows its early verdict apart from the exact one (confirmed) and how
    its embeddings were computed; the early alert's page shows the alert and its follow-up. Both
    load nothing off the host; screenshots artifacts/early-checkpoint.png, early-alert.png."""
    artifacts = REPO / "artifacts"
    artifacts.mkdir(exist_ok=True)
    v = scene.early["checkpoint-4"]
    tab.page.goto(f"{scene.daemon.url}/runs/demo/checkpoints/checkpoint-4")
    tab.page.wait_for_selector("text=Early verdicts")
    body = tab.page.inner_text("body")
    assert "confirmed" in body and f"{v['upper_bound']:.4f}" in body
    # Precomputed embeddings: recallwatch computed nothing, and the page says so.
    assert "not applicable" in body
    tab.page.screenshot(path=str(artifacts / "early-checkpoint.png"), full_page=True)
    tab.page.goto(f"{scene.daemon.url}/alerts/{_early_id(scene.hook, 'checkpoint-4')}")
    tab.page.wait_for_selector(f"text={NAME}")
    assert "confirmed by the exact evaluation" in tab.page.inner_text("body")
    tab.page.screenshot(path=str(artifacts / "early-alert.png"), full_page=True)
    assert tab.errors == [] and tab.off_host() == []
