"""SIGHUP to a running ``recallwatch serve``: a valid config's runs, notification channels, rules
(thresholds, routing) and poll interval take effect; a changed section that needs a restart is
named and exposed; an invalid file is rejected with its errors and the old one kept; all counted."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from recallwatch.synthetic.heldout import SyntheticSet
from tests.helpers.processes import wait_for
from tests.helpers.receivers import Receiver
from tests.helpers.runs import config_doc, write_checkpoint, write_config
from tests.helpers.serve import Serve


def reloads(api: httpx.Client) -> dict[str, float]:
    """``recallwatch_config_reloads_total`` by result, the last-reload gauge as ``ok``, and
    ``recallwatch_config_restart_required`` as ``restart:<section>``."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(api.get("/metrics").text):
        for s in family.samples:
            if s.name == "recallwatch_config_reloads_total":
                out[s.labels["result"]] = s.value
            if s.name == "recallwatch_config_last_reload_successful":
                out["ok"] = s.value
            if s.name == "recallwatch_config_restart_required":
                out["restart:" + s.labels["section"]] = s.value
    return out


def floor_rule(floor: float, channels: list[str], runs: list[str]) -> dict[str, Any]:
    """A recall@1 floor: 0 never fires, 1 fires on any checkpoint short of perfect."""
    return {
        "name": "floor",
        "type": "recall_floor",
        "k": 1,
        "floor": floor,
        "channels": channels,
        "runs": runs,
    }


def test_sighup_applies_a_valid_config_and_rejects_an_invalid_one(
    tmp_path: Path,
    synthetic: SyntheticSet,
    serve: type[Serve],
    receiver: Callable[..., Receiver],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook = receiver()
    monkeypatch.setenv("SIGHUP_HOOK_FIRST", hook.url + "/first")
    monkeypatch.setenv("SIGHUP_HOOK_SECOND", hook.url + "/second")
    first, second = tmp_path / "first", tmp_path / "second"
    write_checkpoint(first, 1, synthetic)
    write_checkpoint(second, 1, synthetic)
    doc = config_doc(tmp_path, synthetic.path, first)
    channel = {"name": "first", "type": "webhook", "url_env": "SIGHUP_HOOK_FIRST"}
    doc["notifications"] = {"channels": [channel], "rules": [floor_rule(0.0, ["first"], [])]}
    config = write_config(tmp_path / "rw.yaml", doc)
    daemon = serve(config, tmp_path / "serve.log").start()
    assert daemon.proc is not None
    with httpx.Client(base_url=daemon.url, timeout=10) as api:

        def runs() -> set[str]:
            return {r["name"] for r in api.get("/api/v1/runs").json()}

        wait_for(lambda: runs() == {"demo"}, what="the first run")
        assert reloads(api) == {"success": 0.0, "failure": 0.0, "ok": 1.0}

        # One reload: a run added, a channel added, the rule's threshold raised and routed to the
        # new channel and run only, the poll interval changed; and http (needs a restart).
        doc["runs"].append({"name": "added", "directory": str(second), "settle_seconds": 0.3})
        added = {"name": "second", "type": "webhook", "url_env": "SIGHUP_HOOK_SECOND"}
        doc["notifications"] = {
            "channels": [channel, added],
            "rules": [floor_rule(1.0, ["second"], ["added"])],
        }
        doc["poll_interval_seconds"] = 0.25
        doc["http"] = {"listen": "127.0.0.1:1"}
        write_config(config, doc)
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: runs() == {"demo", "added"}, what="the added run in /api/v1/runs")
        # The new threshold decided the added run's checkpoint; the new channel delivered it.
        (got,) = wait_for(hook.received, what="the alert at the channel added by the reload")
        assert got.path == "/second"
        assert got.json()["data"]["run"] == "added"
        assert reloads(api) == {"success": 1.0, "failure": 0.0, "ok": 1.0, "restart:http": 1.0}
        ready = api.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["config"] == {"restart_required": ["http"]}

        doc["poll_interval_seconds"] = -1
        doc["runs"].append({"name": "never", "directory": str(second)})
        write_config(config, doc)
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: reloads(api).get("failure") == 1.0, what="the rejected reload")
        assert reloads(api) == {"success": 1.0, "failure": 1.0, "ok": 0.0, "restart:http": 1.0}
        assert runs() == {"demo", "added"}
        assert api.get("/readyz").status_code == 200
    assert [r.path for r in hook.received()] == ["/second"]  # the first channel was never used
    rejected = [
        r for r in daemon.records() if r["message"].startswith("configuration reload rejected")
    ]
    assert len(rejected) == 1
    assert "poll_interval_seconds: Input should be greater than 0" in rejected[0]["message"]
    reloaded = next(r for r in daemon.records() if r["message"] == "configuration reloaded")
    assert reloaded["added"] == "added"
    assert reloaded["applied"] == "poll_interval_seconds,runs,notifications"
    assert reloaded["restart_required"] == "http"
    assert any(
        r["message"].startswith(
            "configuration sections changed that take effect only at the next start: http"
        )
        for r in daemon.records()
    )
    assert daemon.stop() == 0
