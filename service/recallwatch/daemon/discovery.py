"""Discovery: find the newly complete checkpoints of each run and queue them, once each.

``Discovery.discover`` scans one run directory (``scan_run``), records each newly complete
checkpoint with its step and mining metadata as ``discovered`` (the queue's first state), and
skips queued checkpoints whose directory vanished before their evaluation.

A checkpoint is a directory under the run directory matching the run's glob (``checkpoint-*``).
It is complete when its ready marker exists and nothing in it (files or directories, recursively)
was modified for ``settle_seconds``; until then it is half-written and never evaluated. The step
is the last number in the directory name, else ``global_step`` of ``trainer_state.json``.

Mining metadata (default ``mining.json``, looked up in the checkpoint, then in the run directory)
is JSON or YAML; its fingerprint is the SHA-256 of its canonical JSON (sorted keys, no spaces), so
key order and formatting do not count as a mining change.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from recallwatch.config import RunConfig
from recallwatch.daemon.scheduling import skip
from recallwatch.errors import InputError, RecallwatchError
from recallwatch.logs import fields
from recallwatch.store import Store

__all__ = [
    "Discovery",
    "FoundCheckpoint",
    "MiningMetadata",
    "canonical_json",
    "checkpoint_dirs",
    "checkpoint_step",
    "fingerprint",
    "newest_mtime",
    "read_mining_metadata",
    "scan_run",
]

#: The daemon's log: one logger name for its whole pipeline.
log = logging.getLogger("recallwatch.daemon")


@dataclass(frozen=True)
class FoundCheckpoint:
    """A checkpoint directory seen in one scan of a run."""

    name: str
    path: Path
    step: int | None
    complete: bool
    #: Wall-clock time of its last modification (when it became complete, once it is).
    modified_at: float


@dataclass(frozen=True)
class MiningMetadata:
    """How the negatives a checkpoint trained on were mined, and the fingerprint of that."""

    path: Path
    content: Any
    canonical: str
    fingerprint: str


def canonical_json(value: Any) -> str:
    """Serialise JSON-compatible data canonically: sorted keys, no whitespace, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(value: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``value``."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def checkpoint_step(path: Path) -> int | None:
    """The training step: the last number in the name, else ``trainer_state.json``'s global_step."""
    numbers = re.findall(r"\d+", path.name)
    if numbers:
        return int(numbers[-1])
    try:
        state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    step = state.get("global_step") if isinstance(state, dict) else None
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def newest_mtime(path: Path) -> float:
    """Latest modification time of the directory or anything under it (symlinks not followed)."""
    newest = path.stat().st_mtime
    stack = [path]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                newest = max(newest, st.st_mtime)
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
    return newest


def _examine(path: Path, ready_marker: str, settle_seconds: float, now: float) -> FoundCheckpoint:
    step = checkpoint_step(path)
    try:
        modified = newest_mtime(path)
    except FileNotFoundError:  # being rotated away while we look
        return FoundCheckpoint(path.name, path, step, False, now)
    except OSError as exc:  # e.g. a subdirectory the trainer made unreadable to us
        log.warning(
            "cannot read checkpoint %s (%s); it stays pending until it is readable",
            path,
            exc.strerror or exc,
        )
        return FoundCheckpoint(path.name, path, step, False, now)
    # A modification time in the future (clock skew on shared storage) counts as "just now".
    complete = (path / ready_marker).exists() and min(modified, now) <= now - settle_seconds
    return FoundCheckpoint(path.name, path, step, complete, modified)


def checkpoint_dirs(directory: Path, glob: str) -> list[Path]:
    """The checkpoint directories of a run (hidden ones, e.g. a trainer's temp dirs, excluded)."""
    if not directory.is_dir():
        return []
    return [p for p in directory.glob(glob) if p.is_dir() and not p.name.startswith(".")]


#: A run directory's listing is reused while its modification time stays what it was, for at
#: most this many seconds (a file system whose directory times lag, e.g. NFS attribute caching,
#: is listed again at least this often).
LISTING_MAX_AGE = 60.0
#: A listing is reused only if it was taken this long after the directory's last modification:
#: an entry added in the same clock tick as the listing would not move the time.
LISTING_SETTLED = 2.0


@dataclass
class _Listing:
    stamp: tuple[int, int, int, int]
    listed_at: float
    dirs: list[Path]


class RunListings:
    """``checkpoint_dirs`` of each run directory, listed again only when the directory changed.

    Creating, removing or renaming an entry moves a directory's modification and change times
    (the change time also moves when a copy tool puts the modification time back, and cannot be
    set), so a run whose directory kept both since a listing taken well after them
    (``settled`` seconds) has the same checkpoint directories: a poll then costs one ``stat`` per
    run, not one per checkpoint. Listed again at least every ``max_age`` seconds regardless.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        settled: float = LISTING_SETTLED,
        max_age: float = LISTING_MAX_AGE,
    ) -> None:
        self._clock = clock
        self._settled = settled
        self._max_age = max_age
        self._listings: dict[tuple[Path, str], _Listing] = {}

    def dirs(self, directory: Path, glob: str) -> list[Path]:
        """The checkpoint directories of ``directory`` (``checkpoint_dirs``)."""
        key = (directory, glob)
        try:
            st = directory.stat()
        except OSError:
            self._listings.pop(key, None)
            return []
        stamp = (st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)
        now = self._clock()
        cached = self._listings.get(key)
        if cached is not None and cached.stamp == stamp and now - cached.listed_at < self._max_age:
            return cached.dirs
        dirs = checkpoint_dirs(directory, glob)
        if time.time() - max(st.st_mtime, st.st_ctime) >= self._settled:
            self._listings[key] = _Listing(stamp, now, dirs)
        else:
            self._listings.pop(key, None)
        return dirs


def scan_run(
    directory: Path,
    glob: str,
    ready_marker: str,
    settle_seconds: float,
    *,
    now: float,
    skip: Collection[str] = (),
    dirs: list[Path] | None = None,
) -> list[FoundCheckpoint]:
    """The checkpoints of a run not named in ``skip``, complete or not, by step then name.

    ``dirs``: the run's checkpoint directories when the caller listed them already.
    """
    listed = checkpoint_dirs(directory, glob) if dirs is None else dirs
    found = [_examine(p, ready_marker, settle_seconds, now) for p in listed if p.name not in skip]
    return sorted(found, key=lambda c: (c.step is None, c.step or 0, c.name))


def _parse(path: Path, text: str) -> Any:
    if path.suffix == ".json":
        return json.loads(text)
    return yaml.safe_load(text)  # YAML is a superset of JSON


def read_mining_metadata(checkpoint: Path, run_dir: Path, filename: str) -> MiningMetadata | None:
    """Read a checkpoint's mining metadata (checkpoint first, then run directory), if any."""
    for candidate in (checkpoint / filename, run_dir / filename):
        try:
            text = candidate.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read mining metadata: {exc}", path=candidate) from exc
        try:
            content = _parse(candidate, text)
        except (ValueError, yaml.YAMLError) as exc:
            raise InputError(
                f"mining metadata is not valid JSON or YAML: {exc}", path=candidate
            ) from exc
        try:
            canonical = canonical_json(content)
        except (TypeError, ValueError) as exc:  # YAML dates and the like
            raise InputError(
                f"mining metadata must be plain JSON data: {exc}", path=candidate
            ) from exc
        digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        return MiningMetadata(candidate, content, canonical, digest)
    return None


class Discovery:
    """Record the newly complete checkpoints of runs in the store's queue."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock
        #: (run, checkpoint) that could not be recorded: warned about once, retried each poll.
        self._unrecordable: set[tuple[str, str]] = set()
        #: Per run id: the highest checkpoint id seen and every name recorded (read once, then
        #: only what was added since: a poll's store reads follow what changed).
        self._known: dict[int, tuple[int, set[str]]] = {}
        #: Per run id: the run's version (``ReadViews.checkpoint_states``) when its names were read.
        self._known_version: dict[int, tuple[int, int]] = {}
        self.listings = RunListings()

    def known_names(self, run_id: int, version: tuple[int, int] | None = None) -> set[str]:
        """Names of every checkpoint recorded for a run, reading only those added since.

        ``version``: the run's version in ``ReadViews.checkpoint_states``; while it is the one
        seen at the last read, nothing was added and the store is not asked.
        """
        if version is not None and self._known_version.get(run_id) == version:
            return self._known[run_id][1]
        last, names = self._known.get(run_id, (0, set()))
        for cid, name in self.store.queue.checkpoint_names_after(run_id, last):
            names.add(name)
            last = max(last, cid)
        self._known[run_id] = (last, names)
        if version is not None:
            self._known_version[run_id] = version
        return names

    def discover(
        self,
        run: RunConfig,
        run_id: int,
        eval_key: str,
        states: tuple[tuple[int, int], dict[str, int]] | None = None,
    ) -> list[str]:
        """Record the run's newly complete checkpoints; return one message per one that failed.

        Queued checkpoints whose directory is gone are ``skipped`` (reason ``deleted``).
        ``states``: the run's entry of ``ReadViews.checkpoint_states`` read at the start of the
        poll (None: ask the store); with it, an unchanged run with nothing queued costs no query.
        """
        errors: list[str] = []
        now = self.clock()
        known = self.known_names(run_id, None if states is None else states[0])
        dirs = self.listings.dirs(run.directory, run.checkpoint_glob)
        # Known checkpoints are not walked again: a poll stays cheap however long the run.
        found = scan_run(
            run.directory,
            run.checkpoint_glob,
            run.ready_marker,
            run.settle_seconds,
            now=now,
            skip=known,
            dirs=dirs,
        )
        for ckpt in found:
            if not ckpt.complete:
                continue
            try:
                self.record(run, run_id, eval_key, ckpt, now)
            except Exception as exc:  # one bad checkpoint must not hide the ones after it
                errors.append(f"run {run.name}: {ckpt.name!r}: {type(exc).__name__}: {exc}")
                if (run.name, ckpt.name) not in self._unrecordable:
                    self._unrecordable.add((run.name, ckpt.name))
                    log.warning(
                        "cannot record checkpoint %r (%s: %s); it is retried at every poll",
                        ckpt.name,
                        type(exc).__name__,
                        exc,
                        extra=fields(run=run.name),
                    )
        if states is not None and not states[1].get("discovered", 0) and not found:
            return errors  # nothing queued that could have been deleted
        present = {p.name for p in dirs}
        for row in self.store.queue.checkpoints(run.name, states=["discovered"]):
            if row.audit_only:
                continue  # evaluated already: its audit needs the mined set, not the directory
            if row.name not in present and not Path(row.path).exists():
                skip(
                    self.store,
                    row,
                    "deleted",
                    "the checkpoint was deleted before its evaluation",
                    self.clock(),
                )
        return errors

    def record(
        self, run: RunConfig, run_id: int, eval_key: str, ckpt: FoundCheckpoint, now: float
    ) -> None:
        """Read one complete checkpoint's mining metadata and queue it (``discovered``)."""
        mining, mining_error = None, None
        try:
            mining = read_mining_metadata(ckpt.path, run.directory, run.mining_metadata)
        except RecallwatchError as exc:
            mining_error = str(exc)
            log.warning(
                "unreadable mining metadata: %s",
                exc,
                extra=fields(run=run.name, checkpoint=ckpt.name),
            )
        added = self.store.queue.add_checkpoint(
            run_id,
            name=ckpt.name,
            path=str(ckpt.path),
            step=ckpt.step,
            eval_key=eval_key,
            completed_at=ckpt.modified_at,
            now=now,
            mining_fingerprint=mining.fingerprint if mining else None,
            mining_content=mining.canonical if mining else None,
            mining_path=str(mining.path) if mining else None,
            mining_error=mining_error,
        )
        if added is not None:
            log.info(
                "discovered a complete checkpoint",
                extra=fields(
                    run=run.name,
                    checkpoint=ckpt.name,
                    step=ckpt.step,
                    mining_fingerprint=(mining.fingerprint[:12] if mining else None),
                ),
            )
