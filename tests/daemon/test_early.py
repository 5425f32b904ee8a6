"""The early pass in a real daemon: a damaged checkpoint raises the early warning (pooled recall,
an upper bound, significantly below the previous checkpoint's exact recall) while its exact
evaluation is still held back, then the exact pass confirms it; an undamaged one raises none. The
pool's candidates come from the previous exact evaluation's stored rankings."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from recallwatch import failpoints
from recallwatch.daemon.early import pool_size
from recallwatch.daemon.runner import Job, Result, run_in_process
from recallwatch.store import Store
from recallwatch.synthetic.heldout import SyntheticSet
from tests.daemon.helpers import daemon, make_config, poll_until_idle
from tests.helpers.processes import wait_for
from tests.helpers.runs import config_doc, write_checkpoint, write_config
from tests.helpers.serve import Serve

#: A pool of 30% of the 600 documents (every judged one in it); on by corpus size for the test.
EARLY = {"min_corpus_docs": 0, "pool_fraction": 0.3}


def _early(api: httpx.Client, checkpoint: str) -> dict[str, Any] | None:
    items = api.get("/api/v1/early", params={"run": "demo"}).json()["items"]
    return next((v for v in items if v["checkpoint"] == checkpoint), None)


def _state(api: httpx.Client, checkpoint: str) -> dict[str, Any]:
    doc: dict[str, Any] = api.get(f"/api/v1/runs/demo/checkpoints/{checkpoint}").json()
    return doc


def _gauge(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") and 'run="demo"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_a_damaged_checkpoint_warns_early_and_the_exact_pass_confirms(
    tmp_path: Path, synthetic: SyntheticSet, serve: type[Serve], monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = tmp_path / "hold-exact"
    monkeypatch.setenv(failpoints.ENV, failpoints.HOLD_EXACT)
    monkeypatch.setenv(failpoints.FILE_ENV, str(gate))
    run_dir = tmp_path / "run"
    write_checkpoint(run_dir, 1, synthetic, noise=0.6)
    write_checkpoint(run_dir, 2, synthetic, noise=0.6)  # undamaged: another save, same quality
    doc = config_doc(tmp_path, synthetic.path, run_dir, evaluation={"early": EARLY})
    daemon = serve(write_config(tmp_path / "rw.yaml", doc), tmp_path / "serve.log").start()
    with httpx.Client(base_url=daemon.url, timeout=10) as api:
        wait_for(
            lambda: _state(api, "checkpoint-2").get("state") == "evaluated",
            what="the first two checkpoints",
        )
        quiet = _early(api, "checkpoint-2")
        assert quiet is not None and not quiet["warned"]
        assert quiet["state"] == "passed" and quiet["exact"] <= quiet["upper_bound"] + 1e-12
        assert quiet["pool_docs"] < quiet["corpus_docs"] == 600
        assert _early(api, "checkpoint-1") is None  # no earlier exact evaluation to compare with
        assert _gauge(api.get("/metrics").text, "recallwatch_early_warning") == 0.0

        gate.write_text("")  # the exact pass waits from here
        write_checkpoint(run_dir, 3, synthetic, noise=1.5)  # damaged
        warned = wait_for(
            lambda: (v := _early(api, "checkpoint-3")) is not None and v, what="the early pass"
        )
        # Raised while the exact evaluation has not run: the checkpoint has no evaluation yet.
        held = _state(api, "checkpoint-3")
        assert held["state"] == "evaluating" and held["evaluations"] == []
        assert warned["warned"] and warned["state"] == "warning"
        assert warned["p_value"] <= warned["alpha"]
        assert warned["upper_bound"] <= warned["baseline"] - warned["min_drop"]
        assert warned["text"] == (
            f"early: recall@10 <= {warned['upper_bound']:.2f} against "
            f"{warned['baseline']:.2f} exact before; confirming…"
        )
        metrics = api.get("/metrics").text
        assert _gauge(metrics, "recallwatch_early_warning") == 1.0
        assert _gauge(metrics, "recallwatch_early_recall_upper_bound") == pytest.approx(
            warned["upper_bound"]
        )
        page = api.get("/runs/demo/checkpoints/checkpoint-3").text
        assert "Early verdicts" in page and "confirming…" in page

        gate.unlink()
        done = wait_for(
            lambda: (v := _early(api, "checkpoint-3")) and v["exact"] is not None and v,
            what="the exact pass",
        )
        assert done["state"] == "confirmed" and done["exact_regressed"]
        # The bound: the exact recall is at most the pooled one.
        assert done["exact"] <= done["upper_bound"] + 1e-12
        exact = _state(api, "checkpoint-3")["evaluations"][0]["metrics"]["recall"]["10"]
        assert exact == pytest.approx(done["exact"])
        assert _gauge(api.get("/metrics").text, "recallwatch_early_warning") == 1.0
    logged = [r["message"] for r in daemon.records()]
    assert warned["text"] in logged
    assert done["text"] in logged
    assert done["text"].endswith(f"exact recall@10 {done['exact']:.2f}: confirmed")


@pytest.mark.parametrize("stored_rankings", [20, 2, 0])
def test_the_pool_takes_its_candidates_from_the_previous_stored_rankings(
    tmp_path: Path, synthetic: SyntheticSet, store: Store, stored_rankings: int
) -> None:
    jobs: list[Job] = []

    def runner(job: Job, timeout: float, cancel: threading.Event) -> Result:
        jobs.append(job)
        return run_in_process(job, timeout, cancel)

    early = {**EARLY, "candidates_per_query": 3}
    evaluation = {"stored_rankings": stored_rankings, "early": early}
    config = make_config(tmp_path, synthetic, evaluation=evaluation)
    d = daemon(config, store, runner=runner)
    write_checkpoint(tmp_path / "run", 1, synthetic, noise=0.6)
    poll_until_idle(d)
    write_checkpoint(tmp_path / "run", 2, synthetic, noise=0.6)
    poll_until_idle(d)

    rows = {c.name: c for c in store.queue.checkpoints("demo")}
    [before] = store.results.current_evaluations(rows["checkpoint-1"].id)
    stored = store.results.rankings(before.id)
    assert store.results.rankings_depth(before.id) == stored_rankings
    [pooled] = [j for j in jobs if j.pool is not None]
    assert pooled.checkpoint.endswith("checkpoint-2")
    # The stored ranks the candidates come from (rank order, at most candidates_per_query), and
    # no rankings kept for the pooled pass itself.
    assert pooled.pool == {
        "size": pool_size(config.evaluation.early, 600),
        "seed": 0,
        "per_query": 3,
        "rankings": {q: ids[:3] for q, ids in stored.items()},
    }
    assert pooled.stored_rankings == 0
    assert all(j.stored_rankings == stored_rankings for j in jobs if j.pool is None)
    # Stored shallower or not at all, the pool still runs: judged documents and the random fill.
    verdict = store.early.get(rows["checkpoint-2"].id, "synth", before.config_hash)
    assert verdict is not None and verdict.exact is not None
    assert verdict.pool_docs == pool_size(config.evaluation.early, 600)


def test_a_failed_early_pass_is_counted_and_the_exact_pass_still_runs(
    tmp_path: Path, synthetic: SyntheticSet, store: Store
) -> None:
    def runner(job: Job, timeout: float, cancel: threading.Event) -> Result:
        if job.pool is not None:
            raise RuntimeError("the pooled pass broke")
        return run_in_process(job, timeout, cancel)

    config = make_config(tmp_path, synthetic, evaluation={"early": EARLY})
    d = daemon(config, store, runner=runner)
    for step in (1, 2):
        write_checkpoint(tmp_path / "run", step, synthetic, noise=0.6)
        poll_until_idle(d)
    assert [c.state for c in store.queue.checkpoints("demo")] == ["evaluated", "evaluated"]
    assert d.readiness()["handled"]["early_pass_failures"] == 1
