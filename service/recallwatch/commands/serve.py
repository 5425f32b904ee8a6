"""``recallwatch serve``: the daemon — watch runs, evaluate new checkpoints, export, serve HTTP.

Start-up order: validate the config (a bad one is refused with the messages of ``check-config``),
open the store (a clear error if it cannot be written), bind the HTTP socket (a clear error if the
address is taken), then start discovery and serving. SIGTERM or SIGINT stops polling, lets a
running evaluation finish within ``evaluation.shutdown_grace_seconds`` (else re-queues it for the
next start), stops HTTP and closes the store; a second signal stops the evaluation at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
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

    from recallwatch.daemon import Daemon
    from recallwatch.exporter import RecallwatchCollector
    from recallwatch.server import HttpServer, create_app
    from recallwatch.store import Store

    configure(args.log_format, getattr(args, "log_level", "INFO"))
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
        daemon = Daemon(config, store)
        registry = CollectorRegistry()
        registry.register(
            RecallwatchCollector(store, version=__version__, runs=[r.name for r in config.runs])
        )
        ProcessCollector(registry=registry)
        app = create_app(store, registry, readiness=daemon.readiness, version=__version__)
        http = HttpServer(app, host, port)
        stop = _StopSignals(daemon)
        daemon.start()
        http.start()
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
        log.info("shutting down: polling stopped, waiting for a running evaluation")
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
