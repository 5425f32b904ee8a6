"""Read a mined set in any supported format, detecting which one it is."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from recallwatch.errors import InputError
from recallwatch.mining.corpus import Corpus
from recallwatch.mining.mined import MinedSet, read_recallwatch_jsonl
from recallwatch.mining.st_formats import ST_FORMATS, ImportOptions, read_st_mined

__all__ = ["FORMATS", "ImportOptions", "read_mined", "sniff_format"]

FORMATS = ("auto", "recallwatch", *ST_FORMATS)


def sniff_format(path: Path) -> str:
    """``recallwatch`` when the first JSON line has query_id and negatives, else ``auto``."""
    if path.suffix.lower() not in (".jsonl", ".json", ".ndjson"):
        return "auto"
    try:
        # Binary lines: a bad byte further on is for the reader to report, by its line.
        with path.open("rb") as fh:
            for raw in fh:
                if raw.strip():
                    obj = json.loads(raw.decode("utf-8"))
                    if isinstance(obj, dict) and "query_id" in obj and "negatives" in obj:
                        return "recallwatch"
                    return "auto"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return "auto"  # the reader reports the precise problem
    return "auto"


def read_mined(
    path: Path | str, corpus: Corpus | None, options: ImportOptions | None = None
) -> MinedSet:
    """Read a recallwatch JSONL or sentence-transformers mined set."""
    p = Path(path)
    opts = options or ImportOptions()
    if not p.is_file():
        raise InputError("mined set not found", path=p)
    if opts.format not in FORMATS:
        raise InputError(f"unknown format {opts.format!r}; use one of {', '.join(FORMATS)}", path=p)
    fmt = sniff_format(p) if opts.format == "auto" else opts.format
    if fmt == "recallwatch":
        return read_recallwatch_jsonl(p, corpus)
    return read_st_mined(p, corpus, replace(opts, format=fmt))
