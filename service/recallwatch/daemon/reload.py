"""SIGHUP: the configuration file read again, validated, and its runs applied without a restart.

``serve`` calls ``reload_config`` on SIGHUP. The file is validated as at start-up
(``check-config``'s checks); an invalid one is rejected with its errors and the daemon keeps the
configuration it runs with. A valid one's ``runs`` take effect at once (a run added is registered
and polled, a run removed is no longer polled; its history stays in the store); a change to any
other section is logged as needing a restart and is not applied, so one reload never leaves the
daemon half on each configuration.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from recallwatch.config import Config, load_config
from recallwatch.daemon.preflight import preflight
from recallwatch.errors import ConfigError, RecallwatchError
from recallwatch.logs import fields

if TYPE_CHECKING:
    from recallwatch.daemon.daemon import Daemon

__all__ = ["RELOAD_RESULTS", "Reload", "applicable", "reload_config"]

log = logging.getLogger("recallwatch.daemon")

#: The ``result`` label of ``recallwatch_config_reloads_total``.
RELOAD_RESULTS: tuple[Literal["success", "failure"], ...] = ("success", "failure")


@dataclass(frozen=True)
class Reload:
    """What a reload did: the runs added and removed, the sections that need a restart."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    restart_needed: tuple[str, ...]


def applicable(running: Config, new: Config) -> tuple[Config, tuple[str, ...]]:
    """The running config with ``new``'s runs, and the other sections ``new`` changes."""
    changed = tuple(
        name
        for name in Config.model_fields
        if name != "runs" and getattr(running, name) != getattr(new, name)
    )
    return running.model_copy(update={"runs": new.runs}), changed


def reload_config(
    daemon: Daemon, path: Path, *, on_runs: Callable[[list[str]], None] | None = None
) -> Reload | None:
    """Read, validate and apply ``path``; None (logged, old config kept) when it is invalid."""
    try:
        new = load_config(path)
        errors, warnings = preflight(new)  # the checks of check-config and of the start
        if errors:
            raise ConfigError(errors, source=str(path))
    except (RecallwatchError, OSError) as exc:
        log.error(
            "configuration reload rejected; still running the previous configuration:\n%s",
            exc,
            extra=fields(config=str(path)),
        )
        return None
    for where, msg in warnings:
        log.warning("%s: %s", where, msg)
    merged, changed = applicable(daemon.config, new)
    before = {r.name for r in daemon.config.runs}
    after = {r.name for r in merged.runs}
    daemon.reload(merged)
    if on_runs is not None:
        on_runs([r.name for r in merged.runs])
    done = Reload(tuple(sorted(after - before)), tuple(sorted(before - after)), changed)
    log.info(
        "configuration reloaded",
        extra=fields(
            config=str(path),
            runs=",".join(r.name for r in merged.runs),
            added=",".join(done.added),
            removed=",".join(done.removed),
        ),
    )
    if changed:
        log.warning(
            "configuration sections changed that take effect only at the next start: %s",
            ", ".join(changed),
        )
    return done
