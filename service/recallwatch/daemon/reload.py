"""SIGHUP: the configuration file read again, validated, and what can change live applied.

``serve`` calls ``reload_config`` on SIGHUP. The file is validated as at start-up
(``check-config``'s checks); an invalid one is rejected with its errors and the daemon keeps the
configuration it runs with. A valid one's live sections (``LIVE_SECTIONS``) take effect at once:

- ``runs``: a run added is registered and polled, a run removed is no longer polled (its history
  stays in the store);
- ``notifications``: channels (added, removed, changed URL, secret or timeout), rules and their
  thresholds and parameters, routing (a rule's ``channels`` and ``runs``), the repeat interval
  and the backfill age. Decisions switch atomically: each one sees the old configuration or the
  new one, never a mix (``Alerting.reconfigure``); pending messages of a removed channel are
  failed, as at a start. A daemon started without any rule has no alerting side: adding the
  first rules needs a restart;
- ``poll_interval_seconds``: the discovery job is rescheduled.

A change to any other section (``store``, ``http``, ``heldout``, ``evaluation``,
``false_negatives``) is logged as needing a restart and not applied; ``Daemon.restart_required``
names those sections until a reload brings them back to the running values or the daemon is
restarted (``/readyz``'s ``config`` and ``recallwatch_config_restart_required``).
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

__all__ = ["LIVE_SECTIONS", "RELOAD_RESULTS", "Reload", "applicable", "reload_config"]

log = logging.getLogger("recallwatch.daemon")

#: The ``result`` label of ``recallwatch_config_reloads_total``.
RELOAD_RESULTS: tuple[Literal["success", "failure"], ...] = ("success", "failure")


#: The sections a reload applies without a restart.
LIVE_SECTIONS = ("runs", "notifications", "poll_interval_seconds")


@dataclass(frozen=True)
class Reload:
    """What a reload did: the runs added and removed, the sections applied and those that need a
    restart."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    applied: tuple[str, ...]
    restart_needed: tuple[str, ...]


def applicable(
    running: Config, new: Config, *, alerting: bool = True
) -> tuple[Config, tuple[str, ...], tuple[str, ...]]:
    """The running config with ``new``'s live sections; the live sections that changed, and the
    other sections ``new`` changes (a restart applies them).

    ``alerting``: whether the daemon runs an alerting side; without one, new rules need a
    restart (a change that adds none, such as a channel alone, is applied).
    """
    live = set(LIVE_SECTIONS)
    if not alerting and new.notifications.rules:
        live.discard("notifications")
    changed = [name for name in Config.model_fields if getattr(running, name) != getattr(new, name)]
    update = {name: getattr(new, name) for name in changed if name in live}
    restart = tuple(name for name in changed if name not in live)
    return running.model_copy(update=update), tuple(update), restart


def reload_config(
    daemon: Daemon, path: Path, *, on_applied: Callable[[Config], None] | None = None
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
    merged, applied, restart = applicable(daemon.config, new, alerting=daemon.notifier is not None)
    before = {r.name for r in daemon.config.runs}
    after = {r.name for r in merged.runs}
    try:
        daemon.reload(merged)
    except Exception as exc:  # built before anything is swapped: the old config still runs
        log.exception(
            "configuration reload rejected; still running the previous configuration: %s",
            exc,
            extra=fields(config=str(path)),
        )
        return None
    daemon.restart_required = restart
    if on_applied is not None:
        on_applied(merged)
    done = Reload(tuple(sorted(after - before)), tuple(sorted(before - after)), applied, restart)
    log.info(
        "configuration reloaded",
        extra=fields(
            config=str(path),
            runs=",".join(r.name for r in merged.runs),
            added=",".join(done.added),
            removed=",".join(done.removed),
            applied=",".join(applied),
            restart_required=",".join(restart),
        ),
    )
    if restart:
        log.warning(
            "configuration sections changed that take effect only at the next start: %s "
            "(recallwatch_config_restart_required is 1 until then)",
            ", ".join(restart),
        )
    return done
