"""A real ``recallwatch serve`` that backfills a six-checkpoint run with a regression, for the web
pages, the report and the exporter tests.

The run ``demo``: checkpoints 100-300 trained under mining config A, 400-600 under B; 400 and 500
are much worse (a regression right after the mining change, which the ``recall_regression`` rule
turns into an alert delivered to a real webhook receiver), 600 recovers. Every query text and
document title of the held-out set carries an HTML payload (``PAYLOAD``), to check that pages show
it as text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from recallwatch.synthetic.heldout import SyntheticSet, write_heldout
from tests.helpers.processes import wait_for
from tests.helpers.receivers import OK, Receiver, always
from tests.helpers.runs import config_doc, write_checkpoint, write_config
from tests.helpers.serve import Serve

#: Would change the page title if a page ever ran it as HTML.
PAYLOAD = "<img src=x onerror=\"document.title='pwned'\">"
STEPS = (100, 200, 300, 400, 500, 600)
MINING_A = {"teacher": "all-MiniLM-L6-v2", "range_min": 10, "num_negatives": 5}
MINING_B = {"teacher": "all-MiniLM-L6-v2", "range_min": 0, "num_negatives": 5}
#: Query noise per step: 400 and 500 lose recall after the mining change, 600 recovers.
NOISE = {100: 0.5, 200: 0.5, 300: 0.5, 400: 1.6, 500: 1.6, 600: 0.5}


def payload_heldout(directory: Path) -> SyntheticSet:
    """A synthetic held-out set whose query texts and titles start with ``PAYLOAD``."""
    synthetic = write_heldout(directory, num_docs=600, num_queries=80, seed=3)
    for name, field in (("queries.jsonl", "text"), ("corpus.jsonl", "title")):
        path = synthetic.path / name
        docs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
        for d in docs:
            d[field] = f"{PAYLOAD} {d[field]}"
        path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    return synthetic


def write_run(run_dir: Path, synthetic: SyntheticSet, steps: tuple[int, ...] = STEPS) -> None:
    """Write the run's complete checkpoints (a backfill: all there before the daemon starts)."""
    for step in steps:
        mining = MINING_A if step < 400 else MINING_B
        write_checkpoint(run_dir, step, synthetic, noise=NOISE[step], mining=mining)


@dataclass
class History:
    """The daemon that evaluated the run, its config, and the webhook receiver of its alerts."""

    daemon: Serve
    config: Path
    receiver: Receiver
    store: Path

    def api(self) -> httpx.Client:
        """A client of the daemon's HTTP server."""
        return httpx.Client(base_url=self.daemon.url, timeout=30)


def evaluations(api: httpx.Client, run: str = "demo") -> list[dict[str, Any]]:
    """Every checkpoint of a run from the API, in step order."""
    items: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = api.get(f"/api/v1/runs/{run}/evaluations", params={"offset": offset}).json()
        items += page["items"]
        offset = page["next_offset"]
    return sorted(items, key=lambda c: c["step"])


@contextmanager
def backfilled(tmp: Path, *, wait: bool = True, **sections: Any) -> Iterator[History]:
    """Start ``recallwatch serve`` on the six-checkpoint run; with ``wait``, until all are
    evaluated and the regression alert is delivered."""
    synthetic = payload_heldout(tmp / "heldout")
    run_dir = tmp / "run"
    write_run(run_dir, synthetic)
    receiver = Receiver(always(OK)).start()
    doc = config_doc(tmp, synthetic.path, run_dir, **sections)
    doc["evaluation"]["ks"] = [1, 10, 100]
    doc["notifications"] = {
        "api_url": "http://recallwatch.test",
        "channels": [{"name": "hook", "type": "webhook", "url_file": str(tmp / "hook-url")}],
        "rules": [
            {
                "name": "recall-after-mining",
                "type": "recall_regression",
                "ks": [10],
                "channels": ["hook"],
            }
        ],
    }
    (tmp / "hook-url").write_text(receiver.url + "/hook", encoding="utf-8")
    config = write_config(tmp / "recallwatch.yaml", doc)
    daemon = Serve(config, tmp / "serve.log")
    try:
        daemon.start()
        history = History(daemon, config, receiver, Path(doc["store"]["path"]))
        if wait:
            with history.api() as api:
                wait_for(
                    lambda: [c["state"] for c in evaluations(api)] == ["evaluated"] * 6,
                    timeout=300,
                    interval=0.5,
                    what="the six checkpoints to be evaluated",
                )
                wait_for(
                    lambda: any(
                        d["state"] == "delivered"
                        for a in api.get("/api/v1/alerts").json()["alerts"]
                        for d in a["deliveries"]
                    ),
                    timeout=120,
                    interval=0.5,
                    what="the regression alert to be delivered",
                )
        yield history
    finally:
        daemon.kill()
        receiver.stop()
