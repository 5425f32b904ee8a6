"""Argument types and helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["k_list", "positive_int", "write_json"]


def k_list(value: str) -> tuple[int, ...]:
    """Parse ``1,10,100`` into sorted unique positive cutoffs."""
    try:
        ks = sorted({int(part) for part in value.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {value!r}"
        ) from None
    if not ks or ks[0] < 1:
        raise argparse.ArgumentTypeError("cutoffs must be positive integers, e.g. 1,10,100")
    return tuple(ks)


def positive_int(value: str) -> int:
    """Parse a positive integer."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {n}")
    return n


def write_json(path: Path | str, document: dict[str, Any]) -> None:
    """Write a JSON document to a path, or to stdout for ``-``."""
    text = json.dumps(document, indent=2, sort_keys=False) + "\n"
    if str(path) == "-":
        sys.stdout.write(text)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text, encoding="utf-8")
