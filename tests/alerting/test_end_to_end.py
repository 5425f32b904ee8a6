"""End to end with the real daemon (must-show 1, 2 and the kill -9 fault of 3).

``recallwatch serve`` runs as a subprocess over a run directory where checkpoints appear with
precomputed embeddings of controlled quality:

- checkpoint-100 and -200 under mining config A (range_min 10);
- checkpoint-300 under mining config B (range_min 0): a mining change, but only noise-level
  changes to the embeddings — no alert;
- checkpoint-400 under B: 5 points of recall@10 lost (queries made to lose their positives) —
  exactly one alert at each receiver;
- checkpoint-500 under B, still regressed — deduplicated, nothing new;
- checkpoint-600 under B, recovered — a resolved notification at each receiver.

Receivers are real HTTP servers on loopback: a Slack-shaped one, a signed webhook (which answers
500 twice first, so the daemon's retries are exercised) and, when the Debian package is installed,
a real Alertmanager routing to a third webhook receiver.

A fresh store over history two days old (issue 20) records the alert it finds but sends nothing
until a checkpoint completed now decides (``notifications.backfill_quiet_seconds``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from recallwatch import failpoints
from recallwatch.encoders.precomputed import EMBEDDINGS_DIR
from recallwatch.notify.slack import check_limits
from recallwatch.notify.webhook import verify
from recallwatch.store.maintenance import review_mirror
from recallwatch.synthetic.heldout import SyntheticSet, write_heldout
from tests.helpers.processes import stop_processes, wait_for
from tests.helpers.prometheus import ALERTMANAGER, routing_to, start_alertmanager, wait_ready
from tests.helpers.receivers import Receiver, Reply, first
from tests.helpers.runs import age, config_doc, write_config
from tests.helpers.serve import Serve

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MINING_A = {"teacher": "all-MiniLM-L6-v2", "range_min": 10, "num_negatives": 5}
MINING_B = {"teacher": "all-MiniLM-L6-v2", "range_min": 0, "num_negatives": 5}
K = 10
RUNBOOK = "https://git.example/recallwatch/blob/main/docs/runbook.md"
RUNBOOK_URL = f"{RUNBOOK}#recallregressionafterminingchange"


# -- checkpoints of controlled quality --------------------------------------------------------


class Embeddings:
    """Query embeddings of a synthetic held-out set, and their exact recall@10."""

    def __init__(self, synthetic: SyntheticSet, noise: float = 1.0, seed: int = 0) -> None:
        self.synthetic = synthetic
        rng = np.random.default_rng(seed)
        index = {d: i for i, d in enumerate(synthetic.doc_ids)}
        self.relevant = [[index[d] for d in synthetic.qrels[q]] for q in synthetic.query_ids]
        dim = synthetic.doc_vectors.shape[1]
        centres = np.stack([synthetic.doc_vectors[r].mean(axis=0) for r in self.relevant])
        self.base = _unit(centres + noise * rng.standard_normal(centres.shape) / np.sqrt(dim))

    def recall(self, queries: np.ndarray) -> np.ndarray:
        """Per-query recall@10 by brute force (exact inner product, like the daemon)."""
        scores = queries @ self.synthetic.doc_vectors.T
        top = np.argsort(-scores, axis=1, kind="stable")[:, :K]
        return np.array([len(set(top[i]) & set(r)) / len(r) for i, r in enumerate(self.relevant)])

    def jittered(self, seed: int) -> np.ndarray:
        """A noise-level change: the base queries nudged by a tiny random amount."""
        rng = np.random.default_rng(1000 + seed)
        return _unit(self.base + 0.01 * rng.standard_normal(self.base.shape))

    def regressed(self, seed: int, points: float = 0.05) -> tuple[np.ndarray, list[str]]:
        """Queries that lose all their positives until recall@10 is ``points`` lower."""
        queries = self.jittered(seed)
        per_query = self.recall(queries)
        rng = np.random.default_rng(seed)
        lost: list[str] = []
        needed = int(np.ceil(points * len(per_query) - 1e-9))
        for qi in rng.permutation(np.flatnonzero(per_query == 1.0))[:needed]:
            # The opposite direction ranks the query's relevant documents last.
            queries[qi] = -queries[qi]
            lost.append(self.synthetic.query_ids[qi])
        return queries, lost


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def write_ckpt(
    run_dir: Path, step: int, emb: Embeddings, queries: np.ndarray, mining: dict[str, Any]
) -> Path:
    """A complete checkpoint with precomputed embeddings and its mining metadata."""
    ckpt = run_dir / f"checkpoint-{step}"
    out = ckpt / EMBEDDINGS_DIR
    out.mkdir(parents=True)
    np.save(out / "queries.npy", queries.astype(np.float32))
    np.save(out / "corpus.npy", emb.synthetic.doc_vectors)
    (out / "query_ids.txt").write_text("\n".join(emb.synthetic.query_ids) + "\n")
    (out / "corpus_ids.txt").write_text("\n".join(emb.synthetic.doc_ids) + "\n")
    (ckpt / "mining.json").write_text(json.dumps(mining))
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return ckpt


@pytest.fixture(scope="module")
def heldout(tmp_path_factory: pytest.TempPathFactory) -> SyntheticSet:
    """400 queries with two relevant documents each, 2,000 documents."""
    return write_heldout(
        tmp_path_factory.mktemp("heldout-e2e"), num_docs=2_000, num_queries=400, seed=5
    )


# -- a real Alertmanager ------------------------------------------------------------------------


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Start Alertmanager on a free loopback port, routing everything to a webhook URL."""
    if not Path(ALERTMANAGER).is_file():
        pytest.skip("Alertmanager is not installed: apt-get install -y prometheus-alertmanager")
    procs: list[subprocess.Popen[bytes]] = []

    def start(webhook_url: str) -> str:
        config = routing_to(webhook_url)
        url, proc = start_alertmanager(
            tmp_path, config, procs, "--cluster.listen-address=", "--log.level=warn"
        )
        wait_ready(proc, url, "Alertmanager to be ready", timeout=30)
        return url

    yield start
    stop_processes(procs)


