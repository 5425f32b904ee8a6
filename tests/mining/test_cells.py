"""CSV cells neutralised against formula injection, and read back exactly."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from recallwatch.mining.cells import neutralise, restore
from recallwatch.mining.oracles import Pair, read_labels, write_label_sheet


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+2", "'=1+2"),
        ("+1-cmd|' /C calc'!A0", "'+1-cmd|' /C calc'!A0"),
        ("-cmd", "'-cmd"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("ann", "ann"),
        ("", ""),
        ("-0.5", "-0.5"),  # a number is no formula
        ("+3e-2", "+3e-2"),
        ("'=x", "''=x"),  # a quote that ``restore`` would take off is quoted itself
        ("''", "'''"),
        ("'plain", "'plain"),
        ("it's", "it's"),
    ],
)
def test_neutralise_and_restore_are_inverse(value: str, cell: str) -> None:
    assert neutralise(value) == cell
    assert restore(cell) == value


def test_non_text_cells_are_written_as_they_are() -> None:
    assert neutralise(-3) == -3 and neutralise(None) is None


def test_a_label_sheet_is_no_formula_and_its_filled_labels_read_back(tmp_path: Path) -> None:
    sheet = tmp_path / "sheet.csv"
    write_label_sheet(sheet, [("mined", Pair("-q1", "d1", "=1+1", "@SUM(A1)"), -2)])
    with sheet.open(newline="", encoding="utf-8") as fh:
        (row,) = list(csv.DictReader(fh))
    assert (row["query_id"], row["query"], row["document"]) == ("'-q1", "'=1+1", "'@SUM(A1)")
    assert row["rank"] == "-2"  # a number stays a number
    # A reviewer fills the label column in a spreadsheet; the oracle reads the original ids.
    sheet.write_text(sheet.read_text(encoding="utf-8").replace(",,,,mined", ",relevant,,,mined"))
    (label,) = read_labels(sheet)
    assert (label.query_id, label.doc_id, label.label) == ("-q1", "d1", "relevant")
