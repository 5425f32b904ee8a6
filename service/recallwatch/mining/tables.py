"""Tables on disk as ``datasets`` writes them: JSON lines, CSV and parquet, cell by cell.

``read_table`` reads a file into rows, remembering the line (or row) each came from, so every cell
error names the file, the line and the column. CSV cells hold lists as JSON, Python literals or
numpy's array repr (what ``Dataset.to_csv`` writes through pandas). Parquet needs pyarrow.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import io
import json
import math
import re
import tokenize
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recallwatch.errors import InputError

__all__ = [
    "Table",
    "cell_label",
    "cell_list",
    "cell_number",
    "cell_text",
    "parse_list_text",
    "read_table",
    "table_kind",
    "write_rows",
]

#: File suffix -> table kind.
_KINDS = {
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_USE = "use .jsonl, .csv or .parquet"


@dataclass
class Table:
    """Rows of a JSONL, CSV or parquet file, with the line (or row) each came from."""

    path: Path
    kind: str
    columns: list[str]
    rows: list[dict[str, Any]]
    lines: list[int]


def _read_jsonl(path: Path) -> Table:
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    columns: list[str] = []
    with path.open("r", encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise InputError(f"not valid JSON ({exc.msg})", path=path, line=lineno) from exc
            if not isinstance(obj, dict):
                raise InputError("expected a JSON object per line", path=path, line=lineno)
            for key in obj:
                if key not in columns:
                    columns.append(key)
            rows.append(obj)
            lines.append(lineno)
    return Table(path, "jsonl", columns, rows, lines)


def _read_csv(path: Path) -> Table:
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    with path.open("r", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        columns = [c for c in (reader.fieldnames or []) if c]
        # pandas writes an unnamed index column first when index=True; it is not data.
        start = reader.line_num + 1
        for row in reader:
            rows.append({k: v for k, v in row.items() if k})
            lines.append(start)
            start = reader.line_num + 1
    return Table(path, "csv", columns, rows, lines)


def _read_parquet(path: Path) -> Table:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise InputError(
            "reading parquet needs pyarrow: pip install 'recallwatch[parquet]'", path=path
        ) from exc
    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise InputError(f"cannot read parquet ({exc})", path=path) from exc
    rows = table.to_pylist()
    return Table(path, "parquet", list(table.column_names), rows, list(range(1, len(rows) + 1)))


def read_table(path: Path | str) -> Table:
    """Read a JSONL / JSON-lines, CSV or parquet file into rows."""
    p = Path(path)
    if not p.is_file():
        raise InputError("mined set not found", path=p)
    kind = _KINDS.get(p.suffix.lower())
    if kind is None:
        raise InputError(f"unknown file type {p.suffix.lower()!r}: {_USE}", path=p)
    try:
        table = _READERS[kind](p)
    except UnicodeDecodeError as exc:
        line, column = _undecodable(p)
        raise InputError(f"not valid UTF-8 (byte {column} of the line)", path=p, line=line) from exc
    if not table.rows:
        raise InputError("the mined set is empty: no row", path=p)
    return table


def _undecodable(path: Path) -> tuple[int | None, int | None]:
    """The first line that is not UTF-8 and the byte in it, as the held-out readers name it."""
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return lineno, exc.start
    return None, None


_READERS: dict[str, Callable[[Path], Table]] = {
    "jsonl": _read_jsonl,
    "csv": _read_csv,
    "parquet": _read_parquet,
}


def parse_list_text(text: str) -> list[Any] | None:
    """Parse a list written into a CSV cell: JSON, a Python list, or numpy's array repr.

    ``Dataset.to_csv`` writes list cells through pandas as numpy reprs: ``[0.75 0.63]`` (no
    commas, wrapped lines) and ``['a' 'b']`` — adjacent string literals that Python itself would
    concatenate, so strings are read token by token.
    """
    stripped = text.strip()
    if not (stripped.startswith("[") and stripped.endswith("]")):
        return None
    with contextlib.suppress(ValueError):
        parsed = json.loads(stripped)
        if isinstance(parsed, list):
            return parsed
    inner = stripped[1:-1]
    if "'" in inner or '"' in inner:
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO(inner).readline))
        except (tokenize.TokenError, SyntaxError):
            return None
        strings = [ast.literal_eval(t.string) for t in tokens if t.type == tokenize.STRING]
        return strings if strings else None
    parts = [p for p in re.split(r"[\s,]+", inner) if p]
    try:
        return [float(p) for p in parts]
    except ValueError:
        return None


def cell_list(value: Any, table: Table, line: int, column: str) -> list[Any]:
    """A list cell (a list, a tuple or a list written as text)."""
    if isinstance(value, list):
        return value
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, str):
        parsed = parse_list_text(value)
        if parsed is not None:
            return parsed
    raise InputError(
        f"expected a list, got {value!r:.60}", path=table.path, line=line, field=column
    )


def cell_text(value: Any, table: Table, line: int, column: str) -> str:
    """A non-empty text cell."""
    if not isinstance(value, str) or not value.strip():
        raise InputError(
            f"expected a non-empty text, got {value!r:.60}",
            path=table.path,
            line=line,
            field=column,
        )
    return value


def cell_number(value: Any, table: Table, line: int, column: str) -> float:
    """A finite number cell (numbers written as text are accepted)."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(
            f"expected a number, got {value!r:.60}", path=table.path, line=line, field=column
        )
    return float(value)


def cell_label(value: Any, table: Table, line: int, column: str) -> int:
    """A 0/1 label cell."""
    number = cell_number(value, table, line, column)
    if number not in (0.0, 1.0):
        raise InputError(
            f"expected a label 0 or 1, got {value!r}", path=table.path, line=line, field=column
        )
    return int(number)


def write_rows(path: Path, kind: str, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """Write rows as a table of ``kind`` (CSV list cells as JSON)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "jsonl":
        with path.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif kind == "csv":
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow(
                    {k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()}
                )
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)


def table_kind(path: Path) -> str:
    """The kind of table (``jsonl``, ``csv``, ``parquet``) an output file's suffix asks for."""
    kind = _KINDS.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"unknown output file type {path.suffix.lower()!r}: {_USE}", path=path)
    return kind
