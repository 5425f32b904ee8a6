"""SIGHUP to a running ``recallwatch serve``: a valid config's runs take effect, an invalid one is
rejected with its errors and the old one kept; both counted."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from recallwatch.synthetic.heldout import SyntheticSet
from tests.helpers.processes import wait_for
from tests.helpers.runs import config_doc, write_checkpoint, write_config
from tests.helpers.serve import Serve


def reloads(api: httpx.Client) -> dict[str, float]:
    """``recallwatch_config_reloads_total`` by result, and the last-reload gauge as ``ok``."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(api.get("/metrics").text):
        for s in family.samples:
            if s.name == "recallwatch_config_reloads_total":
                out[s.labels["result"]] = s.value
            if s.name == "recallwatch_config_last_reload_successful":
                out["ok"] = s.value
    return out


def test_sighup_applies_a_valid_config_and_rejects_an_invalid_one(
    tmp_path: Path, synthetic: SyntheticSet, serve: type[Serve]
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    write_checkpoint(first, 1, synthetic)
    write_checkpoint(second, 1, synthetic)
    doc = config_doc(tmp_path, synthetic.path, first)
    config = write_config(tmp_path / "rw.yaml", doc)
    daemon = serve(config, tmp_path / "serve.log").start()
    assert daemon.proc is not None
    with httpx.Client(base_url=daemon.url, timeout=10) as api:

        def runs() -> set[str]:
            return {r["name"] for r in api.get("/api/v1/runs").json()}

        wait_for(lambda: runs() == {"demo"}, what="the first run")
        assert reloads(api) == {"success": 0.0, "failure": 0.0, "ok": 1.0}

        doc["runs"].append({"name": "added", "directory": str(second), "settle_seconds": 0.3})
        write_config(config, doc)
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: runs() == {"demo", "added"}, what="the added run in /api/v1/runs")
        wait_for(
            lambda: (
                api.get("/api/v1/runs/added/evaluations/checkpoint-1").json().get("state")
                == "evaluated"
            ),
            what="the added run's checkpoint to be evaluated",
        )
        assert reloads(api) == {"success": 1.0, "failure": 0.0, "ok": 1.0}

        doc["poll_interval_seconds"] = -1
        doc["runs"].append({"name": "never", "directory": str(second)})
        write_config(config, doc)
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: reloads(api).get("failure") == 1.0, what="the rejected reload")
        assert reloads(api) == {"success": 1.0, "failure": 1.0, "ok": 0.0}
        assert runs() == {"demo", "added"}
        assert api.get("/readyz").status_code == 200
    rejected = [
        r for r in daemon.records() if r["message"].startswith("configuration reload rejected")
    ]
    assert len(rejected) == 1
    assert "poll_interval_seconds: Input should be greater than 0" in rejected[0]["message"]
    reloaded = next(r for r in daemon.records() if r["message"] == "configuration reloaded")
    assert reloaded["added"] == "added"
    assert daemon.stop() == 0
