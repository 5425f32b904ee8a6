"""``recallwatch check-config``: validate a ``recallwatch.yaml`` and say what it will watch."""

from __future__ import annotations

import argparse
from pathlib import Path

from recallwatch.config import Config, load_config, missing_secrets
from recallwatch.daemon.preflight import preflight
from recallwatch.errors import ConfigError
from recallwatch.mining.oracles import redact_url

__all__ = ["add_parser", "checked_config", "run"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``check-config`` subcommand."""
    p = sub.add_parser(
        "check-config",
        help="validate a configuration file",
        description="Validate recallwatch.yaml: every error is printed with its dotted field path. "
        "Secrets (tokens, channel URLs) that cannot be read here are warnings naming what "
        "`serve` needs, unless --require-secrets. Exit status 0 when valid, 2 when not.",
    )
    p.add_argument("config", type=Path, help="the configuration file (YAML or JSON)")
    p.add_argument(
        "--require-secrets",
        action="store_true",
        help="a secret that cannot be read is an error (exit 2), as it is for serve: use it in "
        "the environment the daemon runs in",
    )
    p.set_defaults(func=run)


def checked_config(path: Path, *, secrets: bool = True) -> tuple[Config, list[tuple[str, str]]]:
    """Load, validate and preflight a config: ``ConfigError`` or (config, warnings).

    ``secrets=False``: secrets are not read; those ``serve`` could not read are warnings.
    """
    config = load_config(path, secrets=secrets)
    errors, warnings = preflight(config)
    if not secrets:
        warnings += [(w, f"{m} (serve needs it)") for w, m in missing_secrets(config)]
    if errors:
        raise ConfigError(errors, source=str(path))
    return config, warnings


def run(args: argparse.Namespace) -> int:
    """Validate the file and print a summary (secrets are never printed)."""
    config, warnings = checked_config(args.config, secrets=args.require_secrets)
    for where, msg in warnings:
        print(f"warning: {where}: {msg}")
    print(f"{args.config}: valid")
    ev = config.evaluation
    print(
        f"  evaluation: encoder {ev.encoder.spec}, k {','.join(map(str, ev.ks))}, {ev.similarity}, "
        f"concurrency {ev.concurrency}, policy {ev.policy}, timeout {ev.timeout_seconds:g} s"
    )
    for h in config.heldout:
        print(f"  held-out set {h.dataset}: {h.path} (split {h.split})")
    for r in config.runs:
        enc = f", encoder {r.encoder.spec}" if r.encoder else ""
        print(
            f"  run {r.name}: {r.directory}/{r.checkpoint_glob}, ready marker {r.ready_marker}, "
            f"settle {r.settle_seconds:g} s{enc}"
        )
    print(f"  poll every {config.poll_interval_seconds:g} s; store {config.store.path}")
    print(f"  http on {config.http.listen}")
    fn = config.false_negatives
    judges = ", ".join(redact_url(o) for o in fn.oracles) if fn else ""
    print(f"  false negatives: {'judged by ' + judges if fn else 'off'}")
    n = config.notifications
    for c in n.channels:
        print(f"  channel {c.name}: {c.type}")
    for rule in n.rules:
        print(f"  rule {rule.name}: {rule.type} -> {', '.join(rule.channels)}")
    return 0
