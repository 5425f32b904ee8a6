"""The ``recallwatch`` command line: parse, dispatch, and turn errors into clear messages."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from recallwatch import __version__, commands
from recallwatch.errors import RecallwatchError

__all__ = ["build_parser", "main"]

# Listed first in --help, in this order; any other command module follows alphabetically.
ORDER = ("demo", "serve", "eval", "fn_rate", "filter", "check_config", "notify_test")


def command_modules() -> list[ModuleType]:
    """Import every subcommand module of ``recallwatch.commands`` (those with ``add_parser``)."""
    names = [m.name for m in pkgutil.iter_modules(commands.__path__) if m.name != "common"]
    names.sort(key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    modules = [importlib.import_module(f"recallwatch.commands.{n}") for n in names]
    return [m for m in modules if hasattr(m, "add_parser")]


DESCRIPTION = """\
recallwatch watches embedding models trained with hard negative mining: recall on a clean
held-out set for every checkpoint, and the false-negative rate of the mined negatives.
"""


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="recallwatch",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"recallwatch {__version__}")
    parser.add_argument(
        "--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR")
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in command_modules():
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args))
    except RecallwatchError as exc:
        print(f"recallwatch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("recallwatch: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
