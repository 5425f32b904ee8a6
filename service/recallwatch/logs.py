"""Log formatting: human-readable lines (default) or JSON lines, with structured fields.

Structured fields go in ``extra=fields(run=..., step=...)``; the human format appends them as
``key=value``, the JSON format as keys of the object::

    log.info("evaluated", extra=fields(run="a", checkpoint="checkpoint-500", duration_seconds=4.2))
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = ["LogFormat", "configure", "fields"]

LogFormat = Literal["human", "json"]

#: Libraries whose INFO lines are noise for an operator (one line per poll, per request ...).
_QUIET = ("apscheduler", "uvicorn.access", "httpx", "multipart")


def fields(**values: Any) -> dict[str, Any]:
    """Structured fields for a log call's ``extra``."""
    return {"fields": values}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    text = str(value)
    return json.dumps(text) if (" " in text or not text) else text


class HumanFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Format the record and append its structured fields."""
        line = super().format(record)
        extra: dict[str, Any] = getattr(record, "fields", {}) or {}
        if extra:
            pairs = " ".join(f"{k}={_fmt(v)}" for k, v in extra.items())
            head, sep, tail = line.partition("\n")  # keep a traceback below the fields
            line = f"{head} {pairs}{sep}{tail}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        """Format the record as a JSON line."""
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in (getattr(record, "fields", {}) or {}).items():
            doc.setdefault(key, value)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def configure(fmt: str = "human", level: str = "INFO") -> None:
    """Send every log record to stderr in ``fmt`` (``human`` or ``json``) at ``level``."""
    if fmt not in ("human", "json"):
        raise ValueError(f"unknown log format {fmt!r}; use 'human' or 'json'")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else HumanFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    # Evaluation child processes log the same way.
    os.environ["RECALLWATCH_LOG_FORMAT"] = fmt
