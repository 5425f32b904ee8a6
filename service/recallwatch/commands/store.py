"""``recallwatch store``: check, back up, restore and compact the SQLite store.

    recallwatch store check --config recallwatch.yaml
    recallwatch store backup /backups/ --config recallwatch.yaml
    recallwatch store restore /backups/recallwatch-backup-20260101T000000Z.db --config rw.yaml
    recallwatch store compact --keep-days 90 --keep-checkpoints 200 --config rw.yaml [--yes]

``check`` runs SQLite's integrity check, read-only; ``backup`` uses SQLite's online backup API: both
can run while the daemon is serving. ``backup DEST`` writes DEST, or into DEST when it is a folder
(named ``<store>-backup-<UTC time>.db``), and checks the copy. ``restore SRC`` checks SRC, refuses
while a daemon holds the store, and replaces the store atomically; the replaced store is kept beside
it (``<store>-before-restore-<UTC time>.db``). Exit status 0 when done, 2 when the store or the
backup is damaged or the command is refused. Only ``store.path`` of the config is read.

``compact`` drops the per-query outcomes of evaluations older than ``--keep-days`` that are outside
each run's newest ``--keep-checkpoints`` evaluated checkpoints, keeping those an alert or a
regression verdict names and those of each run's current and previous mining segment; means,
verdicts, estimates and alerts are kept forever. Without ``--yes`` it only says what it would drop
(safe while serving); with ``--yes`` it refuses while a daemon holds the store, drops them and
rebuilds the file (VACUUM), and prints the store's bytes before and after (docs/runbook.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

from recallwatch.errors import ConfigError
from recallwatch.logs import fields

__all__ = ["add_parser", "restore_command", "run", "startup_check", "store_path"]

log = logging.getLogger("recallwatch.serve")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``store`` subcommand and its actions."""
    p = sub.add_parser(
        "store",
        help="check, back up or restore the SQLite store (check and backup run while serving)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="run SQLite's integrity check on the store")
    backup = actions.add_parser("backup", help="copy the store (online backup API) to DEST")
    backup.add_argument("dest", type=Path, metavar="DEST", help="a file, or a folder to write into")
    restore = actions.add_parser("restore", help="replace the store by a checked backup")
    restore.add_argument("src", type=Path, metavar="SRC", help="a backup written by `store backup`")
    compact = actions.add_parser(
        "compact",
        help="drop old per-query detail and rebuild the file (dry run without --yes)",
        description=(
            "Drop the per-query outcomes of evaluations finished more than --keep-days ago and "
            "outside each run's newest --keep-checkpoints evaluated checkpoints. Kept whatever "
            "their age: outcomes of checkpoints an alert names (its checkpoint or baseline), of "
            "regression verdicts' baselines, of each run's current and previous mining segment; "
            "every checkpoint's means, counts, timings, verdicts, false-negative estimates and "
            "alerts. Without --yes: print what would be dropped (read-only, safe while serving). "
            "With --yes: refused while a daemon holds the store (stop it first); drops them, "
            "rebuilds the file (VACUUM) and prints the bytes before and after."
        ),
    )
    compact.add_argument(
        "--keep-days",
        type=float,
        default=90.0,
        metavar="DAYS",
        help="keep the per-query outcomes of evaluations newer than this (default 90)",
    )
    compact.add_argument(
        "--keep-checkpoints",
        type=int,
        default=200,
        metavar="N",
        help="keep those of each run's newest N evaluated checkpoints, whatever their age "
        "(default 200)",
    )
    compact.add_argument(
        "--yes", action="store_true", help="do it (default: only print what would be dropped)"
    )
    compact.add_argument(
        "--no-vacuum",
        dest="vacuum",
        action="store_false",
        help="drop the outcomes but do not rebuild the file (the space is reused, not returned)",
    )
    for action in (check, backup, restore, compact):
        source = action.add_mutually_exclusive_group()
        source.add_argument(
            "--config",
            type=Path,
            help="recallwatch.yaml, for its store.path (default: $RECALLWATCH_CONFIG or "
            "./recallwatch.yaml)",
        )
        source.add_argument("--store", type=Path, help="the SQLite store file itself")
        action.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the action; print what was done or found."""
    from recallwatch.store import maintenance

    path = args.store or store_path(
        args.config or Path(os.environ.get("RECALLWATCH_CONFIG", "recallwatch.yaml"))
    )
    try:
        return _act(args, path)
    except OSError as exc:
        raise maintenance.StoreError(
            f"store {args.action}: cannot use {exc.filename or path}: {exc.strerror or exc}"
        ) from exc


def _act(args: argparse.Namespace, path: Path) -> int:
    """Run one action on the store at ``path``."""
    from recallwatch.store import maintenance

    if args.action == "check":
        found = maintenance.check(path)
        if not found.ok:
            print(f"{path}: damaged")
            for problem in found.problems:
                print(f"  {problem}")
            print(f"Stop the daemon and restore a backup: {restore_command(path, args)}")
            return 2
        print(f"{path}: ok ({found.describe()})")
        return 0
    if args.action == "backup":
        done = maintenance.backup(path, args.dest)
        print(f"backed up {path} to {done.dest}: ok ({done.check.describe()})")
        return 0
    if args.action == "compact":
        return _compact(args, path)
    restored = maintenance.restore(args.src, path)
    print(f"restored {path} from {args.src}: ok ({restored.check.describe()})")
    for kept in restored.set_aside:
        print(f"  the replaced file is kept as {kept} (delete it once the daemon runs well)")
    return 0


def _compact(args: argparse.Namespace, path: Path) -> int:
    from recallwatch.store import compaction

    if args.keep_days < 0 or args.keep_checkpoints < 0:
        raise compaction.StoreError(
            "store compact: --keep-days and --keep-checkpoints must be >= 0"
        )
    days, recent = float(args.keep_days), int(args.keep_checkpoints)
    if not args.yes:
        found = compaction.plan(path, keep_days=days, keep_checkpoints=recent, now=time.time())
        print(f"{path}: {found.describe()}")
        print("dry run: nothing changed; run again with --yes (the daemon stopped) to compact")
        return 0
    found, done = compaction.compact(
        path, keep_days=days, keep_checkpoints=recent, now=time.time(), vacuum=args.vacuum
    )
    print(f"{path}: {found.describe()}")
    per = done.bytes_after / found.evaluations if found.evaluations else 0.0
    print(
        f"compacted: per-query outcomes of {done.dropped} evaluations dropped; "
        f"{done.bytes_before:,} bytes before, {done.bytes_after:,} after "
        f"({per:,.0f} per evaluation)"
    )
    return 0


def store_path(config: Path) -> Path:
    """The store path of a config file, reading only its ``store`` section."""
    import yaml
    from pydantic import ValidationError

    from recallwatch.config import StoreConfig

    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(
            [("", f"cannot read the file: {exc.strerror or exc}")], source=str(config)
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError([("", f"not valid YAML ({exc})")], source=str(config)) from None
    section = data.get("store") if isinstance(data, dict) else None
    try:
        store = StoreConfig.model_validate(
            section or {}, context={"base_dir": config.resolve().parent}
        )
    except ValidationError as exc:
        errors = [(".".join(("store", *map(str, e["loc"]))), e["msg"]) for e in exc.errors()]
        raise ConfigError(errors, source=str(config)) from None
    return store.path


def restore_command(store: Path, args: argparse.Namespace) -> str:
    """The restore command line for this store, naming the newest backup found beside it."""
    from recallwatch.store.maintenance import find_backups

    backups = find_backups(store)
    src = str(backups[0]) if backups else "BACKUP"
    where = f"--store {store}" if getattr(args, "store", None) else f"--config {_config(args)}"
    return f"recallwatch store restore {src} {where}"


def _config(args: argparse.Namespace) -> Path:
    given = getattr(args, "config", None)
    return Path(given or os.environ.get("RECALLWATCH_CONFIG", "recallwatch.yaml")).resolve()


def startup_check(path: Path, args: argparse.Namespace) -> None:
    """Before ``serve`` opens the store: refuse a damaged one, or an empty one an earlier left."""
    from recallwatch.store import maintenance
    from recallwatch.store.maintenance import StoreDamagedError, StoreError

    fresh = bool(getattr(args, "fresh_store", False))
    flag = f"recallwatch serve --fresh-store --config {_config(args)}"
    if maintenance.is_empty(path):
        signs = maintenance.earlier_store_signs(path)
        if not signs:
            return
        state = "empty (0 bytes)" if path.exists() else "missing"
        if not fresh:
            raise StoreError(
                f"the store {path} is {state}, but an earlier store left:\n"
                + "".join(f"  - {s}\n" for s in signs)
                + "A new store would evaluate every checkpoint again and send their alerts again."
                f"\nRestore the earlier store: {restore_command(path, args)}\n"
                f"or start a new store on purpose: {flag}"
            )
        moved = maintenance.set_aside(path, "replaced", time.time())
        log.warning(
            "starting a new store on purpose (--fresh-store)",
            extra=fields(store=str(path), ignored="; ".join(signs), set_aside=_joined(moved)),
        )
        return
    if not path.is_file():
        return  # a directory or a device: opening the store says what is wrong
    started = time.monotonic()
    found = maintenance.check(path, full=False)
    if found.ok:
        log.info(
            "store checked",
            extra=fields(store=str(path), seconds=round(time.monotonic() - started, 3)),
        )
        return
    if fresh:
        moved = maintenance.set_aside(path, "damaged", time.time())
        log.warning(
            "the store is damaged; starting a new store on purpose (--fresh-store)",
            extra=fields(
                store=str(path), problems="; ".join(found.problems), set_aside=_joined(moved)
            ),
        )
        return
    raise StoreDamagedError(
        f"the store {path} is damaged; not serving on it:\n"
        + "".join(f"  {p}\n" for p in found.problems)
        + f"Restore a backup: {restore_command(path, args)}\n"
        f"or set the damaged file aside and start a new store (every checkpoint is evaluated "
        f"again): {flag}"
    )


def _joined(paths: tuple[Path, ...]) -> str:
    return ", ".join(map(str, paths)) or "nothing"