# -- the scenario -------------------------------------------------------------------------------


def notifications(
    slack: str | None, hook: str | None, am: str | None, channels: list[str]
) -> dict[str, Any]:
    chans: list[dict[str, Any]] = []
    if slack:
        chans.append({"name": "slack", "type": "slack", "webhook_url_env": "E2E_SLACK"})
    if hook:
        chans.append(
            {"name": "hook", "type": "webhook", "url_env": "E2E_HOOK", "secret_env": "E2E_SECRET"}
        )
    if am:
        chans.append({"name": "am", "type": "alertmanager", "url": am})
    return {
        "dashboard_url": "http://grafana.example/d/recallwatch",
        "api_url": "http://recallwatch.example",
        "runbook_base_url": RUNBOOK,
        "channels": chans,
        "rules": [
            {
                "name": "recall-after-mining",
                "type": "recall_regression",
                "ks": [K],
                "severity": "critical",
                "channels": channels,
            }
        ],
    }


def start_daemon(
    serve: type[Serve],
    tmp_path: Path,
    heldout: SyntheticSet,
    run_dir: Path,
    notif: dict[str, Any],
    *,
    args: Sequence[str] = (),
) -> Serve:
    doc = config_doc(tmp_path, heldout.path, run_dir)
    doc["evaluation"]["ks"] = [K, 100]
    doc["notifications"] = notif
    config = write_config(tmp_path / "recallwatch.yaml", doc)
    return serve(config, tmp_path / "serve.log", args=args).start()


def evaluated(api: httpx.Client, step: int) -> bool:
    runs = api.get("/api/v1/runs").json()
    return bool(runs) and runs[0]["latest_step"] == step


@pytest.fixture
def env_secrets(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], None]:
    def set_(slack: str, hook: str) -> None:
        monkeypatch.setenv("E2E_SLACK", slack)
        monkeypatch.setenv("E2E_HOOK", hook)
        monkeypatch.setenv("E2E_SECRET", SECRET)

    return set_


