"""``recallwatch serve``: the daemon — watch runs, evaluate new checkpoints, export, serve HTTP.

Start-up order: validate the config (a bad one is refused with the messages of ``check-config``),
open the store (a clear error if it cannot be written), bind the HTTP socket (a clear error if the
address is taken), then start discovery and serving. SIGTERM or SIGINT stops polling, lets a
running evaluation finish within ``evaluation.shutdown_grace_seconds`` (else re-queues it for the
next start), stops HTTP and closes the store; a second signal stops the evaluation at once.

``--demo`` serves a generated example instead of a config file: ``recallwatch serve --demo``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, ClassVar

from recallwatch import __version__
from recallwatch.commands.check_config import checked_config
from recallwatch.config import split_listen
from recallwatch.errors import ConfigError
from recallwatch.logs import configure, fields

if TYPE_CHECKING:
    from recallwatch.daemon import Daemon

__all__ = ["add_parser", "run"]

log = logging.getLogger("recallwatch.serve")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``serve`` subcommand."""
    p = sub.add_parser(
        "serve",
        help="run the daemon: evaluate every new checkpoint, export to Prometheus",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        type=Path,
        default=Path(os.environ.get("RECALLWATCH_CONFIG", "recallwatch.yaml")),
        help="configuration file (default: $RECALLWATCH_CONFIG or ./recallwatch.yaml)",
    )
    p.add_argument("--listen", help="HOST:PORT to serve on, overriding http.listen")
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="queue failed checkpoints again at start-up (once their cause is fixed)",
    )
    p.add_argument(
        "--demo",
        metavar="DIR",
        nargs="?",
        const="",
        help="serve a generated example in DIR (default: a temp dir): a synthetic held-out set, "
        "three checkpoints to backfill and a simulated trainer adding one every --demo-interval "
        "seconds, with a mining change half-way that costs recall; sends no notification",
    )
    p.add_argument("--demo-interval", type=float, default=20.0, help="default: 20 s")
    p.add_argument(
        "--log-format",
        choices=("human", "json"),
        default=os.environ.get("RECALLWATCH_LOG_FORMAT", "human"),
        help="human-readable lines (default) or JSON lines",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start the daemon and serve until SIGTERM or SIGINT."""
    # Deferred imports keep `recallwatch --help` fast.
    from prometheus_client import CollectorRegistry, ProcessCollector

    from recallwatch.alerting import Notifier
    from recallwatch.daemon import Daemon
    from recallwatch.exporter import RecallwatchCollector
    from recallwatch.server import HttpServer, create_app
    from recallwatch.store import Store

    configure(args.log_format, getattr(args, "log_level", "INFO"))
    trainer = None
    if args.demo is not None:
        trainer = DemoTrainer(Path(args.demo or tempfile.mkdtemp(prefix="recallwatch-demo-")))
        args.config = trainer.write_example()
        log.info("demo: example written", extra=fields(workdir=str(trainer.workdir)))
    config, warnings = checked_config(args.config)
    for where, msg in warnings:
        log.warning("%s: %s", where, msg)
    host, port = config.http.host, config.http.port
    if args.listen:
        try:
            host, port = split_listen(args.listen)
        except ValueError as exc:
            raise ConfigError([("--listen", str(exc))], source="the command line") from None

    store = Store.open(config.store.path)
    try:
        notifier = Notifier(config, store) if config.notifications.rules else None
        daemon = Daemon(config, store, notifier=notifier)
        registry = CollectorRegistry()
        registry.register(
            RecallwatchCollector(
                store,
                version=__version__,
                runs=[r.name for r in config.runs],
                channels=[c.name for c in config.notifications.channels],
            )
        )
        ProcessCollector(registry=registry)
        app = create_app(store, registry, readiness=daemon.readiness, version=__version__)
        http = HttpServer(app, host, port)
        stop = _StopSignals(daemon)
        daemon.start(retry_failed=args.retry_failed)
        http.start()
        if trainer is not None:
            trainer.start(args.demo_interval)
        log.info(
            "recallwatch %s serving",
            __version__,
            extra=fields(
                url=http.url,
                store=str(config.store.path),
                runs=",".join(r.name for r in config.runs),
                poll_interval_seconds=config.poll_interval_seconds,
            ),
        )
        stop.wait()
        if trainer is not None:
            trainer.stop()
        log.info("shutting down")
        daemon.stop()
        http.stop()
    finally:
        store.close()
    log.info("stopped")
    return 0


class _StopSignals:
    """SIGTERM/SIGINT: the first asks for a graceful stop, a second stops evaluations at once."""

    def __init__(self, daemon: Daemon) -> None:
        self._event = threading.Event()
        self._daemon = daemon
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._event.is_set():
            self._daemon.force_stop()
            return
        self._event.set()

    def wait(self) -> None:
        """Block until the first signal."""
        while not self._event.wait(1.0):
            pass


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
    NOISE = (0.95, 0.85, 0.78, 0.72, 0.68, 0.66, 0.8, 0.88, 0.92, 0.95, 0.97, 0.98)
    BACKFILL = 3

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def write_example(self) -> Path:
        """Write the held-out set, the first checkpoints and the config; return the config."""
        import yaml

        from recallwatch.synthetic import write_heldout

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
        path = self.workdir / "recallwatch.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path

    def _write_mined_sets(self) -> None:
        """v2 mines ranks 1-30 of a simulated set; v1 the same without ranks 1-10 (range_min)."""
        from recallwatch.mining.mined import write_recallwatch_jsonl
        from recallwatch.mining.simulate import simulate_mined_set

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
        from recallwatch.synthetic import write_precomputed_checkpoint

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
