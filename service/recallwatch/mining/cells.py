"""CSV cells a spreadsheet will not run: formula-injection neutralising, and its inverse.

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula to
Excel, LibreOffice and Google Sheets (``=HYPERLINK(...)`` in a reviewer's name). ``neutralise``
prefixes such a cell with a single quote, OWASP's advice ("CSV Injection"); ``restore`` takes it
off again, so a file written and read back by recallwatch round-trips every value. A cell that is
a plain number (``-0.5``) is no formula and is written as it is. A cell that already starts with a
quote before one of those characters (or another quote) is quoted too, which keeps the two
functions exact inverses.

Used by the CSV files meant for people: the review labels (export and mirror) and the FN-rate
label sheet. Training tables (``recallwatch filter``) are data for code, not spreadsheets, and
are written unchanged.
"""

from __future__ import annotations

import re

__all__ = ["neutralise", "restore"]

#: The first characters that make a spreadsheet read a cell as a formula.
TRIGGERS = frozenset("=+-@\t\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def neutralise(value: object) -> object:
    """The cell to write for ``value``: a quote before a formula's first character."""
    if not isinstance(value, str) or not value or _NUMBER.fullmatch(value):
        return value
    if value[0] in TRIGGERS or (value[0] == "'" and value[1:2] and value[1] in TRIGGERS | {"'"}):
        return "'" + value
    return value


def restore(cell: str) -> str:
    """The value a cell written by ``neutralise`` holds."""
    if cell[:1] == "'" and cell[1:2] and cell[1] in TRIGGERS | {"'"}:
        return cell[1:]
    return cell
