"""A slow scrape holds up neither the pages, the API nor the daemon's writes (WAL readers)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric

from recallwatch.metrics.collector import RecallwatchCollector
from recallwatch.server import HttpServer, create_app
from recallwatch.store import Store
from tests.helpers.processes import wait_for
from tests.helpers.seed import add, finished, record_evaluated


class HeldRead:
    """A collector whose scrape reads the store and holds its read open until released."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.reading = threading.Event()
        self.release = threading.Event()

    def collect(self) -> Iterator[Metric]:
        """Count the evaluations inside a read held open until ``release`` is set."""
        with self.store.db.reading() as conn:
            n = conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
            self.reading.set()
            assert self.release.wait(timeout=120), "the test never released the scrape"
        family = GaugeMetricFamily("held_read_evaluations", "Evaluations seen by the held read.")
        family.add_metric([], float(n))
        yield family


def test_a_page_and_a_write_complete_while_a_scrape_holds_its_read(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "rw.db")
    run = store.queue.ensure_run("demo", "/runs/demo", 1.0)
    for step in range(1, 4):
        cid = add(store, run, step, directory="/runs/demo")
        record_evaluated(store, run, finished(cid), at=10.0 + step)
    registry = CollectorRegistry()
    registry.register(RecallwatchCollector(store, version="1"))
    held = HeldRead(store)
    registry.register(held)
    ready: dict[str, Any] = {"ready": True, "checks": {"scheduler": True}}
    server = HttpServer(
        create_app(store, registry, readiness=lambda: ready, version="1"), "127.0.0.1", 0
    )
    server.start()
    scrape: dict[str, httpx.Response] = {}
    scraper = threading.Thread(
        target=lambda: scrape.setdefault("r", httpx.get(f"{server.url}/metrics", timeout=120))
    )
    try:
        wait_for(lambda: _answers(server.url), what="the server to answer")
        scraper.start()
        assert held.reading.wait(timeout=60), "the scrape never reached its read"
        # The scrape is inside its read: the pages, the API and a write go on meanwhile.
        page = httpx.get(f"{server.url}/runs/demo", timeout=60)
        api = httpx.get(f"{server.url}/api/v1/runs", timeout=60)
        cid = add(store, run, 4, directory="/runs/demo")
        record_evaluated(store, run, finished(cid), at=14.0)
        after = httpx.get(f"{server.url}/api/v1/runs/demo/checkpoints", timeout=60)
        assert page.status_code == 200 and "checkpoint-3" in page.text
        assert api.status_code == 200 and api.json()
        assert after.status_code == 200 and "checkpoint-4" in after.text
        assert scraper.is_alive() and "r" not in scrape  # the scrape still holds its read
    finally:
        held.release.set()
        scraper.join(timeout=120)
        server.stop()
        store.close()
    # Its read is one snapshot, from before the write.
    assert scrape["r"].status_code == 200
    assert "held_read_evaluations 3.0" in scrape["r"].text


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False