def test_regression_after_mining_change_alerts_once_and_resolves(
    tmp_path: Path,
    heldout: SyntheticSet,
    serve: type[Serve],
    receiver: Callable[..., Receiver],
    env_secrets: Callable[[str, str], None],
    alertmanager: Callable[[str], str],
) -> None:
    slack = receiver()
    hook = receiver(first(2, Reply(500, body=b"try later")))
    am_hook = receiver()
    am_url = alertmanager(am_hook.url + "/am")
    env_secrets(slack.url + "/services/T1/B1/secret", hook.url + "/hook")
    emb = Embeddings(heldout)
    run_dir = tmp_path / "run"
    write_ckpt(run_dir, 100, emb, emb.base, MINING_A)
    write_ckpt(run_dir, 200, emb, emb.jittered(2), MINING_A)
    daemon = start_daemon(
        serve,
        tmp_path,
        heldout,
        run_dir,
        notifications(slack.url, hook.url, am_url, ["slack", "hook", "am"]),
    )
    with httpx.Client(base_url=daemon.url, timeout=10) as api:
        wait_for(lambda: evaluated(api, 200), timeout=60, what="backfill")
        # A mining change with noise-level changes only: no alert.
        write_ckpt(run_dir, 300, emb, emb.jittered(3), MINING_B)
        wait_for(lambda: evaluated(api, 300), timeout=60, what="checkpoint-300")
        # The regression: 5 points of recall@10 lost.
        queries, lost = emb.regressed(4)
        drop = emb.recall(emb.base).mean() - emb.recall(queries).mean()
        assert 0.05 <= drop < 0.07
        write_ckpt(run_dir, 400, emb, queries, MINING_B)
        wait_for(lambda: len(slack.received()) >= 1, timeout=60, what="the Slack alert")
        wait_for(lambda: len(hook.received()) >= 3, timeout=60, what="the webhook alert")
        # Still regressed: deduplicated.
        queries5, _ = emb.regressed(4)
        write_ckpt(run_dir, 500, emb, queries5, MINING_B)
        wait_for(lambda: evaluated(api, 500), timeout=60, what="checkpoint-500")
        # Recovered: resolved.
        write_ckpt(run_dir, 600, emb, emb.jittered(6), MINING_B)
        wait_for(lambda: len(slack.received()) >= 2, timeout=60, what="the Slack resolve")
        wait_for(lambda: len(hook.received()) >= 4, timeout=60, what="the webhook resolve")
        alerts = wait_for(
            lambda: (
                (doc := api.get("/api/v1/alerts").json())["alerts"]
                and all(d["state"] == "delivered" for a in doc["alerts"] for d in a["deliveries"])
                and doc
            ),
            timeout=30,
            what="every delivery recorded",
        )
        metrics = api.get("/metrics").text
    # -- Slack: exactly one firing and one resolved message, within Block Kit limits.
    time.sleep(0.5)
    firing, resolved = (r.json() for r in slack.received())
    assert len(slack.received()) == 2
    assert check_limits(firing) == [] and check_limits(resolved) == []
    text = json.dumps(firing)
    assert "range_min" in text and "checkpoint-400" in text and "p = " in text
    lost_count = hook.received()[-2].json()["data"]["evidence"]["lost_count"]
    assert f"{lost_count} queries lost a relevant document from the top 10" in text
    assert "question " in text and "Document " in text  # query text and lost doc title
    assert resolved["text"].startswith("[critical] RESOLVED: ")
    assert f"<{RUNBOOK_URL}|Runbook>" in text
    # -- Webhook: 500, 500, then delivered; the same id on every attempt; signatures verify.
    got = hook.received()
    assert len(got) == 4
    ids = [verify(SECRET, r.headers, r.body, now=time.time()) for r in got]
    assert ids[0] == ids[1] == ids[2] != ids[3]
    fire, res = got[2].json(), got[3].json()
    assert (fire["type"], res["type"], fire["version"]) == ("alert.firing", "alert.resolved", 1)
    data = fire["data"]
    assert data["key"]["baseline"] in {"checkpoint-100", "checkpoint-200"}
    assert (data["checkpoint"], data["step"], data["run"]) == ("checkpoint-400", 400, "demo")
    ev = data["evidence"]
    assert ev["regression_kind"] == "mining_change"
    assert ev["mining_diff"] == [
        {"key": "range_min", "before": 10, "after": 0, "change": "changed"}
    ]
    m = ev["metric"]
    assert m["before"]["estimate"] - m["after"]["estimate"] == pytest.approx(drop, abs=0.005)
    assert m["before"]["lower"] < m["before"]["estimate"] < m["before"]["upper"]
    assert m["p_value"] <= 0.01 and m["queries"] == 400
    assert len(lost) <= ev["lost_count"] <= len(lost) + 25  # + noise-level losses
    assert len(ev["lost_top"]) == 5 and all(q["query_id"] in lost for q in ev["lost_top"])
    assert all(q["query_text"].startswith("question ") for q in ev["lost_top"])
    assert all(q["doc_title"].startswith("Document ") for q in ev["lost_top"])
    assert data["links"]["dashboard"] == "http://grafana.example/d/recallwatch?var-run=demo"
    assert data["runbook_url"] == res["data"]["runbook_url"] == RUNBOOK_URL
    assert res["data"]["id"] == data["id"] and res["data"]["status"] == "resolved"
    assert res["data"]["checkpoint"] == "checkpoint-600"
    # -- The API and the metrics.
    (alert,) = alerts["alerts"]
    assert alert["id"] == data["id"] and alert["status"] == "resolved"
    hook_delivery = next(
        d for d in alert["deliveries"] if d["channel"] == "hook" and d["event"] == "firing"
    )
    assert hook_delivery["attempts"] == 3 and hook_delivery["message_id"] == ids[0]
    assert (
        'recallwatch_notifications_total{channel="hook",rule="recall-after-mining"} 2.0' in metrics
    )
    assert 'recallwatch_notification_failures_total{channel="hook"} 2.0' in metrics
    assert 'recallwatch_outbox_pending{channel="slack"} 0.0' in metrics
    promtool = shutil.which("promtool")
    if promtool is not None:  # the daemon's own exposition, notification metrics included
        done = subprocess.run(
            [promtool, "check", "metrics"], input=metrics, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
    # -- Alertmanager: firing, then resolved, routed to its webhook receiver.
    wait_for(
        lambda: any(r.json()["status"] == "resolved" for r in am_hook.received()),
        timeout=30,
        what="Alertmanager's resolved notification",
    )
    am = [r.json() for r in am_hook.received()]
    assert am[0]["status"] == "firing"
    labels = am[0]["alerts"][0]["labels"]
    assert labels["alertname"] == "RecallRegressionAfterMiningChange"
    assert (labels["run"], labels["severity"]) == ("demo", "critical")
    annotations = am[0]["alerts"][0]["annotations"]
    assert "recall@10 fell" in annotations["summary"]
    assert annotations["runbook_url"] == RUNBOOK_URL
    assert sum(1 for doc in am if doc["status"] == "firing") == 1  # one alert, one notification


def test_kill_9_after_the_decision_delivers_after_restart_with_the_same_id(
    tmp_path: Path,
    heldout: SyntheticSet,
    serve: type[Serve],
    receiver: Callable[..., Receiver],
    env_secrets: Callable[[str, str], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook = receiver()
    env_secrets(hook.url + "/unused", hook.url + "/hook")
    emb = Embeddings(heldout)
    run_dir = tmp_path / "run"
    write_ckpt(run_dir, 100, emb, emb.base, MINING_A)
    # 10 points: one checkpoint against one, with the default one-point checkpoint SD assumed.
    queries, _ = emb.regressed(7, points=0.10)
    write_ckpt(run_dir, 200, emb, queries, MINING_B)
    # The failpoint makes the daemon SIGKILL itself right after committing the decision and
    # before anything is sent.
    monkeypatch.setenv(failpoints.ENV, failpoints.AFTER_DECISION)
    notif = notifications(None, hook.url, None, ["hook"])
    daemon = start_daemon(serve, tmp_path, heldout, run_dir, notif)
    assert daemon.proc is not None
    assert daemon.proc.wait(60) == -signal.SIGKILL
    assert hook.received() == []
    db = sqlite3.connect(tmp_path / "state" / "recallwatch.db")
    ((pending_id, state),) = db.execute("SELECT message_id, state FROM outbox").fetchall()
    db.close()
    assert state == "pending"
    monkeypatch.delenv(failpoints.ENV)
    restarted = serve(daemon.config, daemon.log).start()
    wait_for(hook.received, timeout=60, what="delivery after the restart")
    restarted.stop()
    (got,) = hook.received()
    assert verify(SECRET, got.headers, got.body, now=time.time()) == pending_id
    assert got.json()["data"]["checkpoint"] == "checkpoint-200"
    assert os.environ.get(failpoints.ENV) is None


def test_a_fresh_store_over_old_history_records_its_alert_without_paging_again(
    tmp_path: Path,
    heldout: SyntheticSet,
    serve: type[Serve],
    receiver: Callable[..., Receiver],
    env_secrets: Callable[[str, str], None],
) -> None:
    hook = receiver()
    env_secrets(hook.url + "/unused", hook.url + "/hook")
    emb = Embeddings(heldout)
    run_dir = tmp_path / "run"
    write_ckpt(run_dir, 100, emb, emb.base, MINING_A)
    queries, _ = emb.regressed(7, points=0.10)
    write_ckpt(run_dir, 200, emb, queries, MINING_B)
    # History an earlier store decided on: completed two days ago (the quiet age is one day).
    age(run_dir, 2 * 86400)
    # The earlier store is lost; its review mirror is left: started anew with --fresh-store.
    mirror = review_mirror(tmp_path / "state" / "recallwatch.db")
    mirror.mkdir(parents=True)
    (mirror / "fp.csv").write_text(
        "query_id,doc_id,label,reviewer,time\nq1,d1,relevant,ann,2026-01-02T03:04:05Z\n",
        encoding="utf-8",
    )
    notif = notifications(None, hook.url, None, ["hook"])
    daemon = start_daemon(serve, tmp_path, heldout, run_dir, notif, args=["--fresh-store"])
    with httpx.Client(base_url=daemon.url, timeout=10) as api:
        (alert,) = wait_for(
            lambda: api.get("/api/v1/alerts").json()["alerts"], timeout=60, what="the alert"
        )
        assert (alert["status"], alert["deliveries"]) == ("firing", [])  # recorded, not sent
        # Counted where health is reported: /readyz's handled and the metrics.
        handled = api.get("/readyz").json()["handled"]
        assert handled == {
            "alerts_suppressed": {"backfill": 1},
            "alert_decision_failures": {"checkpoint": 0, "early": 0, "tick": 0},
            "early_pass_failures": 0,
            "review_estimate_failures": 0,
            "review_labels_restored": 1,
            "review_undos_restored": 0,
            "zygote_restarts": 0,
        }
        metrics = api.get("/metrics").text
        assert 'recallwatch_alerts_suppressed_total{reason="backfill"} 1.0' in metrics
        assert "recallwatch_review_labels_restored_total 1.0" in metrics
        # Recovered on a checkpoint completed now: decided as usual, its resolve is sent.
        write_ckpt(run_dir, 300, emb, emb.jittered(3), MINING_B)
        wait_for(hook.received, timeout=60, what="the resolve")
        suppressed = api.get("/readyz").json()["handled"]["alerts_suppressed"]
        assert suppressed == {"backfill": 1}  # the resolve was sent, not suppressed
    assert daemon.stop() == 0
    (got,) = hook.received()
    assert got.json()["type"] == "alert.resolved" and got.json()["data"]["id"] == alert["id"]
    assert "alert fire recorded, not sent: backfill" in daemon.log.read_text()
    assert "restored 1 review label(s) from the mirror" in daemon.log.read_text()
