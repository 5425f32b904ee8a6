"""``recallwatch serve``: the daemon — watch runs, evaluate new checkpoints, export, serve HTTP.

Start-up order: validate the config (a bad one is refused with the messages of ``check-config``),
check the store (``PRAGMA quick_check``: a damaged store is refused with the restore command; a
missing or emptied one beside an earlier store's traces needs ``--fresh-store``), open the store
(a clear error if it cannot be written), bind the HTTP socket (a clear error if the
address is taken), then start discovery and serving. SIGTERM or SIGINT stops polling, lets a
running evaluation finish within ``evaluation.shutdown_grace_seconds`` (else re-queues it for the
next start), stops HTTP and closes the store; a second signal stops the evaluation at once. SIGHUP
reads the configuration file again: an invalid one is rejected with its errors (the daemon keeps
running the old one); a valid one's runs, notifications and poll interval take effect at once, the
other sections at the next start (``daemon.reload``). The main thread sleeps until a signal
arrives (no timed wake-ups).

``--demo`` serves a generated example instead of a config file: ``recallwatch serve --demo``.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import signal
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from recallwatch import __version__
from recallwatch.commands.check_config import checked_config
from recallwatch.config import split_listen
from recallwatch.errors import ConfigError
from recallwatch.logs import configure, fields

if TYPE_CHECKING:
    from collections.abc import Callable

    from recallwatch.daemon import Daemon
    from recallwatch.mining.review import ReviewPlan
    from recallwatch.web.review_sets import ReviewSets

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
        "--fresh-store",
        action="store_true",
        help="start a new store where an earlier one is missing, emptied or damaged (it is set "
        "aside; every checkpoint is evaluated again); without it, serve refuses and says why",
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
        "--demo-duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="with --demo: stop by itself after this long (default: run until Ctrl-C)",
    )
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
    from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector

    from recallwatch.commands.store import startup_check
    from recallwatch.daemon import Daemon
    from recallwatch.daemon.notifier import Notifier
    from recallwatch.daemon.reload import RELOAD_RESULTS, reload_config
    from recallwatch.metrics.collector import RecallwatchCollector
    from recallwatch.server import HttpServer, create_app
    from recallwatch.store import Store
    from recallwatch.web import WebSettings
    from recallwatch.web.review import enable_review
    from recallwatch.web.review_mirror import Reconciled
    from recallwatch.web.review_sets import daemon_review

    configure(args.log_format, getattr(args, "log_level", "INFO"))
    trainer = receiver = None
    if args.demo is not None:
        from recallwatch.demo import DemoReceiver, DemoTrainer, demo_notifications

        trainer = DemoTrainer(Path(args.demo or tempfile.mkdtemp(prefix="recallwatch-demo-")))
        receiver = DemoReceiver()
        receiver.start()
        args.config = trainer.write_example(demo_notifications())
        log.info(
            "demo: example written; alerts go to a local webhook receiver",
            extra=fields(workdir=str(trainer.workdir), receiver=receiver.url),
        )
    config, warnings = checked_config(args.config)
    for where, msg in warnings:
        log.warning("%s: %s", where, msg)
    host, port = config.http.host, config.http.port
    if args.listen:
        try:
            host, port = split_listen(args.listen)
        except ValueError as exc:
            raise ConfigError([("--listen", str(exc))], source="the command line") from None

    startup_check(config.store.path, args)
    store = Store.open(config.store.path)
    try:
        notifier = Notifier(config, store) if config.notifications.rules else None
        found: list[Reconciled] = []
        review = daemon_review(store, config, on_reconciled=found.append)
        daemon = Daemon(config, store, notifier=notifier, review_plans=_plans_of(review))
        for restored in found:
            daemon.handled["review_labels_restored"] = sum(restored.restored.values())
            daemon.handled["review_undos_restored"] = sum(restored.undone.values())
        _feed_labels(review, daemon)
        registry = CollectorRegistry()
        collector = RecallwatchCollector(
            store,
            version=__version__,
            runs=[r.name for r in config.runs],
            channels=[c.name for c in config.notifications.channels],
            busy=daemon.in_flight,
            audited=config.false_negatives is not None,
        )
        registry.register(collector)
        ProcessCollector(registry=registry)
        reloads = Counter(
            "recallwatch_config_reloads",
            "Configuration reloads (SIGHUP), by result: success, or failure (invalid file: the "
            "daemon kept its configuration).",
            ["result"],
            registry=registry,
        )
        for result in RELOAD_RESULTS:
            reloads.labels(result)
        reload_ok = Gauge(
            "recallwatch_config_last_reload_successful",
            "1 when the last configuration reload (or the start) succeeded, 0 when rejected.",
            registry=registry,
        )
        reload_ok.set(1)
        app = create_app(
            store,
            registry,
            readiness=daemon.readiness,
            version=__version__,
            web=WebSettings.from_config(config),
        )
        enable_review(app, review)
        http = HttpServer(app, host, port)
        signals = _Signals(daemon)
        daemon.start(retry_failed=args.retry_failed)
        http.start()
        if trainer is not None:
            trainer.start(args.demo_interval)
            if getattr(args, "demo_duration", None):
                timer = threading.Timer(args.demo_duration, signals.request_stop)
                timer.daemon = True
                timer.start()
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
        while signals.wait() == signal.SIGHUP:
            log.info("SIGHUP: reloading the configuration", extra=fields(config=str(args.config)))
            done = reload_config(
                daemon,
                args.config,
                on_applied=lambda c: collector.follow(
                    [r.name for r in c.runs], [ch.name for ch in c.notifications.channels]
                ),
            )
            reloads.labels(RELOAD_RESULTS[done is None]).inc()
            reload_ok.set(done is not None)
        if trainer is not None:
            trainer.stop()
        log.info("shutting down")
        daemon.stop()
        http.stop()
    finally:
        store.close()
        if receiver is not None:
            receiver.stop()
    log.info("stopped")
    return 0


def _plans_of(sets: ReviewSets) -> Callable[[str], ReviewPlan | None]:
    """The review pages' plans by set key: the daemon's estimates draw the page's sample."""

    def plan(key: str) -> ReviewPlan | None:
        rs = sets.get(key)
        return None if rs is None else sets.plan(rs)

    return plan


def _feed_labels(sets: ReviewSets, daemon: Daemon) -> None:
    """After each label change: the mirror file as before, then the daemon's re-estimate."""
    mirror = sets.settings.on_change

    def changed(key: str) -> None:
        if mirror is not None:
            mirror(key)
        daemon.review_changed(key)

    sets.settings.on_change = changed


class _Signals:
    """SIGTERM/SIGINT: the first asks for a graceful stop, a second stops evaluations at once;
    SIGHUP asks for a reload. The main thread blocks in ``wait`` until one arrives."""

    def __init__(self, daemon: Daemon) -> None:
        # SimpleQueue.put is reentrant: safe in a signal handler that interrupts a get().
        self._queue: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._stopping = False
        self._daemon = daemon
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            if not self._stopping:
                self._queue.put(signum)
            return
        if self._stopping:
            self._daemon.force_stop()
            return
        self._stopping = True
        self._queue.put(signum)

    def request_stop(self) -> None:
        """Ask for a graceful stop, as a first SIGTERM would."""
        self._stopping = True
        self._queue.put(signal.SIGTERM)

    def wait(self) -> int:
        """Block until a signal arrives (no timed wake-ups); return it."""
        return self._queue.get()
