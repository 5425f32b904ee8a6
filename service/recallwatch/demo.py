"""The demo: a pretend training run with a mining change, and a webhook receiver for its alerts.

``recallwatch demo`` (and ``recallwatch serve --demo``) writes a synthetic held-out set and a run
directory, starts the real daemon on them, and lets :class:`DemoTrainer` add checkpoints over time.
Half-way the mining configuration changes and recall drops; the daemon's rules fire, and the
alerts are delivered to :class:`DemoReceiver`, a real HTTP server on loopback that verifies each
Standard Webhooks signature and prints what it received.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from recallwatch.logs import fields

__all__ = ["DemoReceiver", "DemoTrainer", "demo_notifications"]

log = logging.getLogger("recallwatch.demo")

URL_ENV = "RECALLWATCH_DEMO_WEBHOOK_URL"
SECRET_ENV = "RECALLWATCH_DEMO_WEBHOOK_SECRET"


def demo_notifications() -> dict[str, Any]:
    """The demo's rules, sending to the demo receiver (its URL and secret come from the env)."""
    return {
        "channels": [
            {
                "name": "demo-receiver",
                "type": "webhook",
                "url_env": URL_ENV,
                "secret_env": SECRET_ENV,
            }
        ],
        "rules": [
            {
                "name": "recall-drop-after-mining-change",
                "type": "recall_regression",
                "ks": [10],
                "min_drop": 0.01,
                "alpha": 0.01,
                "channels": ["demo-receiver"],
                "severity": "critical",
            },
            {
                "name": "false-negative-rate-high",
                "type": "false_negative_rate",
                "threshold": 0.05,
                "channels": ["demo-receiver"],
            },
        ],
    }


class DemoReceiver:
    """A loopback webhook receiver that verifies signatures and prints each alert it gets."""

    def __init__(self, printer: Any = print) -> None:
        self.secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self.received: list[dict[str, Any]] = []
        self._print = printer
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver.handle(dict(self.headers.items()), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the daemon's log already says what was delivered

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/alerts"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="demo-receiver", daemon=True
        )

    def start(self) -> None:
        """Serve in a thread and publish the URL and secret for the channel's ``*_env`` keys."""
        os.environ[URL_ENV] = self.url
        os.environ[SECRET_ENV] = self.secret
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        """Verify one delivery and print it; return the HTTP status to answer."""
        from recallwatch.notify.slack import fallback_text
        from recallwatch.notify.webhook import WebhookVerificationError, verify
        from recallwatch.records.alert import Alert

        try:
            msg_id = verify(self.secret, headers, body, now=time.time())
        except WebhookVerificationError as exc:
            log.warning("demo receiver: rejected a delivery: %s", exc)
            return 401
        doc = json.loads(body)
        self.received.append(doc)
        alert = Alert.from_dict(doc["data"])
        banner = f" demo receiver: {doc['type']} (webhook-id {msg_id}, signature verified) "
        self._print("\n" + banner.center(100, "=") + "\n" + fallback_text(alert) + "\n" + "=" * 100)
        return 204


class DemoTrainer:
    """A pretend training run for ``--demo``: checkpoints of known quality appear over time.

    Mining config v1 skips the hardest ranks (``range_min: 10``) and recall improves; from the
    seventh checkpoint on, v2 mines from rank 0 without a margin: its mined set has about three
    times the false-negative rate (audited against simulated dense qrels) and recall drops.
    """

    MINING_V1: ClassVar[dict[str, Any]] = {
        "teacher": "sentence-transformers/all-MiniLM-L6-v2",
        "range_min": 10,
        "range_max": 50,
        "relative_margin": 0.05,
        "num_negatives": 5,
        "mined_set": "mined/negatives-v1.jsonl",
    }
    MINING_V2: ClassVar[dict[str, Any]] = {
        **MINING_V1,
        "range_min": 0,
        "relative_margin": None,
        "mined_set": "mined/negatives-v2.jsonl",
    }
    #: Query noise per checkpoint: lower is better recall.
    NOISE = (0.95, 0.85, 0.78, 0.72, 0.68, 0.66, 1.1, 1.2, 1.25, 1.3, 1.3, 1.3)
    BACKFILL = 3

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def write_example(self, notifications: dict[str, Any] | None = None) -> Path:
        """Write the held-out set, the first checkpoints and the config; return the config."""
        import yaml

        from recallwatch.errors import ConfigError
        from recallwatch.synthetic.heldout import write_heldout

        if self.workdir.exists() and any(self.workdir.iterdir()):
            raise ConfigError(
                [("--demo", f"{self.workdir} is not empty; give a new or empty directory")]
            )

        self.synthetic = write_heldout(
            self.workdir / "heldout", num_docs=5_000, num_queries=300, seed=7
        )
        self._write_mined_sets()
        for i in range(self.BACKFILL):
            self._checkpoint(i)
        config = {
            "store": {"path": "state/recallwatch.db"},
            "poll_interval_seconds": 2,
            "evaluation": {"encoder": "precomputed", "ks": [1, 5, 10, 20, 100]},
            "heldout": [{"name": "synthetic", "path": "heldout"}],
            "runs": [{"name": "demo", "directory": "run", "settle_seconds": 1}],
            "false_negatives": {
                "corpus": "mining/corpus",
                "oracles": ["qrels:mining/audit.tsv"],
                "sample_size": 400,
            },
        }
        if notifications is not None:
            config["notifications"] = notifications
        path = self.workdir / "recallwatch.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path

    def _write_mined_sets(self) -> None:
        """v2 mines ranks 1-30 of a simulated set; v1 the same without ranks 1-10 (range_min)."""
        from recallwatch.mining.mined import write_recallwatch_jsonl
        from recallwatch.synthetic.mined import simulate_mined_set

        sim = simulate_mined_set(num_queries=300, negatives_per_query=30, num_docs=5_000, seed=7)
        sim.write(self.workdir / "mining")  # the corpus and the dense audit qrels
        mined = self.workdir / "run" / "mined"
        write_recallwatch_jsonl(sim.mined, mined / "negatives-v2.jsonl")
        write_recallwatch_jsonl(
            sim.mined,
            mined / "negatives-v1.jsonl",
            keep=[[n.rank > 10 for n in q.negatives] for q in sim.mined.queries],
        )

    def _checkpoint(self, i: int) -> None:
        from recallwatch.synthetic.heldout import write_precomputed_checkpoint

        step = 1000 * (i + 1)
        ckpt = write_precomputed_checkpoint(
            self.workdir / "run" / f"checkpoint-{step}", self.synthetic, noise=self.NOISE[i], seed=i
        )
        mining = self.MINING_V1 if i < 6 else self.MINING_V2
        (ckpt / "mining.json").write_text(json.dumps(mining, indent=2), encoding="utf-8")
        (ckpt / "trainer_state.json").write_text(
            json.dumps({"global_step": step}), encoding="utf-8"
        )

    def start(self, interval: float) -> None:
        """Write the remaining checkpoints, one every ``interval`` seconds, in a thread."""

        def loop() -> None:
            for i in range(self.BACKFILL, len(self.NOISE)):
                if self._stop.wait(interval):
                    return
                self._checkpoint(i)
                log.info("demo: the trainer wrote a checkpoint", extra=fields(step=1000 * (i + 1)))

        self._thread = threading.Thread(target=loop, name="demo-trainer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop writing checkpoints."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
